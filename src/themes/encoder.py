"""Tag passages with a fine-tuned sentence encoder exported to ONNX (no torch at run time).

A model folder holds three files, none of them a pickle:

- ``model.onnx``: the encoder; inputs ``input_ids`` and ``attention_mask`` (and
  ``token_type_ids`` when the graph has it), output ``embedding`` of shape (n, dim): the
  mean-pooled last hidden state;
- ``tokenizer.json``: the Hugging Face ``tokenizers`` file the encoder was trained with;
- ``head.json``: ``themes``, a linear layer (``weight`` n_themes x dim, ``bias``), a Platt
  calibration per theme (``calibration_a``, ``calibration_b``: probability
  ``sigmoid(a * logit + b)``), ``thresholds`` and ``max_length``; optionally ``rule_weights``
  (n_themes x 2): the weights of the theme's codebook keyword hit and seed-pattern hit
  (:func:`rule_features`), added inside the sigmoid, so the codebook's own phrasings count
  beside what the encoder learned (``benchmarks/encoder_head.py`` fits them).

:class:`OnnxThemeClassifier` gives the same ``predict_proba`` / ``predict`` / ``thresholds_`` /
``themes_`` contract as :class:`themes.classify.ThemeClassifier`. It needs ``onnxruntime`` and
``tokenizers`` only (dependencies of every install); ``benchmarks/finetune_encoder.py`` (the ``train``
extra) writes such folders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from themes.errors import Errors, MissingExtraError, MissingFileError, ModelError

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
HEAD_FILE = "head.json"
HEAD_FIELDS = ("themes", "weight", "bias", "calibration_a", "calibration_b", "thresholds")
EXTRA_HINT = "pip install onnxruntime tokenizers (both are dependencies of themes: reinstall it)"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class OnnxThemeClassifier:
    """Multi-label theme tagger: ONNX sentence encoder, linear head, Platt calibration, thresholds.

    Build one with :meth:`load`; the attributes below are set there.

    Attributes:
        themes_: theme ids, in the column order of every output.
        thresholds_: per-theme probability thresholds (chosen on out-of-fold predictions).
        max_length: tokens kept per passage (longer passages are truncated).
        threads: passages scored at once, each on one onnxruntime thread.

    Every passage is run through the encoder on its own. The int8 model quantises its activations
    with one scale per call, so in a padded batch a passage's score depended on the passages
    batched with it: on 10,334 Ofsted passages, batches of 32 and of 8 disagreed on 154 of about
    1,230 tags. Run alone, a passage gets the same score in any corpus and any run, and it is also
    faster (no padding) and lighter (no batch-sized buffers).
    """

    themes_: list[str]
    thresholds_: np.ndarray
    max_length: int
    threads: int

    @classmethod
    def load(cls, folder: str | Path, threads: int = 1,
             model_file: str = MODEL_FILE) -> OnnxThemeClassifier:
        """Read a model folder.

        Args:
            folder: holds ``model.onnx`` (or ``model_file``), ``tokenizer.json`` and ``head.json``.
            threads: passages scored at once, one onnxruntime thread each (1 keeps the
                pipeline's one-core-per-worker habit).
            model_file: another ONNX file in the folder, e.g. an int8 copy.
        """
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as err:
            raise MissingExtraError(Errors.E408.format(hint=EXTRA_HINT)) from err
        folder = Path(folder)
        for name in (model_file, TOKENIZER_FILE, HEAD_FILE):
            if not (folder / name).is_file():
                raise MissingFileError(Errors.E409.format(folder=folder, name=name, model_file=model_file,
                                                          tokenizer=TOKENIZER_FILE, head=HEAD_FILE))
        head = json.loads((folder / HEAD_FILE).read_text(encoding="utf-8"))
        missing = [f for f in HEAD_FIELDS if f not in head]
        if missing:
            raise ModelError(Errors.E410.format(path=folder / HEAD_FILE, missing=missing))
        self = cls()
        self.themes_ = list(head["themes"])
        self.weight_ = np.asarray(head["weight"], dtype=np.float32)
        self.bias_ = np.asarray(head["bias"], dtype=np.float32)
        self.calibration_a_ = np.asarray(head["calibration_a"], dtype=np.float64)
        self.calibration_b_ = np.asarray(head["calibration_b"], dtype=np.float64)
        self.thresholds_ = np.asarray(head["thresholds"], dtype=np.float64)
        n = len(self.themes_)
        for name, value in (("weight", self.weight_), ("bias", self.bias_), ("calibration_a", self.calibration_a_),
                            ("calibration_b", self.calibration_b_), ("thresholds", self.thresholds_)):
            if value.shape[0] != n:
                raise ModelError(Errors.E411.format(path=folder / HEAD_FILE, field=name, rows=value.shape[0], n=n))
        rule_weights = head.get("rule_weights")
        self.rule_weights_ = None if rule_weights is None else np.asarray(rule_weights, dtype=np.float64)
        if self.rule_weights_ is not None and self.rule_weights_.shape != (n, 2):
            raise ModelError(Errors.E411.format(path=folder / HEAD_FILE, field="rule_weights",
                                                rows=self.rule_weights_.shape[0], n=n))
        self.max_length = int(head.get("max_length", 128))
        self.threads = max(1, int(threads))
        self.card_ = head.get("card", {})
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        # One passage per call: never padded, only truncated.
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_length)
        self.tokenizer_ = tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallel over passages instead (see embed)
        options.inter_op_num_threads = 1
        self.session_ = ort.InferenceSession(str(folder / model_file), options, providers=["CPUExecutionProvider"])
        self.input_names_ = [i.name for i in self.session_.get_inputs()]
        return self

    def embed(self, X: Sequence[str]) -> np.ndarray:
        """Mean-pooled encoder output, shape (n_passages, dim), in input order.

        Each passage is one onnxruntime call (see the class docstring); ``threads`` Python threads
        share the session, which releases the GIL while it runs.
        """
        texts = list(X)
        out = np.zeros((len(texts), self.weight_.shape[1]), dtype=np.float32)
        with_types = "token_type_ids" in self.input_names_

        def run(indices: range) -> None:
            # Tokenised a few hundred at a time: a corpus's Encoding objects would hold ~10 KB each.
            for start in range(0, len(indices), 256):
                chunk = indices[start:start + 256]
                for i, encoding in zip(chunk, self.tokenizer_.encode_batch([texts[i] for i in chunk])):
                    ids = np.array([encoding.ids], dtype=np.int64)
                    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
                    if with_types:
                        feeds["token_type_ids"] = np.zeros_like(ids)
                    out[i] = self.session_.run(None, feeds)[0][0]

        # Interleaved shares: each thread gets long and short passages alike.
        shares = [range(k, len(texts), self.threads) for k in range(min(self.threads, len(texts)))]
        if len(shares) <= 1:
            run(range(len(texts)))
        else:
            with ThreadPoolExecutor(len(shares), thread_name_prefix="themes-encoder") as pool:
                list(pool.map(run, shares))
        return out

    def decision_function(self, X: Sequence[str]) -> np.ndarray:
        """Uncalibrated head logits, shape (n_passages, n_themes)."""
        return self.embed(X) @ self.weight_.T + self.bias_

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Calibrated probability per theme, shape (n_passages, n_themes)."""
        texts = list(X)
        if not texts:
            return np.zeros((0, len(self.themes_)))
        z = self.calibration_a_ * self.decision_function(texts) + self.calibration_b_
        if self.rule_weights_ is not None:
            # A head that gives the seed patterns no weight (the keyword lift) skips running them.
            patterns = self._patterns() if self.rule_weights_[:, 1].any() else None
            z = z + np.einsum("njf,jf->nj", rule_features(self._keywords(), patterns, texts), self.rule_weights_)
        return _sigmoid(z)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """0/1 matrix: each theme's probability against its own threshold."""
        return (self.predict_proba(X) >= self.thresholds_).astype(int)

    def _keywords(self) -> Any:
        if getattr(self, "keywords_", None) is None:
            from themes.baselines import KeywordBaseline

            self.keywords_ = KeywordBaseline(self.themes_).fit()
        return self.keywords_

    def _patterns(self) -> Any:
        if getattr(self, "patterns_", None) is None:
            from themes.baselines import PatternBaseline

            self.patterns_ = PatternBaseline(self.themes_).fit()
        return self.patterns_

    def explain(self, text: str, theme: str, k: int = 5) -> list[str]:
        """The codebook's keywords for ``theme`` found in ``text`` (at most ``k``).

        An encoder has no per-word weights to show; the theme's own terms in the passage are what
        a reviewer checks first. A passage tagged in other words gets none.
        """
        keywords = self._keywords()
        return keywords.matched_terms(text, theme)[:k]

    def explain_many(self, texts: Sequence[str], themes: Sequence[Sequence[str]], k: int = 5) -> list[dict[str, list[str]]]:
        """:meth:`explain` for every theme in ``themes[i]`` of every ``texts[i]``."""
        return [{t: self.explain(text, t, k) for t in wanted} for text, wanted in zip(texts, themes)]


def rule_features(keywords: Any, patterns: Any, texts: Sequence[str]) -> np.ndarray:
    """(n_texts, n_themes, 2): each theme's codebook keyword hit and seed-pattern hit (0/1).

    ``keywords`` and ``patterns`` are fitted :class:`themes.baselines.KeywordBaseline` and
    :class:`themes.baselines.PatternBaseline` over the same themes, in the model's column order;
    ``patterns`` None leaves the pattern column 0.
    """
    texts = list(texts)
    hits = keywords.predict(texts)
    pattern_hits = patterns.predict(texts) if patterns is not None else np.zeros_like(hits)
    return np.stack([hits, pattern_hits], axis=2).astype(np.float64)


def save_head(folder: str | Path, themes: Sequence[str], weight: np.ndarray, bias: np.ndarray,
              calibration_a: np.ndarray, calibration_b: np.ndarray, thresholds: np.ndarray,
              max_length: int, card: dict | None = None) -> Path:
    """Write ``head.json`` (plain numbers, no pickle) into a model folder; returns its path."""
    path = Path(folder) / HEAD_FILE
    payload = {
        "themes": list(themes), "weight": np.asarray(weight, dtype=float).tolist(),
        "bias": np.asarray(bias, dtype=float).tolist(),
        "calibration_a": np.asarray(calibration_a, dtype=float).tolist(),
        "calibration_b": np.asarray(calibration_b, dtype=float).tolist(),
        "thresholds": np.asarray(thresholds, dtype=float).tolist(), "max_length": int(max_length),
        "card": card or {},
    }
    path.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    return path
