"""Document-level calls on the held-out document set (corpus/doc-eval), model beside keyword search.

For the current default model (or ``--model``), the 40 team-written review-style PDFs of
``corpus/doc-eval`` go through the pipeline's own ingest → segment → classify path
(:func:`themes.doceval.evaluate_documents`); the presence rule is chosen by cross-validation over
the documents (:func:`themes.doceval.choose_presence_rule`) and every document is judged out of
fold. Keyword search (the codebook's keywords per passage, a minimum passage count chosen the same
way) is scored beside it.

Per core theme it reports document accuracy, |predicted share − true share| and whether the
corrected share's 95% interval covers the true share. The corrected share of the set is
cross-fitted: each fold's observed share is corrected with the other folds' rates (correcting
the set with its own rates gives back its true share by construction, so that would prove
nothing). Targets (issue 13): accuracy ≥ 0.9, |error| ≤ 0.05, coverage for at least 3 of the 4
core themes.

Run::

    nice .venv/bin/python benchmarks/doceval.py                 # ~2-3 min on 2 busy cores
    nice .venv/bin/python benchmarks/doceval.py --model VERSION --cache-dir out/cache

Writes ``benchmarks/results/doceval.md`` and ``doceval.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from themes.config import CORE_THEMES, DOC_EVAL_DIR, PROJECT_ROOT
from themes.doceval import document_evaluation
from themes.tables import document_evaluation_markdown

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
TARGET_ACCURACY = 0.9
TARGET_ERROR = 0.05
TARGET_COVERED = 3  # of the 4 core themes


def core_rows(block: dict) -> list[dict]:
    """Per core theme: accuracy, |share error|, and whether the corrected interval covers the truth."""
    rows = []
    for theme in CORE_THEMES:
        b = block["themes"][theme]
        low, high = b.get("corrected_low"), b.get("corrected_high")
        covers = None if low is None else bool(low <= b["true_share"] <= high)
        rows.append({"theme": theme, "accuracy": b["accuracy"], "abs_share_error": abs(b["share_error"]),
                     "true_share": b["true_share"], "predicted_share": b["predicted_share"],
                     "corrected_share": b.get("corrected_share"), "corrected_low": low, "corrected_high": high,
                     "covers": covers, "note": b.get("corrected_note", "")})
    return rows


def targets(rows: list[dict]) -> dict:
    return {
        "accuracy_ge_0.9": sum(r["accuracy"] >= TARGET_ACCURACY for r in rows),
        "abs_error_le_0.05": sum(r["abs_share_error"] <= TARGET_ERROR + 1e-9 for r in rows),
        "interval_covers": sum(bool(r["covers"]) for r in rows),
        "met": all(r["accuracy"] >= TARGET_ACCURACY for r in rows)
        and all(r["abs_share_error"] <= TARGET_ERROR + 1e-9 for r in rows)
        and sum(bool(r["covers"]) for r in rows) >= TARGET_COVERED,
    }


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown(evaluation: dict, systems: dict[str, list[dict]], seconds: float, command: str) -> str:
    lines = [
        "# Document-level benchmark: held-out document set (issue 13)", "",
        (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: model `{evaluation['model_version']}` on "
         f"{evaluation['n_documents']} documents of `{evaluation['set']}`, {seconds:.0f} s. Command: `{command}`."), "",
        ("Targets per core theme: document accuracy ≥ 0.9; |predicted share − true share| ≤ 0.05; the corrected "
         "share's 95% interval covers the true share for at least 3 of the 4 core themes. Calls are out of fold "
         "(the rule fitted on the other folds); the corrected share is cross-fitted (each fold corrected with "
         "the other folds' rates)."), "",
    ]
    for name, rows in systems.items():
        t = targets(rows)
        lines += [f"## {name}", "",
                  ("| theme | accuracy | \\|share error\\| | true share | predicted share | corrected share (95%) | "
                   "interval covers truth |"), "|---|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            corrected = ("unreliable" if r["corrected_share"] is None and "unreliable" in str(r["note"])
                         else "—" if r["corrected_share"] is None
                         else f"{r['corrected_share']:.3f} ({r['corrected_low']:.3f}–{r['corrected_high']:.3f})")
            lines.append(f"| {r['theme']} | {_cell(r['accuracy'])} | {_cell(r['abs_share_error'])} | "
                         f"{_cell(r['true_share'])} | {_cell(r['predicted_share'])} | {corrected} | {_cell(r['covers'])} |")
        lines += ["", (f"Accuracy ≥ 0.9: {t['accuracy_ge_0.9']} of 4. |error| ≤ 0.05: {t['abs_error_le_0.05']} of 4. "
                       f"Interval covers: {t['interval_covers']} of 4. **Targets met: {'yes' if t['met'] else 'no'}.**"), ""]
    lines += ["## Every theme, rule choice and cross-validation scores", "", document_evaluation_markdown(evaluation), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model version or folder; default models/DEFAULT")
    parser.add_argument("--documents", type=Path, default=DOC_EVAL_DIR)
    parser.add_argument("--cache-dir", type=Path, default=None, help="the pipeline's per-document cache")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    evaluation = document_evaluation(args.documents, args.model, args.cache_dir)
    seconds = time.perf_counter() - started
    systems = {"Model": core_rows(evaluation), "Keyword search": core_rows(evaluation["keyword_search"])}
    command = "python benchmarks/doceval.py" + (f" --model {args.model}" if args.model else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "doceval.md").write_text(markdown(evaluation, systems, seconds, command), encoding="utf-8")
    summary = {"model_version": evaluation["model_version"], "set": evaluation["set"],
               "n_documents": evaluation["n_documents"], "seconds": round(seconds, 1),
               "rule": {"kind": evaluation["rule"]["kind"], "cv": evaluation["rule"]["cv"]},
               "keyword_rule": evaluation["keyword_search"]["rule"]["description"],
               "core": {name: {"rows": rows, "targets": targets(rows)} for name, rows in systems.items()},
               "evaluation": evaluation}
    (args.out / "doceval.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print((args.out / "doceval.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
