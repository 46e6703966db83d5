"""Choose the default model's recipe on the training documents only: real weight x codebook rules.

Every candidate is cross-validated with ``GroupKFold(5)`` by document over the training documents
(written training documents + real Ofsted training reports); per-theme thresholds are chosen on the
pooled out-of-fold scores, and the candidates are compared on the out-of-fold macro-F1 over the core
themes, separately on the real rows and the written rows. No held-out document and no seed sentence
is read: those stay for ``benchmarks/classifier.py`` to score the winner once.

The choice: the best mean of real and written out-of-fold macro-F1 (real prose first: among
candidates within 0.01 of the best mean, the higher real score wins).

Run::

    nice python benchmarks/recipe.py     # ~15 min on 2 busy cores

Writes ``benchmarks/results/recipe.md`` and ``recipe.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from themes.classify import ThemeClassifier
from themes.codebook import load_codebook
from themes.config import CORE_THEMES
from themes.dataset import is_real, load_labels, load_real_training, split
from themes.evaluate import best_thresholds, score
from themes.tables import markdown_table
from themes.train import code_version, out_of_fold, sample_weights, targets, trainable_themes

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: (real weight, rule_weight) pairs tried.
GRID = ((1.0, 0.0), (1.0, 0.5), (3.0, 0.0), (3.0, 0.5), (3.0, 1.0), (6.0, 0.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()

    written = load_labels()
    real = load_real_training()
    if not len(real):
        sys.exit("The real Ofsted sets need ../shared; the recipe is chosen on real text first.")
    train_df = pd.concat([split(written)[0], split(real)[0]], ignore_index=True)
    themes = trainable_themes(train_df[~is_real(train_df)], load_codebook().ids)
    y = targets(train_df, themes)
    real_rows = is_real(train_df)
    core_cols = [themes.index(t) for t in CORE_THEMES]
    rows = []
    for real_weight, rule_weight in GRID:
        started = time.perf_counter()
        print(f"... real x{real_weight:g}, rules {rule_weight:g}", file=sys.stderr, flush=True)
        with threadpool_limits(1):
            oof = out_of_fold(ThemeClassifier(themes=themes, rule_weight=rule_weight), list(train_df["text"]), y,
                              list(train_df["doc"]), weights=sample_weights(train_df, real_weight))
        pred = (oof >= best_thresholds(y, oof)).astype(int)
        s_real = score("x", "real", y[real_rows][:, core_cols], pred[real_rows][:, core_cols], CORE_THEMES,
                       list(train_df["kind"][real_rows]))
        s_written = score("x", "written", y[~real_rows][:, core_cols], pred[~real_rows][:, core_cols],
                          CORE_THEMES, list(train_df["kind"][~real_rows]))
        row = {"real_weight": real_weight, "rule_weight": rule_weight,
               "oof_real_macro_f1_core": round(s_real.macro_f1_core, 3),
               "oof_written_macro_f1_core": round(s_written.macro_f1_core, 3),
               "oof_real_hard_neg_fpr": round(s_real.hard_negative_fpr or 0.0, 3),
               "cv_s": round(time.perf_counter() - started)}
        for t in CORE_THEMES:
            row[f"real_f1_{t}"] = round(float(s_real.per_theme.loc[t, "f1"]), 3)
        row["mean"] = round((row["oof_real_macro_f1_core"] + row["oof_written_macro_f1_core"]) / 2, 3)
        rows.append(row)
    table = pd.DataFrame(rows)
    near = table[table["mean"] >= table["mean"].max() - 0.01]
    best = near.sort_values(["oof_real_macro_f1_core", "mean"], ascending=False).iloc[0]
    meta = {"run_at": datetime.now(UTC).isoformat(timespec="seconds"), "code_version": code_version(),
            "n_train": len(train_df), "n_real_train": int(real_rows.sum()),
            "n_train_docs": int(train_df["doc"].nunique()), "real_sets": sorted(real["source"].unique()),
            "chosen": {"real_weight": float(best["real_weight"]), "rule_weight": float(best["rule_weight"])}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipe.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    lines = ["# Recipe choice (training documents only)", "",
             f"Run {meta['run_at']} (code {meta['code_version']}): {meta['n_train']} passages and sentences in "
             f"{meta['n_train_docs']} training documents, {meta['n_real_train']} of them real Ofsted sentences "
             f"({', '.join(meta['real_sets'])}). GroupKFold(5) by document; thresholds on the pooled out-of-fold "
             "scores; held-out documents and seeds not read.", "",
             markdown_table(table), "",
             f"Chosen: real weight {meta['chosen']['real_weight']:g}, rule weight {meta['chosen']['rule_weight']:g} "
             "(best mean of real and written out-of-fold macro-F1; within 0.01 of it, the higher real score)."]
    (args.out / "recipe.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
