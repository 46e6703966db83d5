"""Markdown tables for model cards, evaluations, benchmarks and the command line.

``DataFrame.to_markdown`` (tabulate) draws them; :func:`markdown_table` fixes the house style once:
no index, floats to three decimals, missing values blank. The document-level evaluation's table
lives here too, because the model card (:mod:`themes.registry`) renders it and
:mod:`themes.doceval`, which computes it, depends on the registry.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table: no index, floats to 3 decimals, missing values blank."""
    # tabulate leaves None blank (``missingval``) but prints NaN as "nan": turn every missing value into None.
    return table.astype(object).where(table.notna(), None).to_markdown(index=False, floatfmt=".3f")


def document_evaluation_table(evaluation: dict, themes: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per system (model, keyword search) and theme of a :func:`themes.doceval.document_evaluation`."""
    rows = []
    for system, block in (("model", evaluation), ("keyword search", evaluation.get("keyword_search", {}))):
        for theme, b in block.get("themes", {}).items():
            if themes is not None and theme not in themes:
                continue
            corrected = ("unreliable" if b.get("corrected_share") is None and "unreliable" in str(b.get("corrected_note"))
                         else "—" if b.get("corrected_share") is None
                         else f"{b['corrected_share']:.2f} ({b['corrected_low']:.2f}–{b['corrected_high']:.2f})")
            rows.append({"system": system, "theme": theme, "accuracy": b["accuracy"],
                         "sensitivity": b["sensitivity"], "specificity": b["specificity"],
                         "true_share": b["true_share"], "predicted_share": b["predicted_share"],
                         "share_error": b["share_error"], "corrected_share (95% interval)": corrected})
    return pd.DataFrame(rows)


def document_evaluation_markdown(evaluation: dict) -> str:
    """The card's document-evaluation section: where, how many, which rule, and the table."""
    rule = evaluation["rule"]
    lines = [(f"Measured on {evaluation['n_documents']} held-out documents of `{evaluation['set']}` "
              f"(never trained on, never counted by a run). Presence rule: **{rule['kind']}**, "
              f"{rule['description']}. {evaluation.get('counts', '')}."), ""]
    cv = rule.get("cv")
    if cv:
        lines += ["Presence rules compared (" + cv["split"] + f", {cv['folds']} folds x {cv['repeats']} repeats):", "",
                  "| rule | mean CV accuracy | core themes |", "|---|---|---|"]
        lines += [f"| {k}{' (chosen)' if k == cv['chosen'] else ''} | {v['mean_accuracy']} | {v['mean_accuracy_core']} |"
                  for k, v in cv["candidates"].items()]
        lines.append("")
    lines.append(markdown_table(document_evaluation_table(evaluation)))
    return "\n".join(lines)
