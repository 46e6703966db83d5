"""Tag passages with practice themes: a calibrated multi-label linear classifier.

The features are what keyword search lacks: word n-grams over *scope-marked* tokens (negated and
hedged words marked, :func:`themes.features.scope_tokens`), plus character n-grams for spelling
variants and, optionally, the codebook's keywords with their scope (:func:`themes.features.rule_features`).
One logistic regression per theme,
calibrated with sigmoid scaling; one threshold per theme chosen on out-of-fold predictions.

The estimator follows scikit-learn's contract: parameters in ``__init__``, learned attributes
end in ``_``, ``fit`` returns ``self``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from themes.codebook import load_codebook
from themes.errors import ArgumentError, Errors, ModelError
from themes.features import (
    RULE_FEATURE_KINDS,
    char_wb_transform,
    fast_char_wb,
    rule_features,
    scope_tokens,
)
from themes.types import Passage, PassageScores


def _scope_analyzer(text: str) -> list[str]:
    """Scope-marked tokens and their bigrams (saved models name this function: keep it here)."""
    tokens = scope_tokens(text)
    return tokens + [f"{a} {b}" for a, b in pairwise(tokens)]


#: Words the explainer writes for the scope marks (``neg_`` -> "not ", ``hyp_`` -> "would ").
SCOPE_WORDS = ("not", "would")


def informative_term(term: str) -> bool:
    """Whether an explanation term says something to a reader: not made only of stop words once
    its scope words are set aside ("as", "that", "not the" explain nothing)."""
    words = [w for w in term.split() if w not in SCOPE_WORDS]
    return bool(words) and not all(w in ENGLISH_STOP_WORDS for w in words)


@dataclass(frozen=True)
class _StackedSigmoid:
    """Every theme's sigmoid-calibrated linear models as one matrix, scored in one sparse product.

    ``CalibratedClassifierCV`` averages, over its folds k, ``expit(-(a_k * (x·w_k + c_k) + b_k))``;
    calling 14 of them one by one costs more than the features. Same numbers, one product.
    """

    weights: np.ndarray  # (n_features, n_models)
    intercepts: np.ndarray  # (n_models,)
    a: np.ndarray
    b: np.ndarray
    theme_of: np.ndarray  # (n_models,) column of the theme each model belongs to
    n_themes: int

    def predict_proba(self, features: sparse.csr_matrix) -> np.ndarray:
        decision = np.asarray(features @ self.weights) + self.intercepts
        proba = expit(-(self.a * decision + self.b))
        out = np.zeros((features.shape[0], self.n_themes))
        np.add.at(out.T, self.theme_of, proba.T)
        out /= np.bincount(self.theme_of, minlength=self.n_themes)
        out[(out > 1.0) & (out <= 1.0 + 1e-5)] = 1.0  # as CalibratedClassifierCV clips
        return out


_STACKED: weakref.WeakKeyDictionary[Any, _StackedSigmoid | None] = weakref.WeakKeyDictionary()


def _sigmoid_folds(est: Any) -> list[tuple[np.ndarray, float, float, float]] | None:
    """(weights, intercept, a, b) of each fold of a sigmoid-calibrated binary linear model, else None."""
    if not (isinstance(est, CalibratedClassifierCV) and est.method == "sigmoid"):
        return None
    folds = []
    for fold in est.calibrated_classifiers_:
        linear, calibrator = fold.estimator, fold.calibrators[0]
        if not hasattr(linear, "coef_") or linear.coef_.shape[0] != 1:
            return None
        folds.append((linear.coef_.ravel(), float(np.ravel(linear.intercept_)[0]), calibrator.a_, calibrator.b_))
    return folds


def _stacked_sigmoid_models(model: Any) -> _StackedSigmoid | None:
    """The stacked form of ``model.estimators_``, or None when any is not a sigmoid-calibrated
    linear model (then each is called on its own)."""
    if model not in _STACKED:
        per_theme = [_sigmoid_folds(est) for est in model.estimators_]
        stacked = None
        if per_theme and all(per_theme):
            folds = [(j, *fold) for j, theme_folds in enumerate(per_theme) for fold in theme_folds]
            theme_of, weights, intercepts, a, b = zip(*folds)
            stacked = _StackedSigmoid(np.column_stack(weights), np.array(intercepts), np.array(a), np.array(b),
                                      np.array(theme_of), len(per_theme))  # fmt: skip
        _STACKED[model] = stacked
    return _STACKED[model]


def _codebook_keywords() -> dict[str, list[str]]:
    """Every codebook theme's keywords (read once per fit; the model keeps its own copy)."""
    codebook = load_codebook()
    return {t: list(codebook.get(t).keywords) for t in codebook.ids}


@cache
def _model_factory(kind: str, C: float, class_weight: str | None):
    if kind == "svm":
        return lambda: LinearSVC(C=C / 8, class_weight=class_weight)
    return lambda: LogisticRegression(
        C=C, class_weight=class_weight, solver="liblinear", max_iter=1000
    )


class PerThemeClassifier(ClassifierMixin, BaseEstimator):
    """What the theme taggers share: one binary linear model per theme column of ``y``, wrapped in
    sigmoid ``CalibratedClassifierCV`` when the theme has enough examples, and one threshold per theme.

    Subclasses build the features and the linear model; this class fits one model per theme,
    leaving out the rows not labelled for it (``-1``), and predicts against the thresholds.
    """

    def __init__(self, themes: Sequence[str] = (), C: float = 8.0, calibrate: bool = True,
                 class_weight: str | None = "balanced"):
        self.themes = themes
        self.C = C
        self.calibrate = calibrate
        self.class_weight = class_weight

    def _check_targets(self, texts: Sequence[str], y: Any) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 2 or y.shape != (len(texts), len(self.themes)):
            raise ValueError(
                f"y has shape {y.shape}; expected ({len(texts)}, {len(self.themes)}), one column per theme."
            )
        return y

    def _fit_per_theme(self, features: Any, y: np.ndarray, make: Any, uncalibrated: Any,
                       sample_weight: np.ndarray | None = None) -> None:
        """Fit ``estimators_`` (``make()`` per theme, calibrated; ``uncalibrated()`` when a theme
        has fewer than 3 examples of its rarer class) and reset ``thresholds_`` to 0.5."""
        self.estimators_ = []
        for j, theme in enumerate(self.themes_):
            known = y[:, j] >= 0  # -1: this passage was never labelled for this theme
            target = y[known, j]
            if target.min() == target.max():
                raise ModelError(Errors.E406.format(theme=theme))
            n_minority = int(min(target.sum(), len(target) - target.sum()))
            if self.calibrate and n_minority >= 3:
                est = CalibratedClassifierCV(make(), method="sigmoid", cv=min(3, n_minority))
            else:
                est = uncalibrated()
            weight = None if sample_weight is None else np.asarray(sample_weight)[known]
            rows = features if known.all() else features[known]
            self.estimators_.append(est.fit(rows, target, sample_weight=weight))
        self.thresholds_ = np.full(len(self.themes_), 0.5)
        self.n_features_ = features.shape[1]

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """0/1 matrix: each theme's probability against its own threshold."""
        return (self.predict_proba(X) >= self.thresholds_).astype(int)


class ThemeClassifier(PerThemeClassifier):
    """Multi-label theme tagger: TF-IDF features, one calibrated linear model per theme.

    Args:
        themes: theme ids, in the column order of ``y``.
        model: "logreg" (logistic regression) or "svm" (linear SVM, needs calibration).
        C: inverse regularisation strength.
        use_scope: add the negation/hedge scope-marked word features.
        use_words: add plain word 1–2-gram features.
        use_chars: add character 3–5-gram features (within word boundaries).
        calibrate: wrap each model in sigmoid ``CalibratedClassifierCV`` (3 folds).
        class_weight: passed to each linear model; "balanced" helps rare themes.
        rule_weight: weight of the codebook keyword-and-scope block (:func:`rule_features`);
            0 leaves it out. The keywords are read from the codebook when fitting and kept in
            the model (``rule_keywords_``), so a saved model does not depend on a later codebook.
    """

    # scikit-learn reads the parameters from this signature, so each is spelled out (not **kwargs).
    def __init__(self, themes: Sequence[str] = (), model: str = "logreg", C: float = 8.0, use_scope: bool = True,
                 use_words: bool = True, use_chars: bool = True, calibrate: bool = True,
                 class_weight: str | None = "balanced", rule_weight: float = 0.0):
        super().__init__(themes=themes, C=C, calibrate=calibrate, class_weight=class_weight)
        self.model = model
        self.use_scope = use_scope
        self.use_words = use_words
        self.use_chars = use_chars
        self.rule_weight = rule_weight

    # -- features ---------------------------------------------------------------------------
    def _vectorizers(self) -> list[tuple[str, TfidfVectorizer]]:
        parts = []
        if self.use_words:
            parts.append(
                ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                          lowercase=True, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b"))
            )
        if self.use_scope:
            parts.append(
                ("scope", TfidfVectorizer(analyzer=_scope_analyzer, min_df=2, sublinear_tf=True))
            )
        if self.use_chars:
            parts.append(
                ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3,
                                          sublinear_tf=True, max_features=60000))
            )
        if not parts:
            raise ArgumentError(Errors.E407)
        return parts

    def _transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        blocks = [char_wb_transform(vec, texts) if fast_char_wb(vec) else vec.transform(texts)
                  for _, vec in self.vectorizers_]  # fmt: skip
        if getattr(self, "rule_weight", 0.0):  # models saved before rule features lack it
            blocks.append(rule_features(texts, self.rule_keywords_) * self.rule_weight)
        X = sparse.hstack(blocks, format="csr")
        X.sort_indices()  # liblinear can fail on unsorted read-only indices (STACK-NOTES.md)
        return X

    # -- estimator contract -----------------------------------------------------------------
    def fit(self, X: Sequence[str], y: np.ndarray, sample_weight: np.ndarray | None = None) -> ThemeClassifier:
        """Fit on passage texts ``X`` and a 0/1 matrix ``y`` of shape (n_passages, n_themes).

        A ``-1`` in ``y`` means the passage was not labelled for that theme (the real sentences
        are labelled for the core themes only): it is left out of that theme's model.
        ``sample_weight`` (one per passage) lets scarce real sentences count for more than the
        plentiful written ones.
        """
        texts = list(X)
        y = self._check_targets(texts, y)
        self.themes_ = list(self.themes)
        _STACKED.pop(self, None)  # a refit replaces the models a stacked copy was made from
        self.vectorizers_ = self._vectorizers()
        blocks = [vec.fit_transform(texts) for _, vec in self.vectorizers_]
        self.rule_keywords_ = _codebook_keywords() if self.rule_weight else {}
        if self.rule_weight:
            blocks.append(rule_features(texts, self.rule_keywords_) * self.rule_weight)
        features = sparse.hstack(blocks, format="csr")
        features.sort_indices()
        make = _model_factory(self.model, self.C, self.class_weight)
        self._fit_per_theme(features, y, make,
                            make if self.model == "logreg" else lambda: CalibratedClassifierCV(make(), cv=2),
                            sample_weight)
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Calibrated probability per theme, shape (n_passages, n_themes)."""
        features = self._transform(list(X))
        if features.shape[0] == 0:
            return np.zeros((0, len(self.themes_)))
        stacked = _stacked_sigmoid_models(self)
        if stacked is not None:
            return stacked.predict_proba(features)
        return np.column_stack([est.predict_proba(features)[:, 1] for est in self.estimators_])

    # -- explanations -----------------------------------------------------------------------
    def _coefficients(self, j: int) -> np.ndarray:
        est = self.estimators_[j]
        if isinstance(est, CalibratedClassifierCV):
            return np.mean([c.estimator.coef_.ravel() for c in est.calibrated_classifiers_], axis=0)
        return est.coef_.ravel()

    def feature_names(self) -> np.ndarray:
        names = [
            np.array([f"{name}:{f}" for f in vec.get_feature_names_out()])
            for name, vec in self.vectorizers_
        ]
        if getattr(self, "rule_weight", 0.0):
            names.append(np.array([f"rules:{t} keyword {kind}" for t in self.rule_keywords_ for kind in RULE_FEATURE_KINDS]
                                  + ["rules:praise cues", "rules:criticism cues", "rules:hedge cues"]))
        return np.concatenate(names)

    def explain(self, text: str, theme: str, k: int = 5) -> list[str]:
        """The ``k`` word or scope features of ``text`` that pushed its ``theme`` score up most."""
        j = self.themes_.index(theme)
        return self._top_terms(self._transform([text]), self._coefficients(j), k)

    def explain_many(self, texts: Sequence[str], themes: Sequence[Sequence[str]], k: int = 5) -> list[dict[str, list[str]]]:
        """:meth:`explain` for every theme in ``themes[i]`` of every ``texts[i]``, as one
        ``{theme: terms}`` per text: the texts are transformed in one batch and each theme's
        coefficients computed once (one at a time this was most of a run's classify time)."""
        out: list[dict[str, list[str]]] = [{} for _ in texts]
        todo = [i for i, wanted in enumerate(themes) if wanted]
        if not todo:
            return out
        X = self._transform([texts[i] for i in todo])
        coefficients: dict[int, np.ndarray] = {}
        for row, i in enumerate(todo):
            for theme in themes[i]:
                j = self.themes_.index(theme)
                if j not in coefficients:
                    coefficients[j] = self._coefficients(j)
                out[i][theme] = self._top_terms(X[row], coefficients[j], k)
        return out

    def _top_terms(self, row: sparse.csr_matrix, coefficients: np.ndarray, k: int) -> list[str]:
        contributions = row.multiply(coefficients).tocsr()
        names = self._names_cache()
        order = np.argsort(-contributions.data)
        terms: list[str] = []
        for idx in order:
            if contributions.data[idx] <= 0:
                break
            name = names[contributions.indices[idx]]
            if name.startswith("chars:"):
                continue  # character n-grams make poor explanations
            term = name.split(":", 1)[1].replace("neg_", "not ").replace("hyp_", "would ")
            if not informative_term(term):
                continue
            if term not in terms:
                terms.append(term)
            if len(terms) == k:
                break
        return terms

    def _names_cache(self) -> np.ndarray:
        if getattr(self, "_names", None) is None:
            self._names = self.feature_names()
        return self._names


def score_passages(
    model: ThemeClassifier,
    passages: Sequence[Passage],
    model_version: str,
    batch_size: int = 4096,
) -> list[PassageScores]:
    """Score passages in batches (one at a time is ~30x slower) and apply per-theme thresholds."""
    out: list[PassageScores] = []
    for start in range(0, len(passages), batch_size):
        batch = passages[start : start + batch_size]
        proba = model.predict_proba([p.text for p in batch])
        for passage, row in zip(batch, proba):
            scores = {t: round(float(s), 4) for t, s in zip(model.themes_, row)}
            tagged = [t for t, s, th in zip(model.themes_, row, model.thresholds_) if s >= th]
            out.append(PassageScores(passage.passage_id, scores, tagged, model_version))
    return out


def score_texts(model: ThemeClassifier, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and 0/1 tags for raw texts: the ``themes classify`` contract."""
    proba = model.predict_proba(list(texts))
    return proba, (proba >= model.thresholds_)
