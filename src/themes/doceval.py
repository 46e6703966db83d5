"""Document-level evaluation: a labelled document set run through the pipeline, and the model card's rates.

:func:`evaluate_documents` reads a folder of PDFs (each with ``expected/<stem>.json``) through the
pipeline's own ingest → segment → classify path; :func:`choose_presence_rule` picks the rule that
calls a theme present in a document by cross-validation over the documents; :func:`document_evaluation`
counts each document's call out of fold and the per-theme error rates that correct a run's shares,
and :func:`write_card_evaluation` stores them in a model card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from themes import dedup, store
from themes.aggregate import counted_passages
from themes.baselines import KeywordBaseline
from themes.classify import score_passages
from themes.config import (
    CORE_THEMES,
    DOC_EVAL_DIR,
    INGEST,
    MODELS_DIR,
    PROJECT_ROOT,
    SEGMENT,
    SOURCE_ROOT,
)
from themes.correction import (
    MIN_YOUDEN,
    ClassifierError,
    bootstrap_draws,
    corrected_share,
    correction_from_card,
)
from themes.errors import Errors, MissingFileError, ModelError, one_sentence
from themes.presence import (
    FEATURE_COLUMNS,
    RULE_KINDS,
    PresenceRule,
    feature_table,
    logistic_inputs,
)
from themes.registry import CARD_JSON, CARD_MD, LoadedModel, load_model, render_card, resolve
from themes.store import atomic_write_text


@dataclass
class DocumentSet:
    """A labelled document set run through the pipeline: features per document and theme, and truth.

    ``model_features`` and ``keyword_features`` hold one row per document and theme with
    ``doc_id``, ``theme``, the :data:`themes.presence.FEATURE_COLUMNS` of its counted passages'
    scores, and ``truth`` (the theme is in the document's ``expected/<stem>.json``).
    """

    docs_dir: Path
    documents: pd.DataFrame  # one row per PDF: doc_id (sha256), file, ...
    themes: list[str]
    model_version: str
    thresholds: dict[str, float]
    model_features: pd.DataFrame
    keyword_features: pd.DataFrame
    predictions: pd.DataFrame  # the pipeline's predictions table for the counted passages, with doc_id


def _expected_themes(docs_dir: Path, pdf: Path) -> list[str]:
    file = docs_dir / "expected" / f"{pdf.stem}.json"
    if not file.is_file():
        raise MissingFileError(Errors.E417.format(name=pdf.name, expected=file.relative_to(docs_dir)))
    return list(json.loads(file.read_text(encoding="utf-8"))["known_themes"])


def _read_documents(pdfs: Sequence[Path], cache_dir: Path | None, workers: int) -> list[tuple[Any, list]]:
    """(Document, passages) per file: ingest and segment as the pipeline does, through its cache."""
    # pdfplumber and spaCy load only when documents are actually read (seconds of start-up).
    from themes import ingest, segment

    key = store.cache_key(INGEST, SEGMENT)
    found: dict[Path, tuple[Any, list]] = {}
    todo: list[Path] = []
    for pdf in pdfs:
        cached = store.load_cached(cache_dir, ingest.doc_id_of(pdf), pdf.name, key) if cache_dir else None
        if cached:
            found[pdf] = cached
        else:
            todo.append(pdf)
    by_id = {ingest.doc_id_of(p): p for p in todo}
    for document in ingest.ingest_many(todo, workers=workers):
        pdf = by_id.get(document.doc_id) or next(p for p in todo if p.name == Path(document.file).name)
        if document.status != "ok":
            raise ModelError(Errors.E418.format(name=pdf.name, kind=document.error_kind,
                                                detail=one_sentence(document.error)))
        document.file = pdf.name
        passages = segment.segment(document)
        if cache_dir:
            store.save_cached(cache_dir, document, passages, key)
        found[pdf] = (document, passages)
    return [found[p] for p in pdfs]


def _features_with_truth(scored: pd.DataFrame, doc_ids: Sequence[str], themes: Sequence[str],
                         truth: dict[str, set[str]]) -> pd.DataFrame:
    grid = pd.MultiIndex.from_product([list(doc_ids), list(themes)], names=["doc_id", "theme"]).to_frame(index=False)
    out = grid.merge(feature_table(scored), on=["doc_id", "theme"], how="left")
    for column in FEATURE_COLUMNS:
        out[column] = out[column].astype(float).fillna(0.0)
    out["truth"] = [t in truth[d] for d, t in zip(out["doc_id"], out["theme"])]
    return out


def evaluate_documents(
    docs_dir: Path | str, model: Any = None, cache_dir: Path | str | None = None, workers: int = 1,
) -> DocumentSet:
    """Run a labelled document set through the pipeline's own ingest → segment → classify path.

    Passages repeated across three or more of the documents are left out as boilerplate, as a run
    leaves them out, and every section is counted (the run's default). Keyword search tags the same
    passages with the codebook's keywords (:class:`themes.baselines.KeywordBaseline`).

    Args:
        docs_dir: folder of PDFs, each with ``expected/<stem>.json`` naming its ``known_themes``.
        model: a fitted :class:`~themes.classify.ThemeClassifier`, a loaded model, or a version or
            folder (``None``: ``models/DEFAULT``).
        cache_dir: the pipeline's per-document cache folder, to skip reading unchanged PDFs again.
        workers: reader processes.
    """
    docs_dir = Path(docs_dir)
    pdfs = sorted(p for p in docs_dir.glob("*.pdf") if p.is_file())
    if not pdfs:
        raise MissingFileError(Errors.E419.format(folder=docs_dir))
    truth_by_file = {p: _expected_themes(docs_dir, p) for p in pdfs}
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model)
    if isinstance(model, LoadedModel):
        estimator, version = model.model, model.version
    else:
        estimator, version = model, "unsaved"
    read = _read_documents(pdfs, Path(cache_dir) if cache_dir else None, workers)
    documents = [doc for doc, _ in read]
    passages = [p for _, doc_passages in read for p in doc_passages]
    doc_ids = [d.doc_id for d in documents]
    truth = {d.doc_id: set(truth_by_file[pdf]) for d, pdf in zip(documents, pdfs)}
    passages_df = store.passages_frame(passages)
    boilerplate = dedup.find_boilerplate(passages_df).dropped
    counted, _ = counted_passages(passages_df, None, boilerplate)
    keep = set(counted["passage_id"])
    counted_list = [p for p in passages if p.passage_id in keep]
    themes = list(estimator.themes_)
    predictions = store.predictions_frame(score_passages(estimator, counted_list, version))
    doc_of = {p.passage_id: p.doc_id for p in counted_list}
    predictions["doc_id"] = predictions["passage_id"].map(doc_of)
    tags = KeywordBaseline(themes=themes).fit().predict([p.text for p in counted_list])
    keyword = pd.DataFrame({
        "passage_id": np.repeat([p.passage_id for p in counted_list], len(themes)),
        "doc_id": np.repeat([p.doc_id for p in counted_list], len(themes)),
        "theme": np.tile(themes, len(counted_list)),
        "score": tags.reshape(-1).astype(float),
    })
    keyword["tagged"] = keyword["score"] > 0
    return DocumentSet(
        docs_dir=docs_dir, documents=store.documents_frame(documents), themes=themes, model_version=version,
        thresholds={t: float(v) for t, v in zip(themes, estimator.thresholds_)},
        model_features=_features_with_truth(predictions, doc_ids, themes, truth),
        keyword_features=_features_with_truth(keyword, doc_ids, themes, truth),
        predictions=predictions,
    )


#: Passage counts the ``count`` rule may require.
COUNT_KS = (1, 2, 3, 4, 5)


def _best_cut(values: np.ndarray, y: np.ndarray) -> float:
    """The cut on ``values`` (present when >= cut) with the best accuracy; the middle of ties."""
    v = np.unique(values)
    candidates = np.concatenate([[v[0] - 1.0], (v[:-1] + v[1:]) / 2, [v[-1] + 1.0]]) if len(v) else np.array([0.5])
    acc = np.array([((values >= c) == y).mean() for c in candidates])
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    return float(candidates[best[len(best) // 2]])


def fit_rule_params(kind: str, x: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    """One theme's parameters of a presence rule of ``kind``, fitted on documents ``x`` with truth ``y``."""
    y = np.asarray(y, dtype=bool)
    if kind == "count":
        acc = [((x["n_over"].to_numpy() >= k) == y).mean() for k in COUNT_KS]
        return {"k": COUNT_KS[int(np.argmax(acc))]}
    if kind in ("max", "noisy_or"):
        return {"cut": _best_cut(x[kind].to_numpy(dtype=float), y)}
    if y.all() or not y.any():  # one class: a constant rule
        return {"coef": [0.0] * 5, "intercept": 10.0 if y.all() else -10.0}
    fitted = LogisticRegression(C=1.0, max_iter=2000).fit(logistic_inputs(x), y)
    return {"coef": [float(c) for c in fitted.coef_[0]], "intercept": float(fitted.intercept_[0])}


def build_rule(kind: str, params: dict[str, dict[str, Any]], thresholds: dict[str, float] | None = None,
               ) -> PresenceRule:
    """A :class:`~themes.presence.PresenceRule` from per-theme parameters of :func:`fit_rule_params`."""
    return PresenceRule(
        kind=kind,  # type: ignore[arg-type]
        k={t: p["k"] for t, p in params.items() if "k" in p},
        cut={t: p["cut"] for t, p in params.items() if "cut" in p},
        coef={t: p["coef"] for t, p in params.items() if "coef" in p},
        intercept={t: p["intercept"] for t, p in params.items() if "intercept" in p},
        thresholds=dict(thresholds or {}),
    )


@dataclass
class RuleChoice:
    """The chosen presence rule, every candidate's CV scores, and the chosen rule's out-of-fold calls."""

    rule: PresenceRule
    cv: dict
    #: doc_id, theme, truth, present (out of fold, first repeat), fold
    oof: pd.DataFrame


def choose_presence_rule(
    features: pd.DataFrame, kinds: Sequence[str] | None = None, thresholds: dict[str, float] | None = None,
    n_splits: int = 5, n_repeats: int = 3, seed: int = 0,
) -> RuleChoice:
    """Choose the presence rule by cross-validation over documents.

    For each candidate kind (minimum passage count k = 1..5, maximum score over a cut, noisy-OR
    over a cut, logistic regression over per-document score features), each theme's parameters
    are fitted on the training folds only and scored on the held-out fold (stratified k-fold over
    documents on that theme's truth, repeated ``n_repeats`` times with shuffled folds). The kind
    with the best mean document accuracy over all themes wins (ties: the simpler kind, in
    :data:`themes.presence.RULE_KINDS` order); its parameters are then fitted on every document.

    Args:
        features: :attr:`DocumentSet.model_features` (or ``keyword_features``).
        kinds: candidate kinds; default all of :data:`themes.presence.RULE_KINDS`.
        thresholds: the model's passage thresholds, kept in the rule for single-document use.
    """
    kinds = list(kinds or RULE_KINDS)
    themes = list(dict.fromkeys(features["theme"]))
    per_theme: dict[str, dict[str, float]] = {k: {} for k in kinds}
    oof_by_kind: dict[str, list[pd.DataFrame]] = {k: [] for k in kinds}
    for theme in themes:
        x = features[features["theme"] == theme].reset_index(drop=True)
        y = x["truth"].to_numpy(dtype=bool)
        splits = min(n_splits, int(y.sum()), int((~y).sum()))
        if splits < 2:
            for kind in kinds:
                per_theme[kind][theme] = math.nan
            continue
        scores: dict[str, list[float]] = {k: [] for k in kinds}
        for repeat in range(n_repeats):
            folds = StratifiedKFold(splits, shuffle=True, random_state=seed + repeat).split(x, y)
            for fold, (train_idx, test_idx) in enumerate(folds):
                for kind in kinds:
                    rule = build_rule(kind, {theme: fit_rule_params(kind, x.iloc[train_idx], y[train_idx])})
                    called = rule.present(x.iloc[test_idx]) & (x["n_passages"].to_numpy()[test_idx] > 0)
                    scores[kind].append(float((called == y[test_idx]).mean()))
                    if repeat == 0:
                        oof_by_kind[kind].append(pd.DataFrame({
                            "doc_id": x["doc_id"].to_numpy()[test_idx], "theme": theme, "truth": y[test_idx],
                            "present": called, "fold": fold}))
        for kind in kinds:
            per_theme[kind][theme] = float(np.mean(scores[kind]))
    summary = {}
    for kind in kinds:
        values = per_theme[kind]
        core = [v for t, v in values.items() if t in CORE_THEMES and not math.isnan(v)]
        summary[kind] = {
            "mean_accuracy": round(float(np.nanmean(list(values.values()))), 4) if values else math.nan,
            "mean_accuracy_core": round(float(np.mean(core)), 4) if core else None,
            "per_theme": {t: (None if math.isnan(v) else round(v, 4)) for t, v in values.items()},
        }
    chosen = max(kinds, key=lambda k: (summary[k]["mean_accuracy"], -kinds.index(k)))
    params = {}
    for theme in themes:
        x = features[features["theme"] == theme]
        params[theme] = fit_rule_params(chosen, x, x["truth"].to_numpy(dtype=bool))
    rule = build_rule(chosen, params, thresholds)
    oof = pd.concat(oof_by_kind[chosen], ignore_index=True) if oof_by_kind[chosen] else pd.DataFrame(
        columns=["doc_id", "theme", "truth", "present", "fold"])
    cv = {"chosen": chosen, "metric": "mean document accuracy over themes", "folds": n_splits,
          "repeats": n_repeats, "split": "stratified k-fold over documents per theme, parameters fitted on the "
          "training folds only", "seed": seed, "candidates": summary}
    return RuleChoice(rule, cv, oof)


def _confusion(truth: np.ndarray, called: np.ndarray) -> dict[str, Any]:
    t, c = np.asarray(truth, dtype=bool), np.asarray(called, dtype=bool)
    tp, fp = int((t & c).sum()), int((~t & c).sum())
    tn, fn = int((~t & ~c).sum()), int((t & ~c).sum())
    n = len(t)

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "sensitivity": ratio(tp, tp + fn),
            "specificity": ratio(tn, tn + fp), "accuracy": ratio(tp + tn, n),
            "true_share": ratio(tp + fn, n), "predicted_share": ratio(tp + fp, n),
            "share_error": round((fp - fn) / n, 4) if n else None}


def _cross_fitted_correction(oof: pd.DataFrame, draws: int = 4000, seed: int = 0) -> dict[str, Any]:
    """The set's own share corrected without its own rates: each fold's observed share is corrected
    with the error counts of the other folds, and the folds are pooled by size (draws likewise).

    The folds' draws are pooled as if independent; their rates share documents, so the interval is
    somewhat narrower than it should be.
    """
    n = len(oof)
    points, pooled, notes = [], np.zeros(draws), []
    rng = np.random.default_rng(seed)
    for fold, part in oof.groupby("fold"):
        rest = oof[oof["fold"] != fold]
        t, c = rest["truth"].to_numpy(bool), rest["present"].to_numpy(bool)
        error = ClassifierError("t", int((t & c).sum()), int((t & ~c).sum()), int((~t & ~c).sum()),
                                int((~t & c).sum()))
        fitted = corrected_share(int(part["present"].sum()), len(part), error, draws=draws, seed=seed)
        if math.isnan(fitted.share):
            return {"corrected_share": None, "corrected_low": None, "corrected_high": None,
                    "corrected_note": f"fold {fold}: {fitted.note or 'not estimable'} (MIN_YOUDEN {MIN_YOUDEN})"}
        weight = len(part) / n
        points.append(weight * fitted.share)
        values = bootstrap_draws(int(part["present"].sum()), len(part), error, draws, rng)
        pooled += weight * rng.choice(values, draws) if len(values) else math.nan
        if fitted.note:
            notes.append(f"fold {fold}: {fitted.note}")
    low, high = np.quantile(pooled, [0.025, 0.975])
    return {"corrected_share": round(float(sum(points)), 4), "corrected_low": round(float(low), 4),
            "corrected_high": round(float(high), 4),
            "corrected_note": "; ".join(notes) if notes else "cross-fitted: each fold corrected with the other folds' rates"}


def _given_rule_correction(calls: pd.DataFrame, correction: Any, draws: int = 4000, seed: int = 0) -> dict:
    c = corrected_share(int(calls["present"].sum()), len(calls), correction.errors.get(calls["theme"].iloc[0]),
                        draws=draws, seed=seed)
    return {"corrected_share": None if math.isnan(c.share) else round(c.share, 4),
            "corrected_low": None if math.isnan(c.low) else round(c.low, 4),
            "corrected_high": None if math.isnan(c.high) else round(c.high, 4),
            "corrected_note": c.note or f"corrected with the rates of model {correction.model_version}'s card"}


def _theme_blocks(calls: pd.DataFrame, themes: Sequence[str], correction: Any = None) -> dict[str, dict]:
    out = {}
    for theme in themes:
        part = calls[calls["theme"] == theme]
        block = _confusion(part["truth"].to_numpy(), part["present"].to_numpy())
        if correction is not None:
            block.update(_given_rule_correction(part, correction))
        elif "fold" in part and len(part):
            block.update(_cross_fitted_correction(part))
        out[theme] = block
    return out


def _set_name(docs_dir: Path) -> str:
    resolved = Path(docs_dir).resolve()
    for root in (SOURCE_ROOT, PROJECT_ROOT):
        if root is not None and resolved.is_relative_to(root.resolve()):
            return resolved.relative_to(root.resolve()).as_posix()
    return str(resolved)


def document_evaluation(
    docs_dir: Path | str | None = None, model: Any = None, cache_dir: Path | str | None = None,
    correction: Any = None, seed: int = 0, documents: DocumentSet | None = None,
) -> dict:
    """Document-level evaluation of a model and of keyword search, for the model card.

    Chooses the presence rule by cross-validation over the documents (:func:`choose_presence_rule`)
    and counts each document's call out of fold, so ``tp``/``fp``/``tn``/``fn`` are what the
    rule does on documents it was not fitted on. Corrected shares of the set are cross-fitted
    (each fold corrected with the other folds' rates): correcting the set with its own rates would
    return its true share by construction.

    Args:
        docs_dir: labelled document set; default ``config.DOC_EVAL_DIR``.
        model: as for :func:`evaluate_documents`.
        cache_dir: the pipeline's per-document cache folder.
        correction: a card's :class:`~themes.correction.Correction` to measure instead on documents
            it was not chosen on: its rule is applied as is and shares are corrected with its rates.
        documents: an already evaluated set (skips reading and classifying).

    Returns:
        A JSON-ready dict: ``set``, ``n_documents``, ``documents`` (sha256 ids), ``files``, ``rule``
        (with every candidate's CV scores), per theme ``themes`` blocks (tp, fp, tn, fn,
        sensitivity, specificity, accuracy, true_share, predicted_share, share_error and the
        corrected share), and the same for ``keyword_search``.
    """
    docs = documents or evaluate_documents(docs_dir or DOC_EVAL_DIR, model, cache_dir)
    out: dict[str, Any] = {
        "set": _set_name(docs.docs_dir), "n_documents": len(docs.documents),
        "documents": list(docs.documents["doc_id"]), "files": list(docs.documents["file"]),
        "model_version": docs.model_version, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "min_youden": MIN_YOUDEN,
        "counting": "all sections; passages repeated across 3+ documents of the set left out as boilerplate",
    }
    for key, features, kinds, thresholds in (
        ("model", docs.model_features, None, docs.thresholds),
        ("keyword_search", docs.keyword_features, ("count",), None),
    ):
        if correction is not None and key == "model":
            rule = correction.rule
            calls = features[["doc_id", "theme", "truth"]].copy()
            calls["present"] = rule.present(features) & (features["n_passages"].to_numpy() > 0)
            block = {"rule": {**rule.to_dict(), "chosen_by": f"given: the card of model {correction.model_version} "
                              f"(chosen on {correction.n_documents} documents of {correction.source})"},
                     "counts": "Every document judged by the given rule (not fitted here)",
                     "themes": _theme_blocks(calls, docs.themes, correction)}
        else:
            choice = choose_presence_rule(features, kinds, thresholds, seed=seed)
            block = {"rule": {**choice.rule.to_dict(), "cv": choice.cv},
                     "counts": "Counts out of fold: each document judged by the rule fitted on the other folds "
                               "(first repeat)",
                     "themes": _theme_blocks(choice.oof, docs.themes)}
        if key == "model":
            out.update(block)
        else:
            out["keyword_search"] = block
    return out


def write_card_evaluation(model_version: str | None, evaluation: dict, models_dir: Path | None = None) -> Path:
    """Store ``evaluation`` as ``document_evaluation`` in a saved model's card (JSON and Markdown).

    Nothing else in the card changes. Returns the card's folder.
    """
    folder = resolve(model_version, Path(models_dir or MODELS_DIR))
    if not (folder / CARD_JSON).is_file():
        raise MissingFileError(Errors.E421.format(folder=folder, card=CARD_JSON))
    card = json.loads((folder / CARD_JSON).read_text(encoding="utf-8"))
    if evaluation.get("model_version") not in (None, "unsaved", card.get("version", folder.name)):
        raise ModelError(Errors.E420.format(evaluated=evaluation["model_version"], version=card.get("version")))
    card["document_evaluation"] = {**evaluation, "model_version": card.get("version", folder.name)}
    atomic_write_text(folder / CARD_JSON, json.dumps(card, indent=2, default=str) + "\n")
    atomic_write_text(folder / CARD_MD, render_card(card))
    return folder


def evaluate_document_set(
    docs_dir: Path | str, model: str | None = None, write_card: bool = False, cache_dir: Path | str | None = None,
) -> dict:
    """What ``themes evaluate --documents`` does: a :func:`document_evaluation`, perhaps stored.

    On documents the model's card was not measured on (no shared id), the card's own presence
    rule and rates are applied as they would be in a run, unless ``write_card`` asks for a new
    choice. Otherwise the rule is chosen on these documents by cross-validation; ``write_card``
    stores the result as the card's ``document_evaluation``.
    """
    from themes.ingest import doc_id_of  # pdfplumber: see _read_documents

    loaded = load_model(model)
    correction = None if write_card else correction_from_card(loaded.card)
    if correction is not None:
        ids = {doc_id_of(p) for p in Path(docs_dir).glob("*.pdf")}
        if ids & set(correction.documents):
            correction = None  # the card's own set (or part of it): choose again, out of fold
    evaluation = document_evaluation(docs_dir, loaded, cache_dir, correction=correction)
    if write_card:
        write_card_evaluation(loaded.version, evaluation, loaded.path.parent)
    return evaluation
