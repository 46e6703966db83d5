"""Count themes by document, as the Panel does: a theme is present when any passage is tagged.

Shares come with 95% Wilson score intervals, overall and split by year, area and review type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials; (0, 1) when ``n`` is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp away floating error so k=0 gives exactly 0 and k=n exactly 1.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


@dataclass
class Aggregates:
    """The tables a run reports."""

    document_themes: pd.DataFrame  # doc_id, theme, present, n_passages, max_score
    prevalence: pd.DataFrame  # theme, n_documents, n_present, share, ci_low, ci_high
    breakdowns: pd.DataFrame  # by, group, theme, n_documents, n_present, share, ci_low, ci_high


def document_themes(
    documents: pd.DataFrame, passages: pd.DataFrame, predictions: pd.DataFrame, themes: Sequence[str]
) -> pd.DataFrame:
    """One row per readable document and theme: present, tagged passage count, best score."""
    ok_docs = documents.loc[documents["status"] == "ok", "doc_id"]
    grid = pd.MultiIndex.from_product([ok_docs, list(themes)], names=["doc_id", "theme"]).to_frame(index=False)
    joined = predictions.merge(passages[["passage_id", "doc_id"]], on="passage_id")
    per = (
        joined.groupby(["doc_id", "theme"])
        .agg(n_passages=("tagged", "sum"), max_score=("score", "max"))
        .reset_index()
    )
    out = grid.merge(per, on=["doc_id", "theme"], how="left")
    out["n_passages"] = out["n_passages"].fillna(0).astype(int)
    out["max_score"] = out["max_score"].fillna(0.0).round(4)
    out["present"] = out["n_passages"] > 0
    return out[["doc_id", "theme", "present", "n_passages", "max_score"]]


def _shares(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = frame.groupby(keys, dropna=False).agg(
        n_documents=("doc_id", "nunique"), n_present=("present", "sum")
    ).reset_index()
    grouped["n_present"] = grouped["n_present"].astype(int)
    grouped["share"] = (grouped["n_present"] / grouped["n_documents"]).round(4)
    intervals = [wilson_interval(k, n) for k, n in zip(grouped["n_present"], grouped["n_documents"])]
    grouped["ci_low"] = [round(lo, 4) for lo, _ in intervals]
    grouped["ci_high"] = [round(hi, 4) for _, hi in intervals]
    return grouped


def prevalence(doc_themes: pd.DataFrame) -> pd.DataFrame:
    """Share of documents with each theme and its 95% Wilson interval."""
    return _shares(doc_themes, ["theme"])


def _group_label(value: object) -> str:
    """'2020' rather than '2020.0' when a year column came through as floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def breakdowns(doc_themes: pd.DataFrame, documents: pd.DataFrame,
               by: Sequence[str] = ("year", "area", "review_type")) -> pd.DataFrame:
    """Prevalence within each year, area and review type that the documents name."""
    merged = doc_themes.merge(documents[["doc_id", *by]], on="doc_id")
    parts = []
    for key in by:
        known = merged[merged[key].notna()]
        if known.empty:
            continue
        table = _shares(known, [key, "theme"]).rename(columns={key: "group"})
        table.insert(0, "by", key)
        table["group"] = table["group"].map(_group_label)
        parts.append(table)
    columns = ["by", "group", "theme", "n_documents", "n_present", "share", "ci_low", "ci_high"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def aggregate(documents: pd.DataFrame, passages: pd.DataFrame, predictions: pd.DataFrame,
              themes: Sequence[str]) -> Aggregates:
    """Every table of a run from its documents, passages and predictions."""
    doc_themes = document_themes(documents, passages, predictions, themes)
    return Aggregates(doc_themes, prevalence(doc_themes), breakdowns(doc_themes, documents))
