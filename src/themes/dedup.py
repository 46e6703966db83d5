"""Find boilerplate repeated across documents so it is not counted as a document's own finding.

Reviews quote the same text verbatim: terms of reference and methodology paragraphs reused by a
partnership or an author, statutory guidance ("Working Together ... states that ..."). A theme
found only in such text says nothing about the practice in that case, so these passages are set
aside before counting.

Method: each passage becomes the set of its word 5-shingles (lower-cased; paragraph number,
punctuation and the letter of pseudonyms such as "Child D" removed), kept as their CRC-32 values.
datasketch's MinHash signatures of those sets are banded for locality-sensitive hashing (the
buckets of datasketch's ``MinHashLSH``, found by sorting each band with numpy) to find candidate
pairs; every candidate pair is then checked with the exact Jaccard similarity of the shingle sets,
so LSH only decides which pairs are looked at. A document's shingles and signatures depend on its
text alone and are cached beside its passages (:func:`cached_signatures`), so adding a document
to a processed corpus computes only its own. Pairs at or above the threshold are joined into
clusters (single linkage: scipy's connected components). A cluster that spans at least
``min_documents`` documents is boilerplate, and all of its passages are dropped.

Why ``min_documents = 3`` by default (the passage recurs in at least two *other* documents): a
verbatim pair is as often a quotation of a real finding (a partnership's annual learning report
quoting its own review) as it is boilerplate, and dropping it would remove a true theme from the
review it came from; text repeated across three or more reviews is template or guidance. Pass
``min_documents=2`` to drop pairs too.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from datasketch import MinHash
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from themes import store
from themes.config import DEDUP, DedupSettings
from themes.errors import ArgumentError, Errors

_PARA_NUMBER = re.compile(r"^\s*(?:\(?[0-9]{1,3}(?:\.[0-9]{1,3})*\)?\.?|[a-z]\))\s+", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Reviews anonymise with letters ("Child D", "Baby M", "Mr K"): the same template text naming a
# different child must still match.
_PSEUDONYM = re.compile(r"\b((?i:child|baby|family|sibling|young person|mr|mrs|ms|adult))\s+[A-Z]{1,2}\b")

DROPPED_COLUMNS = [
    "passage_id", "doc_id", "page", "section", "cluster", "cluster_passages", "n_documents",
    "max_jaccard", "reason", "text",
]
CLUSTER_COLUMNS = ["cluster", "n_documents", "n_passages", "sections", "example"]


@dataclass
class DedupResult:
    """Passages kept for counting, the ones dropped as boilerplate, and one row per cluster."""

    kept: pd.DataFrame
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DROPPED_COLUMNS))
    clusters: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLUSTER_COLUMNS))
    settings: DedupSettings = DEDUP

    @property
    def dropped_ids(self) -> set[str]:
        return set(self.dropped["passage_id"])


def words(text: str) -> list[str]:
    """Lower-cased words of a passage without its leading paragraph number ("4.12", "(a)").

    Letter pseudonyms ("Child D", "Mr K") become one placeholder so template text naming a
    different child still matches.
    """
    text = _PSEUDONYM.sub(r"\1 X", _PARA_NUMBER.sub("", text, count=1))
    return _WORD.findall(text.lower())


def shingles(text: str, k: int = 5) -> set[str]:
    """The set of ``k``-word shingles of a passage (one shingle when it has fewer than k words)."""
    tokens = words(text)
    if not tokens:
        return set()
    if len(tokens) < k:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 for two empty sets."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _shingle_hashes(text: str, k: int) -> np.ndarray:
    """The CRC-32 values of a passage's ``k``-word shingles, sorted and unique."""
    found = shingles(text, k)
    return np.unique(np.fromiter((zlib.crc32(s.encode("utf-8")) for s in found), dtype=np.uint64,
                                 count=len(found)))


def _jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`jaccard` of two sorted unique arrays."""
    both = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - both
    return both / union if union else 0.0


def minhashes(hash_sets: list[np.ndarray], settings: DedupSettings = DEDUP) -> list[MinHash]:
    """datasketch MinHash signatures (``bands * rows`` functions) of shingle sets given as CRC-32 values.

    The CRC-32 values are datasketch's input hashes; it mixes them before permuting.
    """
    return MinHash.bulk((s.tolist() for s in hash_sets), num_perm=settings.bands * settings.rows,
                        seed=settings.seed, hashfunc=int)


def candidate_pairs(signatures: list[MinHash], settings: DedupSettings = DEDUP) -> set[tuple[int, int]]:
    """Index pairs (i < j) that share a band of their signatures: banded LSH."""
    if not signatures:
        return set()
    return band_pairs(np.stack([s.hashvalues for s in signatures]), settings)


def band_pairs(hashvalues: np.ndarray, settings: DedupSettings = DEDUP) -> set[tuple[int, int]]:
    """Row pairs (i < j) of a (signatures x hash functions) array equal on all ``rows`` values of
    at least one of the ``bands`` bands: the candidate pairs of datasketch's ``MinHashLSH`` with
    ``params=(bands, rows)``, found by sorting each band instead of a dict insert per band and
    signature (which took seconds on a corpus of 100 reports)."""
    pairs: set[tuple[int, int]] = set()
    rows = settings.rows
    for b in range(settings.bands):
        band = np.ascontiguousarray(hashvalues[:, b * rows : (b + 1) * rows])
        _, bucket = np.unique(band, axis=0, return_inverse=True)
        bucket = bucket.ravel()
        order = np.argsort(bucket, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(bucket[order]) != 0])
        sizes = np.diff(np.r_[starts, len(order)])
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            pairs.update(itertools.combinations(sorted(order[start : start + size].tolist()), 2))
    return pairs


# -- per-document signatures, cached beside the document's passages ------------------------------

@dataclass
class Signatures:
    """What de-duplication computes from each passage's text alone: its shingles as sorted unique
    CRC-32 values, and the MinHash values of the set (one row per passage; zeros for a passage
    too short to be boilerplate)."""

    sets: list[np.ndarray]
    hashvalues: np.ndarray

    @classmethod
    def concat(cls, parts: Sequence[Signatures]) -> Signatures:
        if not parts:
            return cls([], np.zeros((0, 0), dtype=np.uint64))
        return cls([s for p in parts for s in p.sets], np.concatenate([p.hashvalues for p in parts]))


def signatures(texts: Iterable[str], settings: DedupSettings = DEDUP) -> Signatures:
    """The :class:`Signatures` of passages' texts."""
    sets = [_shingle_hashes(str(t), settings.shingle_words) for t in texts]
    hashvalues = np.zeros((len(sets), settings.bands * settings.rows), dtype=np.uint64)
    eligible = [i for i, s in enumerate(sets) if len(s) >= settings.min_shingles]
    for i, signature in zip(eligible, minhashes([sets[i] for i in eligible], settings)):
        hashvalues[i] = signature.hashvalues
    return Signatures(sets, hashvalues)


@functools.cache
def _signatures_version(settings: DedupSettings) -> str:
    """Folder name for cached signatures: the settings and this module's code."""
    h = hashlib.sha256(repr(settings).encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def signatures_path(cache_dir: Path, doc_id: str, ingest_key: str, settings: DedupSettings = DEDUP) -> Path:
    """``<cache>/<ingest key>/dedup-<settings and code>/<doc_id>.npz``: beside the document's
    cached passages, keyed like them, so the same passages always get the same signatures."""
    folder = store.cache_path(cache_dir, doc_id, ingest_key).parent
    return folder / f"dedup-{_signatures_version(settings)}" / f"{doc_id}.npz"


def cached_signatures(
    cache_dir: Path, ingest_key: str, texts_of: dict[str, list[str]], settings: DedupSettings = DEDUP
) -> Signatures:
    """Every document's passage signatures, in the order of ``texts_of`` (doc_id -> its passages'
    texts): loaded from the cache, or computed and cached. Adding one document to a processed
    corpus computes that document's signatures only."""
    parts = []
    for doc_id, texts in texts_of.items():
        path = signatures_path(cache_dir, doc_id, ingest_key, settings)
        part = _load_signatures(path, len(texts))
        if part is None:
            part = signatures(texts, settings)
            store.atomic_write(path, functools.partial(_save_signatures, part))
        parts.append(part)
    return Signatures.concat(parts)


def _save_signatures(part: Signatures, tmp: Path) -> None:
    lengths = np.array([len(s) for s in part.sets], dtype=np.int64)
    flat = np.concatenate(part.sets) if part.sets else np.zeros(0, dtype=np.uint64)
    with open(tmp, "wb") as fh:  # a file object: np.savez would add ".npz" to the temporary name
        np.savez(fh, lengths=lengths, shingles=flat.astype(np.uint32), hashvalues=part.hashvalues)


def _load_signatures(path: Path, n_passages: int) -> Signatures | None:
    """Cached signatures, or None when missing, unreadable or for another number of passages."""
    try:
        with np.load(path) as data:
            lengths, flat, hashvalues = data["lengths"], data["shingles"], data["hashvalues"]
    except (OSError, ValueError, KeyError):
        return None
    if len(lengths) != n_passages or len(hashvalues) != n_passages:
        return None
    sets = np.split(flat.astype(np.uint64), np.cumsum(lengths)[:-1]) if n_passages else []
    return Signatures(sets, hashvalues)


def find_boilerplate(
    passages: pd.DataFrame, settings: DedupSettings = DEDUP, precomputed: Signatures | None = None
) -> DedupResult:
    """Split passages into kept ones and boilerplate repeated across documents.

    Args:
        passages: one row per passage with at least ``passage_id``, ``doc_id`` and ``text``
            (``page`` and ``section`` are carried into the dropped table when present).
        settings: shingle size, similarity threshold, how many documents make boilerplate.
        precomputed: the rows' :class:`Signatures` under ``settings`` (e.g. from
            :func:`cached_signatures`), in row order; computed here when not given.

    Returns:
        ``kept`` (the input rows not dropped, in input order), ``dropped`` (one row per dropped
        passage with its cluster, the number of documents the cluster spans, its best Jaccard
        similarity to a passage of another document and the reason) and ``clusters``.
    """
    missing = {"passage_id", "doc_id", "text"} - set(passages.columns)
    if missing:
        raise ArgumentError(Errors.E607.format(missing=sorted(missing)))
    frame = passages.reset_index(drop=True)
    # Each passage's shingles as sorted CRC-32 values (the hashes MinHash uses anyway): about 8 bytes
    # a shingle instead of a Python string in a set, which was most of a large run's peak memory.
    fits = precomputed is not None and len(precomputed.sets) == len(frame)
    sig = precomputed if fits else signatures(frame["text"], settings)
    sets = sig.sets
    eligible = [i for i, s in enumerate(sets) if len(s) >= settings.min_shingles]
    if len(eligible) < 2:
        return DedupResult(kept=passages.copy(), settings=settings)

    docs = frame["doc_id"].astype(str).to_numpy()
    edges: list[tuple[int, int]] = []  # passages joined into one cluster
    best = np.zeros(len(frame))  # best similarity to a passage in another document
    # Passages with the same shingle set (template text repeated word for word) are one node: they
    # are in one cluster at similarity 1, and LSH compares distinct texts only. Comparing every
    # copy with every other made the pairs grow with the square of the corpus.
    groups: dict[bytes, list[int]] = {}
    for i in eligible:
        groups.setdefault(sets[i].tobytes(), []).append(i)
    unique = list(groups.values())
    doc_sets = [set(docs[idx]) for idx in unique]
    for idx, doc_set in zip(unique, doc_sets):
        edges += [(idx[0], i) for i in idx[1:]]
        if len(doc_set) > 1:
            best[idx] = 1.0
    if len(unique) >= 2:
        for x, y in band_pairs(sig.hashvalues[[idx[0] for idx in unique]], settings):
            i, j = unique[x][0], unique[y][0]
            similarity = _jaccard_sorted(sets[i], sets[j])
            if similarity < settings.threshold:
                continue
            edges.append((i, j))
            for mine, theirs in ((unique[x], doc_sets[y]), (unique[y], doc_sets[x])):
                for k in mine:
                    if len(theirs) > 1 or docs[k] not in theirs:
                        best[k] = max(best[k], similarity)

    # Single linkage: the clusters are the connected components of the near-duplicate graph.
    rows, cols = np.array(edges, dtype=np.int64).reshape(-1, 2).T
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(frame), len(frame)))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(int(label), []).append(i)
    dropped_rows, cluster_rows = [], []
    drop = np.zeros(len(frame), dtype=bool)
    # Plain arrays: a .loc lookup per dropped passage took most of the time on a large corpus.
    none = np.full(len(frame), None, dtype=object)
    id_col, doc_col, text_col = (frame[c].to_numpy(dtype=object) for c in ("passage_id", "doc_id", "text"))
    page_col = frame["page"].to_numpy(dtype=object) if "page" in frame else none
    section_col = frame["section"].to_numpy(dtype=object) if "section" in frame else none
    # Number clusters in order of their first passage so the ids are stable for a given input.
    for root in sorted(members, key=lambda r: members[r][0]):
        idx = members[root]
        n_docs = len(set(docs[idx]))
        if len(idx) < 2 or n_docs < settings.min_documents:
            continue
        cluster = len(cluster_rows) + 1
        sections = sorted({str(s) for s in section_col[idx] if not pd.isna(s)}) if "section" in frame else []
        cluster_rows.append({
            "cluster": cluster, "n_documents": n_docs, "n_passages": len(idx),
            "sections": ", ".join(sections), "example": str(text_col[idx[0]])[:200],
        })
        reason = (f"near-duplicate (Jaccard >= {settings.threshold:.2f} on word {settings.shingle_words}-shingles) "
                  f"of text in {n_docs} documents")
        for i in idx:
            drop[i] = True
            dropped_rows.append({
                "passage_id": id_col[i], "doc_id": doc_col[i], "page": page_col[i], "section": section_col[i],
                "cluster": cluster, "cluster_passages": len(idx), "n_documents": n_docs,
                "max_jaccard": round(float(best[i]), 4), "reason": reason, "text": text_col[i],
            })
    kept = passages.iloc[np.flatnonzero(~drop)].copy()
    return DedupResult(
        kept=kept,
        dropped=pd.DataFrame(dropped_rows, columns=DROPPED_COLUMNS),
        clusters=pd.DataFrame(cluster_rows, columns=CLUSTER_COLUMNS),
        settings=settings,
    )
