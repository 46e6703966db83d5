"""The shipped labelled passages: schema, duplicates, split leakage — and the split rule itself."""

import json
from collections import Counter

import pytest

from themes.config import CORE_THEMES
from themes.dataset import is_heldout, label_stats, load_labels, normalised, split

KINDS = {"positive", "hard_negative", "other_negative"}
SECTIONS = {"chronology", "analysis", "learning", "recommendation", "background", "methodology"}


@pytest.fixture(scope="module")
def labels():
    return load_labels()


def test_train_labels_follow_the_schema(labels):
    from themes.codebook import load_codebook

    known = set(load_codebook().ids)
    for row in labels.itertuples():
        assert set(row.labels) <= known, f"{row.id}: unknown theme in {row.labels}"
        assert row.kind in KINDS, row.id
        assert (row.kind == "positive") == bool(row.labels), f"{row.id}: kind {row.kind} vs labels {row.labels}"
        assert row.section in SECTIONS, row.id
        assert row.text.strip() and row.doc and row.source and row.annotator


def test_train_labels_have_no_duplicates(labels):
    assert labels["id"].is_unique
    dupes = [t for t, n in Counter(labels["text"].map(normalised)).items() if n > 1]
    assert not dupes, f"{len(dupes)} duplicated passage texts"


def test_train_no_text_leaks_between_train_and_heldout(labels):
    train_df, held_df = split(labels)
    assert not set(train_df["doc"]) & set(held_df["doc"])
    assert not set(train_df["text"].map(normalised)) & set(held_df["text"].map(normalised))


def test_train_heldout_split_is_fixed_and_about_a_fifth(labels):
    docs = labels["doc"].unique()
    share = sum(map(is_heldout, docs)) / len(docs)
    assert 0.08 <= share <= 0.35
    assert [is_heldout(d) for d in docs] == [is_heldout(d) for d in docs]  # no randomness


def test_train_documents_are_cases_of_realistic_size(labels):
    sizes = labels.groupby("doc").size()
    assert sizes.between(15, 80).all(), sizes[~sizes.between(15, 80)].to_dict()


def test_train_counts_meet_the_evidence_base(labels):
    stats = label_stats(labels).set_index("theme")
    for theme in CORE_THEMES:
        assert stats.loc[theme, "positives"] >= 150, theme
        assert stats.loc[theme, "heldout"] >= 20, theme
    assert len(labels) >= 2000
    assert (labels["kind"] == "hard_negative").mean() >= 0.35


def test_train_load_labels_names_the_bad_line(tmp_path):
    (tmp_path / "passages-x.jsonl").write_text(json.dumps({"id": "a", "text": "t", "labels": [], "doc": "d"})
                                               + "\n{not json\n")
    with pytest.raises(ValueError, match="passages-x.jsonl line 2"):
        load_labels(tmp_path)


def test_train_default_model_card_names_its_data_and_keeps_held_out_and_sample_documents_out():
    from themes.config import PROJECT_ROOT
    from themes.registry import load_model

    card = load_model(None).card
    assert card["training_label_files"], "the card must name the label files it was trained on"
    assert set(card["evaluation_sets"]) >= {"written held-out", "real held-out", "seeds"}
    assert "corpus/sample" in card["never_trained_on"], "the card must say the sample corpus is kept out"
    trained = set(card["training_documents"])
    assert trained, "the card must list its training documents"
    held_out = sorted(doc for doc in trained if is_heldout(doc))
    assert not held_out, f"held-out documents among the training documents: {held_out[:5]}"
    assert not any(doc.startswith("seeds") for doc in trained), "seed sentences are evaluation only"
    # Neither the sample corpus that `make run` counts nor the document-evaluation set is trained on.
    for folder in ("corpus/sample", "corpus/doc-eval"):
        stems = {p.stem for p in (PROJECT_ROOT / folder).glob("*.pdf")}
        assert stems, folder
        assert not trained & stems, f"{folder} documents among the training documents"
        assert not {doc for doc in trained if any(stem in doc for stem in stems)}
    assert any(doc.startswith("ofsted:") for doc in trained), "real Ofsted reports must be in training"
