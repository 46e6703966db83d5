"""Tests for themes.ingest reading one file: clean paragraphs with provenance (pages, layout,
paragraphs) and a clear, coded error for every bad file (document).

The small PDFs in tests/data/ are made by tests/data/make_pdfs.py; each shows one layout problem.
Tests marked ``slow`` read the real files in ``../shared`` and skip when it is absent. Metadata
tests are in test_ingest_metadata.py, the reader processes' in test_ingest_pool.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import require_program

from themes.config import INGEST, SAMPLE_DIR, shared_dir
from themes.ingest import (
    doc_id_of,
    document,
    ingest_pdf,
    ingest_with_timeout,
    join_lines,
    pages,
)
from themes.text import BULLET_GLYPHS
from themes.types import REVIEW_TYPES, Document

DATA = Path(__file__).resolve().parent / "data"
OK_SAMPLES = [
    "running_headers.pdf",
    "hyphenation.pdf",
    "numbered.pdf",
    "two_column.pdf",
    "table.pdf",
    "footnote.pdf",
    "fake_bold.pdf",
    "glyphs.pdf",
    "2021_northmere_lcspr_child-a.pdf",
    "2019_westbrook_scr_family-b.pdf",
    "panel_report.pdf",
]


def _ingest(name: str, **kwargs: object) -> Document:
    doc = ingest_pdf(DATA / name, **kwargs)  # type: ignore[arg-type]
    assert doc.status == "ok", doc.error
    return doc


def _texts(doc: Document, kind: str | None = None) -> list[str]:
    return [p.text for p in doc.paragraphs if kind is None or p.kind == kind]


def _assert_one_sentence_error(doc: Document, name: str, kind: str) -> None:
    assert doc.status == "error"
    assert doc.error_kind == kind
    assert doc.error and name in doc.error
    assert "\n" not in doc.error and doc.error.endswith(".")
    assert doc.paragraphs == []


# --- provenance ---------------------------------------------------------------------------------


def test_ingest_doc_id_is_sha256_of_file_bytes() -> None:
    path = DATA / "numbered.pdf"
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc_id_of(path) == expected
    doc = _ingest("numbered.pdf")
    assert doc.doc_id == expected
    assert {p.doc_id for p in doc.paragraphs} == {expected}


@pytest.mark.parametrize("name", OK_SAMPLES)
def test_ingest_offsets_index_document_text(name: str) -> None:
    doc = _ingest(name)
    assert doc.paragraphs
    text = doc.text
    for para in doc.paragraphs:
        assert text[para.char_start : para.char_end] == para.text
        assert 1 <= para.page <= doc.pages
        x0, top, x1, bottom = para.bbox
        assert 0 <= x0 <= x1 and 0 <= top <= bottom
    starts = [p.char_start for p in doc.paragraphs]
    assert starts == sorted(starts)


# --- cleaning -----------------------------------------------------------------------------------


def test_ingest_running_headers_and_page_numbers_removed() -> None:
    doc = _ingest("running_headers.pdf")
    assert doc.pages == 4
    text = doc.text
    assert "Northmere Safeguarding Children Partnership - Child A review" not in text
    assert not re.search(r"Page \d of 4", text)
    assert all(not re.fullmatch(r"\d+", p.text) for p in doc.paragraphs)
    # The body survives, one heading and one paragraph per page.
    assert [p.page for p in doc.paragraphs] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert _texts(doc, "heading") == ["Section 1", "Section 2", "Section 3", "Section 4"]
    assert any(p.text.startswith("The police attended a report") for p in doc.paragraphs)


def test_ingest_hyphen_rejoined_and_compounds_kept() -> None:
    doc = _ingest("hyphenation.pdf")
    text = doc.text
    assert "assessment before the case" in text
    assert "assess-" not in text
    assert "multi-agency meeting" in text
    assert "decision-making" in text
    assert "non-English speaking father" in text


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["the assess-", "ment was late"], "the assessment was late"),
        (["a multi-", "agency meeting"], "a multi-agency meeting"),
        (["the self-", "referral"], "the self-referral"),
        (["the non-", "English speaker"], "the non-English speaker"),
        (["in 2019 –", "the year after"], "in 2019 – the year after"),
        (["well being", "of the child"], "well being of the child"),
        # The document itself writes "child-centred" elsewhere, so the hyphen stays.
        (["a child-", "centred plan"], "a child-centred plan"),
    ],
)
def test_ingest_join_lines_hyphen_rules(lines: list[str], expected: str) -> None:
    assert join_lines(lines, vocab={"child-centred"}) == expected


def test_ingest_join_lines_uses_document_vocabulary() -> None:
    # "part-nership" is not a prefix compound: joined; "pre-birth" keeps its hyphen (prefix).
    assert join_lines(["the part-", "nership board"]) == "the partnership board"
    assert join_lines(["a pre-", "birth assessment"]) == "a pre-birth assessment"
    # A hyphenated word seen elsewhere in the document keeps its hyphen.
    assert join_lines(["the mother-", "in-law"], vocab={"mother-in-law"}) == "the mother-in-law"


def test_ingest_numbered_paragraphs_start_new_paragraphs() -> None:
    doc = _ingest("numbered.pdf")
    starts = [p.text.split()[0] for p in doc.paragraphs]
    assert starts == ["4.11", "4.12", "4.13.", "1.", "2."]
    assert doc.paragraphs[0].text.endswith("advised to see her doctor.")
    assert doc.paragraphs[-1].text.endswith("when the household changes.")


def test_ingest_two_column_page_read_column_by_column() -> None:
    doc = _ingest("two_column.pdf")
    text = doc.text
    assert doc.paragraphs[0].kind == "heading"
    assert doc.paragraphs[0].text == "Findings across the two columns of this page"
    assert doc.paragraphs[1].text == "Part two"
    # Every left-column sentence comes before every right-column sentence.
    positions = [text.index(w) for w in ("Alpha one", "Alpha five", "Alpha eight",
                                         "Bravo one", "Bravo five", "Bravo eight")]  # fmt: skip
    assert positions == sorted(positions)
    assert "in plain words so that the reading order" in text
    assert "first raised its concerns about" in text
    left = next(p for p in doc.paragraphs if "Alpha one" in p.text)
    right = next(p for p in doc.paragraphs if "Bravo one" in p.text)
    assert "Bravo" not in left.text and "Alpha" not in right.text
    assert left.bbox[2] < right.bbox[0]


def test_ingest_table_kept_as_one_table_paragraph() -> None:
    doc = _ingest("table.pdf")
    tables = _texts(doc, "table")
    assert tables == [
        (
            "Agency | Contacts | Outcome\nHealth visiting | 4 | No referral\n"
            "School | 2 | Meeting with mother"
        )
    ]
    prose = " ".join(_texts(doc, "body"))
    assert "Health visiting" not in prose and "Meeting with mother" not in prose
    assert [p.kind for p in doc.paragraphs] == ["body", "table", "body"]


def test_ingest_footnotes_separated() -> None:
    doc = _ingest("footnote.pdf")
    assert _texts(doc, "footnote") == [
        "1 Working Together to Safeguard Children, chapter four.",
        "2 The mother met the reviewer twice; the father declined.",
    ]
    body = " ".join(_texts(doc, "body"))
    assert "Working Together" not in body
    # The superscript reference does not stick to the word it follows.
    assert "happened as it did." in body


def test_ingest_fake_bold_duplicates_removed() -> None:
    doc = _ingest("fake_bold.pdf")
    assert _texts(doc) == [
        "Key findings",
        "The assessment was not updated when a new partner moved in.",
    ]


def test_ingest_private_use_bullets_and_cid_glyphs_cleaned() -> None:
    doc = _ingest("glyphs.pdf")
    texts = _texts(doc)
    assert "• Parents were seen at home." in texts
    assert "• The school was not told of the move." in texts
    assert "The health visitor was not invited." in texts
    assert "(cid:" not in doc.text
    assert not re.search("[\ue000-\uf8ff]", doc.text)


@pytest.mark.parametrize("glyph", sorted(BULLET_GLYPHS))
def test_ingest_pages_every_shared_bullet_glyph_becomes_a_bullet(glyph: str) -> None:
    # Ingest and the sentence tools read one definition (themes.text), not copies that drift.
    assert pages._clean_word(glyph) == "•"
    assert pages._clean_word(glyph + "Parents") == "• Parents"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<!DOCTYPE html><html><body>Report not found</body></html>", "HTML"),
        (b"PK\x03\x04" + b"\x00" * 200, "ZIP"),
        (b"Plain text with no PDF header at all.\n" * 10, "%PDF"),
    ],
)
def test_ingest_not_pdf_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "review.pdf"
    path.write_bytes(content)
    doc = ingest_pdf(path)
    _assert_one_sentence_error(doc, "review.pdf", "not_pdf")
    assert reason in (doc.error or "")
    assert doc.doc_id == hashlib.sha256(content).hexdigest()


def test_ingest_pdf_header_without_root_is_not_pdf(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n% nothing else here\n")
    _assert_one_sentence_error(ingest_pdf(path), "broken.pdf", "not_pdf")


def test_ingest_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    doc = ingest_pdf(path)
    _assert_one_sentence_error(doc, "empty.pdf", "not_pdf")
    assert "0 bytes" in (doc.error or "")


def test_ingest_missing_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    doc = ingest_pdf(tmp_path / "gone.pdf")
    _assert_one_sentence_error(doc, "gone.pdf", "corrupt")


def test_ingest_encrypted_pdf() -> None:
    doc = ingest_pdf(DATA / "encrypted.pdf")
    _assert_one_sentence_error(doc, "encrypted.pdf", "encrypted")
    assert doc.error == "[E105] encrypted.pdf is encrypted; needs a password."


def test_ingest_no_pages_pdf() -> None:
    _assert_one_sentence_error(ingest_pdf(DATA / "no_pages.pdf"), "no_pages.pdf", "no_pages")


def test_ingest_image_only_pdf_needs_ocr() -> None:
    doc = ingest_pdf(DATA / "image_only.pdf")
    _assert_one_sentence_error(doc, "image_only.pdf", "no_text_layer")
    assert doc.error == ("[E111] image_only.pdf has no text layer (2 pages); OCR needed (themes run --ocr, "
                         "with ocrmypdf and tesseract installed).")  # fmt: skip
    assert doc.pages == 2
    assert not doc.ocr


def test_ingest_ocr_reads_a_scan_through_ocrmypdf(fake_ocrmypdf: Path, tmp_path: Path) -> None:
    scan = tmp_path / "2020_northmere_scr_child-s.pdf"
    shutil.copy(DATA / "image_only.pdf", scan)
    doc = ingest_with_timeout(scan, replace(INGEST, ocr=True))
    assert doc.status == "ok", doc.error
    assert doc.ocr  # flagged, so a researcher knows to expect recognition errors
    # The document is still the scan (its id, name and file-name metadata), with the OCR's text.
    assert (doc.doc_id, doc.file, doc.year) == (doc_id_of(scan), scan.name, 2020)
    assert doc.text == ingest_pdf(DATA / "numbered.pdf").text


def test_ingest_ocr_failure_is_a_one_sentence_error(fake_ocrmypdf: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_OCR_FAIL", "1")
    doc = ingest_pdf(DATA / "image_only.pdf", replace(INGEST, ocr=True))
    _assert_one_sentence_error(doc, "image_only.pdf", "no_text_layer")
    assert "OCR failed (ocrmypdf exit code 3" in (doc.error or "")
    assert "language 'eng' not installed" in (doc.error or "")


def test_ingest_ocr_without_ocrmypdf_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # nor beside this Python
    doc = ingest_pdf(DATA / "image_only.pdf", replace(INGEST, ocr=True))
    _assert_one_sentence_error(doc, "image_only.pdf", "no_text_layer")
    assert "ocrmypdf is not on PATH" in (doc.error or "")


def test_ingest_ocr_real_ocrmypdf_reads_a_rendered_page(tmp_path: Path) -> None:
    # ocrmypdf comes with the dev extra; Tesseract and Ghostscript are Debian packages .ci/run installs.
    require_program("ocrmypdf", "tesseract", "gs")
    import pypdfium2

    pdf = pypdfium2.PdfDocument(DATA / "numbered.pdf")
    image = pdf[0].render(scale=300 / 72).to_pil()
    scan = tmp_path / "scan.pdf"
    image.save(scan, resolution=300)
    assert ingest_pdf(scan).error_kind == "no_text_layer"
    doc = ingest_pdf(scan, replace(INGEST, ocr=True))
    assert doc.status == "ok" and doc.ocr, doc.error
    expected = ingest_pdf(DATA / "numbered.pdf").paragraphs[0].text.split()[:5]
    assert doc.paragraphs[0].text.split()[:5] == expected


def test_ingest_too_large_file_refused(tmp_path: Path) -> None:
    settings = replace(INGEST, max_file_mb=0.001)
    doc = ingest_pdf(DATA / "running_headers.pdf", settings)
    _assert_one_sentence_error(doc, "running_headers.pdf", "corrupt")
    assert "too large" in (doc.error or "")


def test_ingest_pages_beyond_max_pages_not_read(caplog: pytest.LogCaptureFixture) -> None:
    settings = replace(INGEST, max_pages=2)
    with caplog.at_level(logging.WARNING, logger="themes.ingest"):
        doc = _ingest("running_headers.pdf", settings=settings)
    assert doc.pages == 4
    assert {p.page for p in doc.paragraphs} == {1, 2}
    assert "only the first 2" in caplog.text


def test_ingest_failing_page_recorded_and_rest_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pages._read_page

    def flaky(page: object, number: int) -> object:
        if number == 2:
            raise ValueError("broken content stream")
        return real(page, number)

    monkeypatch.setattr(document, "_read_page", flaky)
    doc = _ingest("running_headers.pdf")
    assert doc.bad_pages == [2]
    assert {p.page for p in doc.paragraphs} == {1, 3, 4}


def test_ingest_every_page_failing_is_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(page: object, number: int) -> object:
        raise KeyError("Font")

    monkeypatch.setattr(document, "_read_page", broken)
    doc = ingest_pdf(DATA / "numbered.pdf")
    _assert_one_sentence_error(doc, "numbered.pdf", "corrupt")
    assert "KeyError" in (doc.error or "")
    assert doc.bad_pages == [1]


# --- real files (slow) --------------------------------------------------------------------------


OFSTED_FILES = [
    "2015-09-15_cheshire-east_80447.pdf",
    "2016-03-29_kensington-and-chelsea_80544.pdf",
    "2016-05-16_bury_80443.pdf",
    "2021-12-17_bury_80443.pdf",
    "2026-08-18_portsmouth_80539.pdf",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", OFSTED_FILES)
def test_ingest_real_ofsted_reports_clean_and_metadata(name: str) -> None:
    shared = shared_dir()
    path = shared / "ofsted" / name if shared else None
    if path is None or not path.is_file():
        pytest.skip("../shared/ofsted is not available")
    with (path.parent / "MANIFEST.csv").open(newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["file"] == name)
    doc = ingest_pdf(path)
    assert doc.status == "ok", doc.error
    assert doc.year == int(row["inspection_date"][:4])
    assert (doc.area or "").lower() == row["local_authority"].lower()
    assert not doc.bad_pages
    # No paragraph is a bare page number, and no running line repeats on most pages.
    assert not [p for p in doc.paragraphs if re.fullmatch(r"\d{1,3}", p.text)]
    short = Counter(p.text for p in doc.paragraphs if len(p.text) < 120)
    assert not [t for t, n in short.items() if n > doc.pages // 2]


def _sample_expected() -> list[Path]:
    folder = SAMPLE_DIR / "expected"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("expected_path", _sample_expected(), ids=lambda p: p.stem)
def test_ingest_sample_corpus_metadata_and_clean_text(expected_path: Path) -> None:
    expected = json.loads(expected_path.read_text())
    pdf = SAMPLE_DIR / f"{expected_path.stem}.pdf"
    if not pdf.is_file():
        pytest.skip(f"{pdf.name} has not been built")
    doc = ingest_pdf(pdf)
    assert doc.status == "ok", doc.error
    for key in ("title", "area", "year", "review_type"):
        if expected.get(key) is not None:
            assert getattr(doc, key) == expected[key], key
    assert doc.review_type in REVIEW_TYPES
    assert not re.search(r"Page \d+ of \d+", doc.text)
    short = Counter(p.text for p in doc.paragraphs if len(p.text) < 150)
    assert not [t for t, n in short.items() if n >= max(3, doc.pages // 2)]
    assert any(re.match(r"\d+\.\d+\s", p.text) for p in doc.paragraphs)
