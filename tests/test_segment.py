import pytest

from themes.config import SegmentSettings
from themes.segment import make_nlp, section_of_heading, segment, split_sentences
from themes.types import Document, Paragraph

# Written for these tests; no real report text.
TRICKY = (
    "4.12 The health visitor saw Child A on 3 May, e.g. at the clinic. Mr. X was not seen, "
    "i.e. he was at work. See para. 6.3 and no. 7 of the plan. Risk rose by 4.5% in 2019! "
    "Was anyone told? Nobody asked.\n"
    "Summary of learning\n"
    "The school knew more than the GP did.\n"
    "\uf06e Police held the record of the assault.\n"
    "\u2022 The nursery was not invited\n"
    "to the strategy discussion.\n"
    "12. Decisions were not recorded. A short line\n"
    "continues here in lower case.\n"
)
EXPECTED = [
    "The health visitor saw Child A on 3 May, e.g. at the clinic.",
    "Mr. X was not seen, i.e. he was at work.",
    "See para. 6.3 and no. 7 of the plan.",
    "Risk rose by 4.5% in 2019!",
    "Was anyone told?",
    "Nobody asked.",
    "Summary of learning",
    "The school knew more than the GP did.",
    "Police held the record of the assault.",
    "The nursery was not invited\nto the strategy discussion.",
    "Decisions were not recorded.",
    "A short line\ncontinues here in lower case.",
]


def test_segment_split_sentences_handles_abbreviations_bullets_and_headings() -> None:
    spans = split_sentences(TRICKY)
    assert [TRICKY[s:e] for s, e in spans] == EXPECTED


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("The plan (see s. 47) was agreed. It was not reviewed.", 2),
        ("Dr. Y and Mrs. Z met on 4.12.2019 and agreed a plan.", 1),
        ("It said \u201cno.\u201d Then the worker left.", 2),
        ("A written agreement was signed etc. The risk was not analysed.", 2),
        ("", 0),
    ],
)
def test_segment_split_sentences_counts(text: str, n: int) -> None:
    assert len(split_sentences(text)) == n


def test_segment_split_sentences_is_deterministic_and_in_bounds() -> None:
    spans = split_sentences(TRICKY * 3)
    assert spans == split_sentences(TRICKY * 3)
    assert all(0 <= s < e <= len(TRICKY * 3) for s, e in spans)
    assert spans == sorted(spans)


def test_segment_pipeline_sentences_follow_the_one_splitter() -> None:
    """make_nlp's sentences are split_sentences' spans, each with its leading bullet or number."""
    doc = make_nlp()(TRICKY)
    sents = [s for s in doc.sents if s.text.strip()]
    assert len(sents) == len(EXPECTED)
    for sent, expected in zip(sents, EXPECTED, strict=True):
        assert sent.text.strip().endswith(expected)


def _document(texts, kinds=None):
    paragraphs, offset = [], 0
    for i, text in enumerate(texts):
        kind = (kinds or {}).get(i, "body")
        paragraphs.append(Paragraph("d" * 64, 1 + i // 3, text, (10.0, 20.0, 300.0, 60.0), offset, offset + len(text), kind))
        offset += len(text) + len(Document.PARAGRAPH_SEPARATOR)
    return Document(doc_id="d" * 64, file="x.pdf", pages=3, paragraphs=paragraphs)


def test_segment_passages_point_at_their_text():
    doc = _document(["5. Analysis", "5.1 The social worker accepted the mother's account. No checks were made with the GP.",
                     "5.2 " + "The plan was not reviewed when Mr X moved in. " * 40])
    passages = segment(doc, SegmentSettings(max_chars=400, min_chars=10))
    assert len(passages) > 2  # the long paragraph was split
    for p in passages:
        assert doc.text[p.char_start:p.char_end] == p.text
        assert len(p.text) <= 400
        assert p.section == "analysis"
    assert len({p.passage_id for p in passages}) == len(passages)


def test_segment_long_paragraph_split_only_at_sentence_ends():
    doc = _document(["A sentence about the plan, para. 4.2 refers. " * 30])
    for p in segment(doc, SegmentSettings(max_chars=300, min_chars=10)):
        assert p.text.endswith("refers.")


def test_segment_sentencizer_keeps_abbreviations():
    sents = [s.text for s in make_nlp()("See para. 4.12 and no. 3 of the plan. Then Mr X left.").sents]
    assert sents == ["See para. 4.12 and no. 3 of the plan.", "Then Mr X left."]


@pytest.mark.parametrize("heading,section", [
    ("4. Analysis of practice", "analysis"), ("Key findings", "analysis"), ("2 Methodology", "methodology"),
    ("Recommendations", "recommendation"), ("Learning for the partnership", "learning"),
    ("3.1 Chronology of key events", "chronology"),
    ("The worker accepted the mother's account without checking it.", None),
])
def test_segment_section_of_heading(heading, section):
    assert section_of_heading(heading) == section


def test_segment_error_documents_give_no_passages():
    assert segment(Document(doc_id="e", file="e.pdf", status="error", error_kind="not_pdf", error="x")) == []


def test_segment_contents_page_does_not_set_the_section():
    doc = _document(["7. Recommendations 10", "5. What happened", "5.1 Mother moved to a new flat with Child A.",
                     "6. What I found", "6.1 The worker accepted the mother's account without any check."],
                    kinds={0: "body", 1: "heading", 3: "heading"})
    sections = [p.section for p in segment(doc, SegmentSettings(min_chars=10))]
    assert sections == [None, "chronology", "analysis"]  # the contents entry itself names no section


def test_segment_unknown_numbered_heading_resets_section():
    doc = _document(["4. Analysis", "4.1 The plan was not reviewed when Mr X moved in.", "5. About R",
                     "5.1 R likes drawing comics and wants to be a vet."], kinds={0: "heading", 2: "heading"})
    assert [p.section for p in segment(doc, SegmentSettings(min_chars=10))] == ["analysis", None]


def test_segment_first_cue_in_heading_wins():
    assert section_of_heading("6. Findings and recommendations") == "analysis"
    assert section_of_heading("Recommendations arising from the findings") == "recommendation"
