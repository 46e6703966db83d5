"""Train the theme classifier from labelled passages, with honest, document-grouped evaluation.

The held-out documents of the fixed split (:mod:`themes.dataset`) are never trained on. Thresholds are chosen on out-of-fold
predictions of a grouped cross-validation on the training documents; the final model is fitted on
all training documents and evaluated once on the held-out ones, with the keyword and seed-pattern
baselines beside it.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from themes import __version__
from themes.classify import ThemeClassifier
from themes.codebook import codebook_hash, load_codebook
from themes.config import (
    CODEBOOK_PATH,
    CORE_THEMES,
    DOC_EVAL_DIR,
    LABELS_DIR,
    MODELS_DIR,
    PROJECT_ROOT,
)
from themes.dataset import (
    HELDOUT_MODULUS,
    data_hash,
    is_real,
    load_labels,
    load_real_training,
    load_seeds,
    split,
)
from themes.doceval import document_evaluation
from themes.evaluate import (
    baselines_on,
    best_thresholds,
    comparison_table,
    known_label_matrix,
    label_matrix,
    score,
)
from themes.registry import save_model, set_default
from themes.tables import markdown_table

#: The default model's recipe, chosen by benchmarks/recipe.py on the grouped cross-validation of the
#: training documents only (results/recipe.md): TF-IDF word, scope and character n-grams plus the
#: codebook keyword-and-scope block at half weight.
DEFAULT_PARAMS: dict = {"rule_weight": 0.5}
#: Weight of a real sentence against a written passage when fitting. 1 won the same cross-validation:
#: up-weighting real sentences (x3, x6) lowered out-of-fold macro-F1 on real and on written text.
REAL_WEIGHT = 1.0
MIN_POSITIVES = 20  # themes with fewer training positives are not modelled


def trainable_themes(frame: pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    """Core themes always; other themes when the training data has enough positives."""
    counts = pd.Series([t for labels in frame["labels"] for t in labels]).value_counts()
    return [t for t in candidates if t in CORE_THEMES or counts.get(t, 0) >= MIN_POSITIVES]


@dataclass
class TrainResult:
    """A fitted model, its card, and the evaluation behind the card."""

    model: ThemeClassifier
    card: dict
    comparison: pd.DataFrame


def targets(frame: pd.DataFrame, themes: Sequence[str]) -> np.ndarray:
    """0/1 labels, with -1 where a real sentence was never labelled for a (non-core) theme."""
    return known_label_matrix(frame["labels"], is_real(frame), themes)


def sample_weights(frame: pd.DataFrame, real_weight: float = REAL_WEIGHT) -> np.ndarray | None:
    """``real_weight`` for real sentences, 1 for written passages (None when all are 1)."""
    real = is_real(frame)
    if real_weight == 1.0 or not real.any():
        return None
    return np.where(real, real_weight, 1.0)


def out_of_fold(
    estimator: Any, texts: Sequence[str], y: np.ndarray, groups: Sequence[str], n_splits: int = 5,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities from a cross-validation grouped by document (``cross_val_predict``).

    The labels reach ``fit`` as a fit parameter rather than as ``y``: given ``y`` and
    ``method="predict_proba"``, ``cross_val_predict`` label-encodes each column of a 2-D ``y``
    (turning the "not labelled" ``-1`` into a class) and asks for a ``classes_`` that a
    multi-label model does not have. The folds are the same ``GroupKFold`` splits either way.
    """
    fit_params: dict[str, Any] = {"y": np.asarray(y)}
    if weights is not None:
        fit_params["sample_weight"] = np.asarray(weights)
    return cross_val_predict(estimator, list(texts), groups=list(groups), cv=GroupKFold(n_splits=n_splits),
                             method="predict_proba", params=fit_params)


def learning_curve(
    params: dict, train: pd.DataFrame, heldout: pd.DataFrame, themes: Sequence[str],
    fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0), seed: int = 0,
) -> pd.DataFrame:
    """Held-out macro-F1 (core themes, thresholds 0.5) against the number of training passages."""
    docs = np.array(sorted(train["doc"].unique()))
    rng = np.random.default_rng(seed)
    rng.shuffle(docs)
    y_held = label_matrix(heldout["labels"], themes)
    rows = []
    for fraction in fractions:
        keep = set(docs[: max(2, round(fraction * len(docs)))])
        part = train[train["doc"].isin(keep)]
        y = targets(part, themes)
        if ((y == 1).sum(axis=0) == 0).any():
            continue
        model = ThemeClassifier(themes=themes, **params).fit(list(part["text"]), y, sample_weight=sample_weights(part))
        s = score("model", "heldout", y_held, model.predict(list(heldout["text"])), themes)
        rows.append({"n_documents": len(keep), "n_passages": len(part), "macro_f1_core": round(s.macro_f1_core, 3)})
    return pd.DataFrame(rows)


def code_version() -> str:
    """The git commit of the code, or the package version outside a checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
            timeout=5, check=True,
        ).stdout.strip()
        return f"{__version__}+{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def library_versions() -> dict[str, str]:
    """Versions of the libraries a saved model depends on, for its card."""
    # Imported here: spaCy and skops take seconds to import and only a card needs their versions.
    import sklearn
    import skops
    import spacy

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "spacy": spacy.__version__, "skops": skops.__version__, "numpy": np.__version__}


def train(
    frame: pd.DataFrame,
    params: dict | None = None,
    themes: Sequence[str] | None = None,
    with_learning_curve: bool = True,
    n_splits: int = 5,
    real_weight: float = REAL_WEIGHT,
) -> TrainResult:
    """Fit the classifier on the training documents and build its card.

    Args:
        frame: labelled passages (``load_labels``, plus ``load_real_training``); the held-out
            documents are set aside here.
        params: ``ThemeClassifier`` parameters other than ``themes``; default :data:`DEFAULT_PARAMS`.
        themes: theme ids to model; default every codebook theme with enough positives.
        with_learning_curve: fit extra models on parts of the data for the card's learning curve.
        n_splits: folds of the grouped cross-validation that picks the thresholds.
        real_weight: weight of a real sentence against a written passage.
    """
    params = dict(DEFAULT_PARAMS if params is None else params)
    codebook = load_codebook()
    train_df, held_df = split(frame)
    themes = list(themes or trainable_themes(train_df[~is_real(train_df)], codebook.ids))
    y_train = targets(train_df, themes)
    weights = sample_weights(train_df, real_weight)
    started = time.perf_counter()
    with threadpool_limits(1):  # BLAS/OpenMP pools fight on 2 cores (STACK-NOTES.md)
        oof = out_of_fold(ThemeClassifier(themes=themes, **params), list(train_df["text"]), y_train,
                          list(train_df["doc"]), n_splits, weights)
        thresholds = best_thresholds(y_train, oof)
        model = ThemeClassifier(themes=themes, **params).fit(list(train_df["text"]), y_train, sample_weight=weights)
        model.thresholds_ = thresholds
        fit_seconds = time.perf_counter() - started
        oof_pred = (oof >= thresholds).astype(int)
        real_rows = is_real(train_df)
        core = [t for t in themes if t in CORE_THEMES]
        core_cols = [themes.index(t) for t in core]
        cv = score("model", "cv (oof)", y_train[~real_rows], oof_pred[~real_rows], themes,
                   list(train_df["kind"][~real_rows]))
        scores = [cv]
        if real_rows.any():
            scores.append(score("model", "cv (oof) real", y_train[real_rows][:, core_cols],
                                oof_pred[real_rows][:, core_cols], core, list(train_df["kind"][real_rows])))
        held_real = is_real(held_df)
        for split_name, part, cols in (("heldout", held_df[~held_real], themes),
                                       ("heldout real reports", held_df[held_real], core)):
            if not len(part):
                continue
            y_part = label_matrix(part["labels"], cols)
            pred = model.predict(list(part["text"]))[:, [themes.index(t) for t in cols]]
            scores.append(score("model", split_name, y_part, pred, cols, list(part["kind"])))
            scores += baselines_on(part, cols, split_name)
        seeds = load_seeds()
        if len(seeds):
            y_seeds = label_matrix(seeds["labels"], core)
            pred = model.predict(list(seeds["text"]))[:, core_cols]
            scores.append(score("model", "seeds", y_seeds, pred, core))
            scores += baselines_on(seeds.assign(kind=None), core, "seeds")
        curve = learning_curve(params, train_df, held_df[~held_real], themes) if with_learning_curve and len(held_df) else None
    comparison = comparison_table(scores)
    card = {
        "summary": "Calibrated one-vs-rest linear classifier over TF-IDF word, negation-scope and "
        "character n-grams" + (" and the codebook's keyword-and-scope features" if params.get("rule_weight") else "")
        + "; tags a passage with a practice theme when it describes the failing. Trained on the team's "
        "written passages and on real Ofsted sentences (weighted x" + f"{real_weight:g}" + ").",
        "real_weight": real_weight,
        "training_documents": sorted(train_df["doc"].astype(str).unique()),
        "never_trained_on": "corpus/sample (the documents make run counts), corpus/doc-eval (the document-level "
        "evaluation set), the written held-out documents, the held-out Ofsted reports and the seed sentences",
        "evaluation_sets": {
            "written held-out": f"{int((~held_real).sum())} passages of {held_df[~held_real]['doc'].nunique()} written documents",
            "real held-out": f"{int(held_real.sum())} Ofsted sentences of {held_df[held_real]['doc'].nunique()} reports",
            "seeds": f"{len(seeds)} seed sentences (../shared/seeds), never trained on",
        },
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "codebook_version": codebook.version,
        "codebook_hash": codebook_hash(CODEBOOK_PATH),
        "training_data_hash": data_hash(train_df),
        "training_label_files": sorted(frame["file"].unique()) if "file" in frame else [],
        "n_train_passages": len(train_df),
        "n_train_documents": int(train_df["doc"].nunique()),
        "n_heldout_passages": len(held_df),
        "n_heldout_documents": int(held_df["doc"].nunique()),
        "heldout_rule": f"sha1(doc) mod {HELDOUT_MODULUS} == 0",
        "themes": themes,
        "params": {k: v for k, v in model.get_params().items() if k != "themes"},
        "thresholds": {t: float(v) for t, v in zip(themes, thresholds)},
        "fit_seconds": round(fit_seconds, 1),
        "libraries": library_versions(),
        "cv_scores": cv.per_theme.round(3).reset_index().to_dict(orient="records"),
        "cv_scores_md": markdown_table(cv.per_theme.round(3).reset_index()),
        "comparison": comparison.to_dict(orient="records"),
        "comparison_md": markdown_table(comparison),
        "learning_curve": None if curve is None else curve.to_dict(orient="records"),
        "learning_curve_md": None if curve is None else markdown_table(curve),
        "limits": "Real training text is Ofsted inspection prose, which almost never discusses optimism about "
        "families or written agreements with parents: those two themes are learned mostly from the team's "
        "written passages and checked only on the seed sentences. Check its scores on your own text "
        "(themes evaluate) before citing counts.",
    }
    return TrainResult(model, card, comparison)


def new_version(card: dict, models_dir: Path | None = None) -> str:
    """A sortable version name: training date and the first characters of the data hash.

    With ``models_dir``, a suffix ("-2", "-3", ...) keeps the name from overwriting a saved version
    trained on the same data the same day (other parameters, or another code version).
    """
    base = f"{card['trained_at'][:10]}-{card['training_data_hash'][:8]}"
    version, n = base, 1
    while models_dir is not None and (Path(models_dir) / version).exists():
        n += 1
        version = f"{base}-{n}"
    return version


def train_and_save(
    labels_dir: Path = LABELS_DIR, models_dir: Path = MODELS_DIR, params: dict | None = None,
    make_default: bool = False, with_learning_curve: bool = True, with_real: bool = True,
    doc_eval_dir: Path | None = None,
) -> tuple[Path, TrainResult]:
    """Train from a labels folder, save under ``models_dir/<version>``, optionally make it the default.

    The card's ``document_evaluation`` (presence rule and the error rates behind corrected shares)
    is measured on ``doc_eval_dir`` (default ``config.DOC_EVAL_DIR``); without that folder the card
    has none and runs with the model report uncorrected shares.
    """
    written = load_labels(labels_dir)
    real = load_real_training() if with_real else written.iloc[:0]
    result = train(pd.concat([written, real], ignore_index=True), params=params,
                   with_learning_curve=with_learning_curve)
    real_train, real_held = split(real)
    result.card["real_training"] = {
        "sets": sorted(real["source"].str.removeprefix("real:").unique()) if len(real) else [],
        "train_sentences": len(real_train), "heldout_sentences": len(real_held),
        "note": "real Ofsted sentences (text rebuilt from ../shared, never stored) from the reports on the "
        "training side of the fixed split; held-out reports and the seed sentences are evaluation only",
    }
    doc_eval_dir = Path(doc_eval_dir or DOC_EVAL_DIR)
    version = new_version(result.card, models_dir)
    if doc_eval_dir.is_dir():
        result.card["document_evaluation"] = {**document_evaluation(doc_eval_dir, result.model),
                                              "model_version": version}
    folder = save_model(result.model, result.card, version, models_dir)
    if make_default:
        set_default(version, models_dir)
    return folder, result


