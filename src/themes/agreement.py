"""Agreement between annotators: Cohen's kappa (one definition) and Krippendorff's alpha.

:func:`cohen_kappa` is the project's only kappa: the label store's per-pair agreement
(:func:`annotator_agreement`) and the real-text sets' per-theme agreement
(:func:`cohen_kappa_by_theme`, used by :func:`themes.devset.agreement`) both call it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import pandas as pd

from themes.config import CORE_THEMES
from themes.errors import Errors, LabelError
from themes.labels import current_labels


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two annotators' labels of the same items (scikit-learn's ``cohen_kappa_score``).

    When both used one and the same label throughout, agreement by chance is total and kappa is
    undefined: the result is ``nan`` (scikit-learn would warn and divide by zero).
    """
    from sklearn.metrics import cohen_kappa_score

    if len(set(a) | set(b)) < 2:
        return float("nan")
    return float(cohen_kappa_score(list(a), list(b)))


def labels_by_id(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """``id -> set(labels)`` from a DataFrame or an iterable of mappings."""
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
    return {str(r["id"]): set(r["labels"]) for r in records}


def cohen_kappa_by_theme(
    a_rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    b_rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    themes: Sequence[str] = CORE_THEMES,
) -> dict[str, float]:
    """Cohen's kappa of two annotators for each theme, on the ids both labelled.

    Rows hold ``id`` and ``labels`` (the themes present). A theme that neither annotator ever
    used (or both used everywhere) has kappa ``nan``.
    """
    a, b = labels_by_id(a_rows), labels_by_id(b_rows)
    common = sorted(set(a) & set(b))
    if not common:
        raise LabelError(Errors.E514)
    return {theme: cohen_kappa([theme in a[i] for i in common], [theme in b[i] for i in common])
            for theme in themes}


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha for nominal data.

    Args:
        units: per unit (passage), the values the coders gave it; missing values left out. Units
            with fewer than two values are not pairable and are ignored.

    Returns NaN when fewer than two values are pairable or only one category was ever used.
    """
    coincidence: Counter[tuple[Hashable, Hashable]] = Counter()
    for unit in units:
        values = list(unit)
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                coincidence[(c, k)] += pairs / (m - 1)
    marginals: Counter[Hashable] = Counter()
    for (c, _), o in coincidence.items():
        marginals[c] += o
    n = sum(marginals.values())
    if n < 2 or len(marginals) < 2:
        return float("nan")
    observed = sum(o for (c, k), o in coincidence.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k)
    return 1.0 - (n - 1) * observed / expected


@dataclass
class Agreement:
    """Agreement between annotators: per theme and pair (kappa), per theme (alpha)."""

    pairs: pd.DataFrame  # theme, annotator_a, annotator_b, n_both, percent_agreement, kappa
    themes: pd.DataFrame  # theme, n_annotators, n_units, alpha, mean_kappa


def annotator_agreement(decisions: pd.DataFrame, themes: Sequence[str] | None = None) -> Agreement:
    """Cohen's kappa per theme for every pair of annotators, and Krippendorff's alpha per theme.

    Uses each annotator's current label (latest decision) per passage and theme; a passage
    counts for a pair when both decided it.
    """
    current = current_labels(decisions)
    themes = sorted(current["theme"].unique()) if themes is None else list(themes)
    pair_rows, theme_rows = [], []
    for theme in themes:
        part = current[current["theme"] == theme]
        wide = part.pivot(index="passage_id", columns="annotator", values="value")
        annotators = sorted(wide.columns)
        kappas = []
        for a, b in combinations(annotators, 2):
            both = wide[[a, b]].dropna()
            if both.empty:
                continue
            same = float((both[a] == both[b]).mean())
            kappa = cohen_kappa(list(both[a]), list(both[b]))
            kappas.append(kappa)
            pair_rows.append({"theme": theme, "annotator_a": a, "annotator_b": b, "n_both": len(both),
                              "percent_agreement": round(same, 4),
                              "kappa": round(kappa, 4) if not math.isnan(kappa) else kappa})
        units = [list(row.dropna()) for _, row in wide.iterrows()]
        alpha = krippendorff_alpha_nominal(units)
        valid = [k for k in kappas if not math.isnan(k)]
        theme_rows.append({
            "theme": theme, "n_annotators": len(annotators), "n_units": sum(len(u) >= 2 for u in units),
            "alpha": round(alpha, 4) if not math.isnan(alpha) else alpha,
            "mean_kappa": round(sum(valid) / len(valid), 4) if valid else float("nan"),
        })
    pair_columns = ["theme", "annotator_a", "annotator_b", "n_both", "percent_agreement", "kappa"]
    theme_columns = ["theme", "n_annotators", "n_units", "alpha", "mean_kappa"]
    return Agreement(pd.DataFrame(pair_rows, columns=pair_columns), pd.DataFrame(theme_rows, columns=theme_columns))
