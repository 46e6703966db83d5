"""Correcting shares for classifier error: Rogan–Gladen with a bootstrap interval.

The error rates are document-level confusion counts (:class:`ClassifierError`) measured on a
held-out document set under the same presence rule that counting uses; a model card's
``document_evaluation`` records both (:func:`correction_from_card`). Where sensitivity +
specificity - 1 is below :data:`MIN_YOUDEN` the corrected share is reported as unreliable, never
clipped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from themes.errors import ArgumentError, Errors
from themes.presence import PresenceRule

#: Below this Youden index (sensitivity + specificity - 1) the Rogan–Gladen denominator is so small
#: that a few misjudged documents swing the corrected share across its whole range: the corrected
#: share is then reported as unreliable (NaN, with a note) instead of being computed and clipped.
MIN_YOUDEN = 0.2


@dataclass(frozen=True)
class ClassifierError:
    """Document-level confusion counts for one theme, measured on held-out documents.

    Args:
        theme: theme id.
        tp: documents with the theme that the model tagged.
        fn: documents with the theme that the model missed.
        tn: documents without the theme that the model left untagged.
        fp: documents without the theme that the model tagged.
    """

    theme: str
    tp: int
    fn: int
    tn: int
    fp: int

    def __post_init__(self) -> None:
        for name in ("tp", "fn", "tn", "fp"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ArgumentError(Errors.E606.format(theme=self.theme, field=name, value=value))

    @property
    def sensitivity(self) -> float:
        """tp / (tp + fn); NaN when no held-out document has the theme."""
        n = self.tp + self.fn
        return self.tp / n if n else math.nan

    @property
    def specificity(self) -> float:
        """tn / (tn + fp); NaN when every held-out document has the theme."""
        n = self.tn + self.fp
        return self.tn / n if n else math.nan


@dataclass(frozen=True)
class Correction:
    """What the corrected shares rest on: a model card's document evaluation.

    Args:
        errors: per theme, document-level confusion counts on the evaluation documents under
            ``rule`` (each document judged by the rule fitted without it).
        rule: the presence rule chosen on those documents; counting uses the same one.
        documents: sha256 ids of the evaluation documents.
        source: the evaluation set's folder, as the card names it (``corpus/doc-eval``).
        model_version: the model whose card it is.
    """

    errors: dict[str, ClassifierError]
    rule: PresenceRule
    documents: tuple[str, ...]
    source: str
    model_version: str

    @property
    def n_documents(self) -> int:
        return len(self.documents)

    def provenance(self) -> str:
        """One sentence saying exactly where the sensitivity and specificity come from."""
        return (f"sensitivity and specificity measured on {self.n_documents} held-out documents "
                f"({self.source}, never trained on, never counted by a run) recorded in the card of model "
                f"{self.model_version} (document_evaluation), each document judged out of fold under the "
                f"presence rule '{self.rule.kind}': {self.rule.describe()}")


def correction_from_card(card: Mapping[str, Any]) -> Correction | None:
    """The presence rule and error counts a model card's ``document_evaluation`` records, or
    ``None`` when the card has none (then shares are counted with the default rule, uncorrected)."""
    evaluation = card.get("document_evaluation")
    if not evaluation:
        return None
    errors = {t: ClassifierError(t, int(c["tp"]), int(c["fn"]), int(c["tn"]), int(c["fp"]))
              for t, c in evaluation["themes"].items()}
    return Correction(errors=errors, rule=PresenceRule.from_dict(evaluation["rule"]),
                      documents=tuple(evaluation["documents"]), source=str(evaluation.get("set", "?")),
                      model_version=str(card.get("version", evaluation.get("model_version", "?"))))


def rogan_gladen(p: float, sensitivity: float, specificity: float) -> float:
    """True prevalence from an observed share: (p + spec - 1) / (sens + spec - 1), clipped to [0, 1].

    NaN when an input is NaN or the classifier is no better than chance (sens + spec <= 1).
    """
    youden = sensitivity + specificity - 1
    if any(math.isnan(v) for v in (p, sensitivity, specificity)) or youden <= 0:
        return math.nan
    return min(1.0, max(0.0, (p + specificity - 1) / youden))


@dataclass(frozen=True)
class CorrectedShare:
    """A Rogan–Gladen corrected share, its bootstrap interval, and why it may be missing.

    ``share``, ``low`` and ``high`` are NaN when the share cannot be corrected or the correction
    is unreliable; ``note`` then says which (empty when nothing needs saying).
    """

    share: float
    low: float
    high: float
    youden: float
    note: str = ""


def bootstrap_draws(
    n_present: int, n_documents: int, error: ClassifierError, draws: int = 4000,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Bootstrap draws of the corrected share, resampling the counted and the evaluation documents.

    A Bayesian bootstrap (Rubin 1981) over documents: each draw gives every counted document and
    every evaluation document a random Dirichlet weight, with half a pseudo-document per cell
    (Jeffreys) so that 0 of n or n of n does not collapse to a point. By the Dirichlet aggregation
    property only the cell totals matter: the observed share is Beta(k + 1/2, n - k + 1/2) over the
    counted documents, and the evaluation documents' tp/fn/tn/fp weights are
    Dirichlet(tp + 1/2, fn + 1/2, tn + 1/2, fp + 1/2), giving sensitivity and specificity. Draws
    where sens + spec <= 1 (no better than chance) are left out; the rest are clipped to [0, 1].
    """
    rng = rng or np.random.default_rng(0)
    p = rng.beta(n_present + 0.5, n_documents - n_present + 0.5, draws)
    cells = rng.dirichlet([error.tp + 0.5, error.fn + 0.5, error.tn + 0.5, error.fp + 0.5], draws)
    sens = cells[:, 0] / (cells[:, 0] + cells[:, 1])
    spec = cells[:, 2] / (cells[:, 2] + cells[:, 3])
    youden = sens + spec - 1
    ok = youden > 0
    return np.clip((p[ok] + spec[ok] - 1) / youden[ok], 0.0, 1.0)


def corrected_share(
    n_present: int, n_documents: int, error: ClassifierError | None,
    draws: int = 4000, level: float = 0.95, seed: int = 0, min_youden: float = MIN_YOUDEN,
) -> CorrectedShare:
    """Rogan–Gladen share with a bootstrap interval (:func:`bootstrap_draws`), or why there is none.

    Args:
        n_present: documents of this run in which the theme is present under the rule.
        n_documents: readable documents of this run.
        error: confusion counts on the evaluation documents under the same rule, or ``None``.
        min_youden: below this sensitivity + specificity - 1 the share is unreliable: NaN and a note.
    """
    nan = math.nan
    if error is None:
        return CorrectedShare(nan, nan, nan, nan, "not corrected: no document evaluation for this theme")
    if n_documents == 0:
        return CorrectedShare(nan, nan, nan, nan, "no documents")
    sens, spec = error.sensitivity, error.specificity
    youden = sens + spec - 1
    if math.isnan(youden):
        return CorrectedShare(nan, nan, nan, nan, "not estimable: the evaluation documents lack "
                              + ("documents with" if math.isnan(sens) else "documents without") + " this theme")
    if youden < min_youden:
        return CorrectedShare(nan, nan, nan, youden, f"unreliable: sensitivity + specificity - 1 = {youden:.2f} "
                              f"on the evaluation documents, below {min_youden:g}")
    raw = (n_present / n_documents + spec - 1) / youden
    point = min(1.0, max(0.0, raw))
    note = ""
    if raw < 0:
        note = "observed share is below the evaluation documents' false-positive rate: corrected share shown at 0"
    elif raw > 1:
        note = "observed share is above what the evaluation documents' error rates allow: corrected share shown at 1"
    values = bootstrap_draws(n_present, n_documents, error, draws, np.random.default_rng(seed))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail]) if len(values) else (nan, nan)
    return CorrectedShare(point, float(low), float(high), youden, note)


def corrected_prevalence(
    n_present: int, n_documents: int, error: ClassifierError | None,
    draws: int = 4000, level: float = 0.95, seed: int = 0, min_youden: float = MIN_YOUDEN,
) -> tuple[float, float, float]:
    """(share, low, high) of :func:`corrected_share`; NaN when not estimable or unreliable."""
    c = corrected_share(n_present, n_documents, error, draws, level, seed, min_youden)
    return c.share, c.low, c.high


def document_errors(
    docs: Sequence[str], true_labels: Sequence[Iterable[str]], predicted: np.ndarray, themes: Sequence[str],
) -> list[ClassifierError]:
    """Document-level confusion counts per theme from passage-level labels and predictions.

    A document has a theme when any of its passages has it, in the labels and in the predictions
    alike, as in counting.

    Args:
        docs: document id of each labelled passage (held-out documents only).
        true_labels: theme ids each passage is labelled with.
        predicted: 0/1 matrix (passages × themes), e.g. ``model.predict(texts)``.
        themes: theme ids of ``predicted``'s columns.
    """
    predicted = np.asarray(predicted)
    if predicted.shape != (len(docs), len(themes)):
        raise ValueError(f"predicted has shape {predicted.shape}; expected ({len(docs)}, {len(themes)}) "
                         "for the passages and themes given.")
    truth = pd.DataFrame([[t in set(labels) for t in themes] for labels in true_labels],
                         columns=list(themes), dtype=bool)
    truth["doc"] = list(docs)
    pred = pd.DataFrame(predicted.astype(bool), columns=list(themes))
    pred["doc"] = list(docs)
    t_doc, p_doc = truth.groupby("doc").any(), pred.groupby("doc").any()
    out = []
    for theme in themes:
        t, p = t_doc[theme], p_doc[theme]
        out.append(ClassifierError(theme, int((t & p).sum()), int((t & ~p).sum()),
                                   int((~t & ~p).sum()), int((~t & p).sum())))
    return out
