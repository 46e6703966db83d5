"""Scores for a run's passages, classifying only the documents the prediction cache lacks.

The cache (:func:`themes.store.save_cached_predictions`) holds one JSON file per document, model
version, codebook and ingest key, so a re-run with the same model classifies nothing again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from themes import store
from themes.codebook import codebook_hash
from themes.types import Document, Passage, PassageScores

#: Passages scored in one batch: documents are gathered until their passages reach this.
BATCH_PASSAGES = 4096


def classify_with_cache(
    loaded: Any, documents: list[Document], passages_of: dict[str, list[Passage]], cache_dir: Path,
    ingest_key: str = "",
) -> tuple[list[PassageScores], dict[tuple[str, str], list[str]], int]:
    """Scores and explanations for every passage, classifying only documents whose predictions
    for this model and codebook are not cached; returns them and how many passages were classified.

    Each document's predictions are cached as soon as its batch is scored, so a run killed during
    classification keeps what it finished and the next run classifies the rest.
    """
    key = store.predictions_key(loaded.version, codebook_hash(), ingest_key)
    by_doc: dict[str, tuple[list[PassageScores], dict]] = {}
    missing: list[str] = []
    for doc_id in dict.fromkeys(d.doc_id for d in documents if passages_of.get(d.doc_id)):
        cached = store.load_cached_predictions(cache_dir, doc_id, key)
        # Scores for other passages than this run's (a cache written by other code) are a miss.
        if cached is None or [s.passage_id for s in cached[0]] != [p.passage_id for p in passages_of[doc_id]]:
            missing.append(doc_id)
        else:
            by_doc[doc_id] = cached
    classified = 0
    batch: list[str] = []
    for i, doc_id in enumerate(missing):
        batch.append(doc_id)
        if sum(len(passages_of[d]) for d in batch) < BATCH_PASSAGES and i < len(missing) - 1:
            continue
        # Imported here: a re-run whose predictions are all cached never loads scikit-learn.
        from themes.classify import score_passages

        todo = [p for d in batch for p in passages_of[d]]
        scores = score_passages(loaded.model, todo, loaded.version)
        classified += len(todo)
        by_passage = dict(zip((p.passage_id for p in todo), zip(scores, todo)))
        # Explanations for every tagged (passage, theme) of the batch at once.
        why = loaded.model.explain_many([p.text for p in todo], [s.themes for s in scores])
        why_of = {p.passage_id: w for p, w in zip(todo, why)}
        for d in batch:
            doc_scores = [by_passage[p.passage_id][0] for p in passages_of[d]]
            explanations = {
                (s.passage_id, t): why_of[s.passage_id][t] for s in doc_scores for t in s.themes
            }
            store.save_cached_predictions(cache_dir, d, key, doc_scores, explanations)
            by_doc[d] = (doc_scores, explanations)
        batch = []
    scores_out: list[PassageScores] = []
    explanations_out: dict[tuple[str, str], list[str]] = {}
    for doc_id in dict.fromkeys(d.doc_id for d in documents):
        if doc_id in by_doc:
            doc_scores, doc_explanations = by_doc[doc_id]
            scores_out.extend(doc_scores)
            explanations_out.update(doc_explanations)
    return scores_out, explanations_out, classified
