"""The passage features of the theme classifier beside its TF-IDF n-grams, and a fast path for one of them.

- :func:`scope_tokens`: a NegEx-style pass that marks the words governed by a negation ("not",
  "no evidence that", "without") with ``neg_`` and by a hedge ("should", "would have") with
  ``hyp_``, so "the assessment was not updated" and "the assessment was updated" differ;
- :func:`rule_features`: the codebook's keyword hits with their scope and the praise, criticism
  and hedge cues around them;
- :func:`char_wb_transform`: a fitted ``char_wb`` TfidfVectorizer's transform, counted word by word
  with a per-word cache (the same numbers, 2-3.5x faster).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from functools import cache

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

# Cues that open a negation scope; the scope runs to the next clause break.
_NEGATION_CUES = frozenset(
    ["not", "no", "never", "nobody", "none", "nothing", "neither", "nor", "without", "n't", "cannot", "lack", "lacked", "lacking", "absence"]
)
# Multi-word negation cues, matched on the lower-cased text before tokenising.
_NEGATION_PHRASES = (
    "no evidence that", "no evidence of", "there is no indication", "did not find", "was not found",
    "no concerns", "not clear that",
)
# Cues that open a hedge / hypothetical / recommendation scope.
_HEDGE_CUES = frozenset(
    ["should", "would", "could", "must", "may", "might", "ought", "recommend", "recommends", "recommended", "recommendation", "ensure", "consider", "if"]
)
_SCOPE_BREAKS = frozenset(list(",.;:!?()") + ["but", "however", "although", "though", "which", "whereas"])
_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?|n't|[0-9]+|[,.;:!?()]")


def scope_tokens(text: str) -> list[str]:
    """Lower-cased word tokens with negated words prefixed ``neg_`` and hedged words ``hyp_``.

    A NegEx-style pass: a cue opens a scope that runs to the next comma, full stop, or
    contrastive conjunction. The cue itself is kept unprefixed.
    """
    lowered = text.lower().replace("’", "'")
    for phrase in _NEGATION_PHRASES:
        if phrase in lowered:
            lowered = lowered.replace(phrase, phrase.replace(" ", "_") + " not")
    tokens = _TOKEN_RE.findall(lowered.replace("_", " "))
    out: list[str] = []
    scope: str | None = None
    for token in tokens:
        if token in _SCOPE_BREAKS:
            scope = None
            continue
        if token in _NEGATION_CUES or token.endswith("n't"):
            scope = "neg_"
            out.append(token)
            continue
        if token in _HEDGE_CUES:
            scope = scope or "hyp_"
            out.append(token)
            continue
        out.append(scope + token if scope else token)
    return out



#: Words an inspector or reviewer uses to say practice was good: a topic word beside them is
#: usually praise ("risk is well understood"), the commonest hard negative.
PRAISE_CUES = frozenset([
    "well", "good", "strong", "effective", "effectively", "robust", "timely", "thorough",
    "comprehensive", "clear", "clearly", "appropriate", "appropriately", "consistently", "consistent",
    "swift", "swiftly", "prompt", "promptly", "improved", "improving", "rigorous", "skilled",
    "sensitive", "detailed", "purposeful", "confident", "securely", "secure"
])
#: Words that state a shortfall, including the partial ones ("not always", "variable").
CRITICISM_CUES = frozenset([
    "weak", "weaker", "poor", "poorly", "inconsistent", "inconsistently", "variable", "varied", "lack",
    "lacks", "lacking", "insufficient", "insufficiently", "limited", "gaps", "gap", "fail", "fails",
    "failed", "failure", "unrealistic", "overoptimistic", "optimistic", "overly", "too", "inadequate",
    "inadequately", "delay", "delays", "drift", "shortfalls", "deficits", "superficial", "uneven",
    "misses", "missed", "missing", "absent", "unclear", "unaddressed"
])
#: The five keyword columns per theme of :func:`rule_features`, in order.
RULE_FEATURE_KINDS = ("plain", "neg", "hyp", "plain_praise", "plain_criticism")


def _bare(token: str) -> tuple[str, str]:
    """(scope, word) of a :func:`scope_tokens` token: scope is "", "neg" or "hyp"."""
    if token.startswith("neg_"):
        return "neg", token[4:]
    if token.startswith("hyp_"):
        return "hyp", token[4:]
    return "", token


@cache
def _keyword_index(keywords: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[dict[str, list[tuple[int, tuple[str, ...]]]], int]:
    """first word -> (theme index, phrase words) for every keyword; and the number of themes."""
    index: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for t_index, (_, kws) in enumerate(keywords):
        for kw in kws:
            words = tuple(kw.replace("-", " ").split())
            if words:
                index.setdefault(words[0], []).append((t_index, words))
    return index, len(keywords)


def rule_features(texts: Sequence[str], keywords: dict[str, list[str]]) -> sparse.csr_matrix:
    """Codebook keyword hits with their scope, as features beside the learned n-grams.

    For each theme (in ``keywords`` order) five 0/1 columns: a keyword occurs outside any
    negation or hedge scope; inside a negation scope; inside a hedge (recommendation) scope; outside
    scope in a sentence with a praise cue; outside scope with a criticism cue. Then three counts
    (capped at 3, scaled to 0-1) over the whole passage: praise cues, criticism cues, hedge cues.
    Keyword search fires on the first column alone; the model learns how much each column is worth.
    """
    index, n_themes = _keyword_index(tuple((t, tuple(kws)) for t, kws in keywords.items()))
    width = len(RULE_FEATURE_KINDS)
    n_cols = n_themes * width + 3
    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        tokens = [_bare(t) for t in scope_tokens(text.replace("-", " "))]
        words = [w for _, w in tokens]
        praise = sum(1 for scope, w in tokens if not scope and w in PRAISE_CUES)
        criticism = sum(1 for w in words if w in CRITICISM_CUES)
        criticism += any(w in _NEGATION_CUES or w.endswith("n't") for w in words)
        hedges = sum(1 for w in words if w in _HEDGE_CUES)
        found: dict[int, set[str]] = {}
        for start, word in enumerate(words):
            for t_index, phrase in index.get(word, ()):
                if tuple(words[start : start + len(phrase)]) == phrase:
                    found.setdefault(t_index, set()).add(tokens[start][0] or "plain")
        for t_index, kinds in found.items():
            if "plain" in kinds:
                if praise:
                    kinds.add("plain_praise")
                if criticism:
                    kinds.add("plain_criticism")
            for k, kind in enumerate(RULE_FEATURE_KINDS):
                if kind in kinds:
                    rows.append(i), cols.append(t_index * width + k), vals.append(1.0)
        for k, count in enumerate((praise, criticism, hedges)):
            if count:
                rows.append(i), cols.append(n_themes * width + k), vals.append(min(count, 3) / 3)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(texts), n_cols))


def _char_wb_ngrams(word: str, min_n: int, max_n: int) -> list[str]:
    """scikit-learn's ``char_wb`` n-grams of one word, in its order (padded with a space each side)."""
    padded = f" {word} "
    grams = []
    for n in range(min_n, max_n + 1):
        offset = 0
        grams.append(padded[offset : offset + n])
        while offset + n < len(padded):
            offset += 1
            grams.append(padded[offset : offset + n])
        if offset == 0:  # a word shorter than n counts once
            break
    return grams


#: Per fitted char vectorizer: word -> the vocabulary ids of its n-grams. Words repeat across
#: passages, so each distinct word is cut into n-grams once rather than at every use.
_WORD_IDS: weakref.WeakKeyDictionary[TfidfVectorizer, dict[str, tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)
_WORD_CACHE_LIMIT = 500_000


def char_wb_transform(vec: TfidfVectorizer, texts: Sequence[str]) -> sparse.csr_matrix:
    """``vec.transform(texts)`` for a fitted lower-casing ``char_wb`` TfidfVectorizer, 2-3.5x faster
    (cold / warm word cache): the same counts, then the vectorizer's own tf-idf weighting."""
    cache = _WORD_IDS.setdefault(vec, {})
    if len(cache) > _WORD_CACHE_LIMIT:
        cache.clear()
    vocabulary = vec.vocabulary_
    min_n, max_n = vec.ngram_range
    ids: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        start = len(ids)
        for word in text.lower().split():
            word_ids = cache.get(word)
            if word_ids is None:
                grams = _char_wb_ngrams(word, min_n, max_n)
                word_ids = cache[word] = tuple(i for g in grams if (i := vocabulary.get(g)) is not None)
            ids.extend(word_ids)
        lengths[row] = len(ids) - start
    rows = np.repeat(np.arange(len(texts)), lengths)
    counts_matrix = sparse.csr_matrix(  # duplicate (row, id) pairs are summed: the counts
        (np.ones(len(ids), dtype=vec.dtype), (rows, np.asarray(ids, dtype=np.int64))),
        shape=(len(texts), len(vocabulary)),
    )
    counts_matrix.sum_duplicates()
    return _tfidf_weighting(vec, counts_matrix)


def _tfidf_weighting(vec: TfidfVectorizer, counts: sparse.csr_matrix) -> sparse.csr_matrix:
    """The fitted vectorizer's tf-idf weighting of a count matrix, in place, from its public settings
    (``sublinear_tf``, ``idf_``, ``norm``): what ``TfidfTransformer.transform`` does, without reaching
    into the vectorizer's private transformer."""
    if vec.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1.0
    if vec.use_idf:
        counts.data *= vec.idf_[counts.indices]
    if vec.norm is not None:
        counts = normalize(counts, norm=vec.norm, copy=False)
    return counts


def fast_char_wb(vec: TfidfVectorizer) -> bool:
    return (vec.analyzer == "char_wb" and vec.lowercase and vec.preprocessor is None
            and vec.strip_accents is None and not vec.binary and vec.input == "content")  # fmt: skip


