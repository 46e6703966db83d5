"""The shipped labelled passages: schema, duplicates, split leakage — and the split rule itself."""

import hashlib
import json
from collections import Counter

import pandas as pd
import pytest

from themes.config import CORE_THEMES
from themes.dataset import data_hash, is_heldout, label_stats, load_labels, normalised, split

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
    # The rule is sha1(doc) mod 5 == 0: pinned, so a change of rule (which would move documents
    # between training and held-out and void every earlier score) fails here.
    assert [is_heldout(f"case-{i:02d}") for i in range(1, 7)] == [True, True, False, False, False, False]
    # A document's side never depends on which other documents or rows are in the frame.
    train_df, held_df = split(labels)
    some = labels[labels["doc"].isin(docs[::3])].sample(frac=1.0, random_state=1)
    part_train, part_held = split(some)
    assert set(part_held["doc"]) == set(held_df["doc"]) & set(some["doc"])
    assert set(part_train["doc"]) == set(train_df["doc"]) & set(some["doc"])


def test_train_data_hash_follows_the_training_data_not_its_order():
    frame = pd.DataFrame({"id": ["p1", "p2", "p3"], "text": ["One.", "Two.", "Three."],
                          "labels": [["optimism_bias"], [], ["weak_risk_assessment", "optimism_bias"]],
                          "doc": ["d1", "d1", "d2"]})
    digest = data_hash(frame)
    assert len(digest) == 64 and digest == hashlib.sha256(
        "".join(json.dumps([r.id, r.text, sorted(r.labels)]) for r in frame.itertuples()).encode()).hexdigest()
    # Row order, the order of a passage's labels and columns outside id/text/labels do not count.
    same = frame.iloc[::-1].assign(labels=[["optimism_bias", "weak_risk_assessment"], [], ["optimism_bias"]],
                                   doc="elsewhere")
    assert data_hash(same) == digest
    # A changed label, text or id, or a dropped row, does.
    changed = [frame.assign(labels=[["optimism_bias"], ["written_agreements"], frame.at[2, "labels"]]),
               frame.assign(text=["One.", "Two!", "Three."]), frame.assign(id=["p1", "p2", "p4"]), frame.iloc[:2]]
    assert all(data_hash(c) != digest for c in changed)


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
    with pytest.raises(ValueError, match="passages-x.jsonl line 2") as error:
        load_labels(tmp_path)
    assert error.value.code == "E518"


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
