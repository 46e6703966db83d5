"""Active learning: which undecided (passage, theme) pairs a reviewer should label next.

:func:`label_next` is uncertainty sampling with diversity caps: pairs scored near their theme's
threshold (:func:`run_thresholds`) come first, spread over documents and themes.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from themes.config import MODELS_DIR
from themes.review import Run


def run_thresholds(run: Run, models_dir: Path = MODELS_DIR) -> dict[str, float]:
    """Each theme's threshold: from the run's model card, or else from the run's own tags.

    Without the card, the threshold lies between the highest untagged and the lowest tagged score;
    the midpoint is used.
    """
    if run.model_version:
        card = Path(models_dir) / run.model_version / "card.json"
        if card.is_file():
            thresholds = json.loads(card.read_text()).get("thresholds") or {}
            if set(run.themes) <= set(thresholds):
                return {t: float(thresholds[t]) for t in run.themes}
    out = {}
    for theme in run.themes:
        s, t = run.scores[theme], run.tagged[theme]
        low = float(s[~t].max()) if (~t).any() else 0.0
        high = float(s[t].min()) if t.any() else 1.0
        out[theme] = (low + high) / 2 if t.any() and (~t).any() else (0.5 if not t.any() else high)
    return out


def label_next(
    run: Run,
    thresholds: dict[str, float],
    decisions: pd.DataFrame | None = None,
    n: int = 20,
    themes: Sequence[str] | None = None,
    max_per_document: int = 3,
    max_per_theme: int | None = None,
) -> pd.DataFrame:
    """The undecided (passage, theme) pairs whose labels should help the model most.

    Uncertainty sampling: pairs whose score is closest to the theme's threshold come first
    (``uncertainty`` is 1 at the threshold, 0 at the far end of the scale). Diversity: at most
    ``max_per_document`` pairs from one document, at most ``max_per_theme`` per theme (default
    about twice an even share), one theme per passage, and no repeated passage text (boilerplate);
    the caps are relaxed only when too few pairs remain.
    """
    themes = [t for t in (themes or run.themes) if t in run.scores.columns]
    decided: set[tuple[str, str]] = set()
    if decisions is not None and not decisions.empty:
        decided = set(zip(decisions["passage_id"], decisions["theme"]))
    long = run.scores[themes].stack().rename("score").reset_index()
    long.columns = ["passage_id", "theme", "score"]
    long = long[[(p, t) not in decided for p, t in zip(long["passage_id"], long["theme"])]]
    threshold = long["theme"].map(thresholds).astype(float)
    scale = np.maximum(threshold, 1 - threshold)
    long["threshold"] = threshold
    long["uncertainty"] = (1 - (long["score"] - threshold).abs() / scale).clip(0, 1)
    long["tagged"] = long["score"] >= threshold
    meta = run.passages.set_index("passage_id")
    long["doc_id"] = long["passage_id"].map(meta["doc_id"])
    long["norm"] = long["passage_id"].map(meta["text"]).map(lambda t: re.sub(r"[^a-z0-9]", "", str(t).lower()))
    long = long.sort_values(["uncertainty", "passage_id", "theme"], ascending=[False, True, True], kind="stable")
    per_theme = max_per_theme or max(1, math.ceil(2 * n / max(1, len(themes))))

    chosen: list[int] = []
    seen_passages: set[str] = set()
    seen_texts: set[str] = set()
    docs: Counter[str] = Counter()
    by_theme: Counter[str] = Counter()
    for capped in (True, False):
        for idx, row in long.iterrows():
            if len(chosen) >= n:
                break
            if idx in chosen or row["passage_id"] in seen_passages or row["norm"] in seen_texts:
                continue
            if capped and (docs[row["doc_id"]] >= max_per_document or by_theme[row["theme"]] >= per_theme):
                continue
            chosen.append(idx)
            seen_passages.add(row["passage_id"])
            seen_texts.add(row["norm"])
            docs[row["doc_id"]] += 1
            by_theme[row["theme"]] += 1
    queue = long.loc[chosen].drop(columns=["norm", "doc_id"])
    info = run.passages[["passage_id", "doc_id", "title", "file", "page", "text"]]
    return queue.merge(info, on="passage_id", how="left").reset_index(drop=True)
