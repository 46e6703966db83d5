"""Tests for themes.ingest: clean paragraphs with provenance, and a clear error for every bad file.

The small PDFs in tests/data/ are made by tests/data/make_pdfs.py; each shows one layout problem.
Tests marked ``slow`` read the real files in ``../shared`` and skip when it is absent.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from themes import ingest
from themes.config import INGEST, SAMPLE_DIR, shared_dir
from themes.ingest import (
    apply_manifest,
    doc_id_of,
    ingest_many,
    ingest_pdf,
    ingest_with_timeout,
    join_lines,
    load_manifest,
    metadata_from_filename,
)
from themes.ingest import document, pages
from themes.types import ERROR_KINDS, REVIEW_TYPES, Document

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
    doc = ingest_pdf(DATA / "image_only.pdf", replace(INGEST, ocr=True))
    _assert_one_sentence_error(doc, "image_only.pdf", "no_text_layer")
    assert "ocrmypdf is not on PATH" in (doc.error or "")


@pytest.mark.skipif(not (shutil.which("ocrmypdf") and shutil.which("tesseract")),
                    reason="ocrmypdf and tesseract are not installed")  # fmt: skip
def test_ingest_ocr_real_ocrmypdf_reads_a_rendered_page(tmp_path: Path) -> None:
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


# --- child processes ----------------------------------------------------------------------------


def _slow_ingest(path: Path, settings: object) -> Document:
    """Stands in for a file that makes the PDF library hang (run in the child process)."""
    if "slow" in path.name:
        time.sleep(60)
    return ingest_pdf(path)


def _crashing_ingest(path: Path, settings: object) -> Document:
    """Stands in for a file that makes the PDF library kill its process."""
    os._exit(3)


def _marking_ingest(path: Path, settings: object) -> Document:
    """Leaves ``<name>.started`` beside the file when a reader begins it."""
    path.with_suffix(".started").touch()
    return ingest_pdf(path)


def test_ingest_many_reader_starts_the_next_file_before_the_caller_gets_this_one(tmp_path: Path) -> None:
    # While the caller segments and caches one document, its reader must already be reading the
    # next: otherwise every document's handling in the parent leaves a core idle.
    paths = [shutil.copy(DATA / name, tmp_path / name) for name in ("numbered.pdf", "table.pdf")]
    docs = ingest_many([Path(p) for p in paths], workers=1, func=_marking_ingest)
    assert next(docs).file == "numbered.pdf"
    marker = tmp_path / "table.started"
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the generator is not advanced: only the reader can make the marker
    assert marker.exists()
    assert next(docs).status == "ok"


def test_ingest_with_timeout_reports_a_crashed_worker() -> None:
    doc = ingest_with_timeout(DATA / "numbered.pdf", func=_crashing_ingest)
    _assert_one_sentence_error(doc, "numbered.pdf", "reader_crashed")
    assert "exit code 3" in (doc.error or "")


def test_ingest_with_timeout_returns_document_from_child() -> None:
    doc = ingest_with_timeout(DATA / "numbered.pdf")
    assert doc.status == "ok"
    assert doc == ingest_pdf(DATA / "numbered.pdf")


def test_ingest_with_timeout_kills_a_hung_file(tmp_path: Path) -> None:
    path = tmp_path / "slow.pdf"
    shutil.copy(DATA / "numbered.pdf", path)
    started = time.monotonic()
    doc = ingest_with_timeout(path, replace(INGEST, timeout_s=1.0), func=_slow_ingest)
    assert time.monotonic() - started < 20
    _assert_one_sentence_error(doc, "slow.pdf", "timeout")
    assert doc.doc_id == doc_id_of(path)


def test_ingest_many_hung_worker_does_not_stall_the_rest(tmp_path: Path) -> None:
    slow = tmp_path / "slow.pdf"
    shutil.copy(DATA / "numbered.pdf", slow)
    paths = [slow, DATA / "numbered.pdf", DATA / "table.pdf", DATA / "footnote.pdf",
             DATA / "encrypted.pdf"]  # fmt: skip
    started = time.monotonic()
    docs = list(ingest_many(paths, workers=2, settings=replace(INGEST, timeout_s=4.0),
                            func=_slow_ingest))  # fmt: skip
    assert time.monotonic() - started < 30
    assert sorted(d.file for d in docs) == sorted(p.name for p in paths)
    by_name = {d.file: d for d in docs}
    assert by_name["slow.pdf"].error_kind == "timeout"
    assert by_name["encrypted.pdf"].error_kind == "encrypted"
    assert all(by_name[n].status == "ok" for n in ("numbered.pdf", "table.pdf", "footnote.pdf"))
    # Results come as they complete: the hung file is last.
    assert docs[-1].file == "slow.pdf"


def test_ingest_many_a_reader_killed_between_files_does_not_lose_the_next_one() -> None:
    # The OOM killer or a user can kill a reader just after it handed a file back (it has already
    # started the next one); that file must still be read, not reported as broken.
    import psutil

    docs = ingest_many([DATA / "numbered.pdf", DATA / "table.pdf"], workers=1)
    first = next(docs)
    readers = [c for c in psutil.Process().children() if "_worker_main" in " ".join(c.cmdline())]
    assert readers, "the reader process should be working on the next file"
    for reader in readers:
        reader.kill()
    psutil.wait_procs(readers, timeout=10)
    second = next(docs)
    assert (first.status, second.status) == ("ok", "ok"), second.error
    assert second.file == "table.pdf"


# --- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2021_northmere_lcspr_child-a.pdf",
         {"year": 2021, "area": "Northmere", "review_type": "LCSPR"}),
        ("2022_fenwick-moor_rapid-review_child-f.pdf",
         {"year": 2022, "area": "Fenwick Moor", "review_type": "rapid review"}),
        ("2016-05-16_bury_80443.pdf", {"year": 2016, "area": "Bury"}),
        ("2016-03-29_kensington-and-chelsea_80544.pdf",
         {"year": 2016, "area": "Kensington and Chelsea"}),
        ("2019-01-01_kingston-upon-thames_80111.pdf",
         {"year": 2019, "area": "Kingston upon Thames"}),
        ("scan_2018.pdf", {"year": 2018}),
        ("report.pdf", {}),
    ],
)  # fmt: skip
def test_ingest_metadata_from_filename(name: str, expected: dict[str, object]) -> None:
    assert metadata_from_filename(name) == expected


def test_ingest_metadata_from_filename_and_cover() -> None:
    doc = _ingest("2021_northmere_lcspr_child-a.pdf")
    assert doc.title == "Local Child Safeguarding Practice Review: Child A"
    assert (doc.area, doc.year, doc.review_type) == ("Northmere", 2021, "LCSPR")


def test_ingest_cover_area_overrides_filename() -> None:
    doc = _ingest("2019_westbrook_scr_family-b.pdf")
    assert doc.area == "Eastvale"
    assert (doc.year, doc.review_type) == (2019, "SCR")
    assert doc.title == "Serious Case Review: Family B"


def test_ingest_metadata_from_cover_only() -> None:
    doc = _ingest("panel_report.pdf")
    # The Panel's own annual report is an annual report, not a national review.
    assert (doc.review_type, doc.year, doc.title) == ("annual report", 2020, "Annual Report 2020")


@pytest.mark.parametrize(
    ("cover", "area", "rtype"),
    [
        ("Inspection of Portsmouth City local\nauthority children’s services", "Portsmouth",
         "other"),
        ("Child A\nWyvern Bay Safeguarding Children Partnership\nRapid Review", "Wyvern Bay",
         "rapid review"),
        ("Serious Case Review\nThe Brighton and Hove Local Safeguarding Children Board",
         "Brighton and Hove", "SCR"),
        ("A national review by the Child Safeguarding Practice Review Panel", None,
         "national review"),
    ],
)  # fmt: skip
def test_ingest_area_and_type_cues(cover: str, area: str | None, rtype: str) -> None:
    assert ingest.area_from_text(cover) == area
    assert ingest.review_type_from_text(cover, cover) == rtype


def test_ingest_area_from_an_inspection_headline() -> None:
    cover = "Northmere\nInspection of services for children\nChildren’s services in North Mere require\nimprovement"
    assert ingest.area_from_text(cover) == "North Mere"


@pytest.mark.parametrize(
    ("cover", "year"),
    [
        ("Inspection dates: 14 November 2016 to 8 December 2016\nReport published: 13 February 2017", 2017),
        ("Child D\nAugust 2019\nDate of publication: March 2021", 2021),
        ("Child D\nAugust 2019\nPublished 2020", 2020),
        ("Child D\nAugust 2019", 2019),
    ],
)  # fmt: skip
def test_ingest_year_is_the_publication_year_when_stated(cover: str, year: int) -> None:
    # Reviews and reports are filed under the year they were published, not the year of the events.
    assert ingest.year_from_text(cover, cover) == year


@pytest.mark.parametrize(
    ("cover", "area"),
    [
        ("Royal Borough of Wyvern and Bay\nInspection of services for children in need", "Wyvern and Bay"),
        ("Northmere Unitary Authority\nInspection of services for children in need", "Northmere"),
        ("Isles of Wyvern\nRe-inspection of services for children in need", "Isles of Wyvern"),
        ("Metropolitan Borough of Eastwold\nChild A", "Eastwold"),
        ("Northmere Metropolitan District Council\nInspection of services for children", "Northmere"),
        ("Eastwold Metropolitan Council\nBorough\nRe-inspection of services for children", "Eastwold"),
        ("Ashby Fen\nInspection of children’s social care services", "Ashby Fen"),
    ],
)  # fmt: skip
def test_ingest_area_from_an_inspection_cover_line(cover: str, area: str) -> None:
    assert ingest.area_from_text(cover) == area
    assert ingest.area_from_text(cover, cover=False) is None  # only a cover's own lines say this


def test_ingest_council_names_area_only_on_a_cover() -> None:
    assert ingest.area_from_text("Gateshead Borough Council\nInspection of services") == "Gateshead"
    text = "Children told the\nChildren in Care Council about their plans."
    assert ingest.area_from_text(text, cover=False) is None


def test_ingest_manifest_overrides_everything(tmp_path: Path) -> None:
    shutil.copy(DATA / "2021_northmere_lcspr_child-a.pdf", tmp_path)
    with (tmp_path / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "title", "area", "year", "review_type"])
        writer.writerow(["2021_northmere_lcspr_child-a.pdf", "", "North Mere", "2020", ""])
    assert load_manifest(tmp_path) == {
        "2021_northmere_lcspr_child-a.pdf": {"area": "North Mere", "year": "2020"}
    }
    doc = ingest_pdf(tmp_path / "2021_northmere_lcspr_child-a.pdf")
    assert (doc.area, doc.year) == ("North Mere", 2020)
    # Blank cells leave what was read.
    assert doc.title == "Local Child Safeguarding Practice Review: Child A"
    assert doc.review_type == "LCSPR"


def test_ingest_apply_manifest_rejects_unknown_review_type() -> None:
    doc = Document(doc_id="x", file="a.pdf", review_type="SCR")
    apply_manifest(doc, {"review_type": "serious case review", "title": "T"})
    assert doc.review_type == "SCR" and doc.title == "T"
    apply_manifest(doc, {"review_type": "rapid review"})
    assert doc.review_type == "rapid review"


# --- real files (slow) --------------------------------------------------------------------------


def _probe_records(corpus: Path) -> dict[str, dict[str, object]]:
    """What the corpus's probe files record per file name (pages, characters or the exception)."""
    records: dict[str, dict[str, object]] = {}
    for probe in corpus.glob("*.probe.jsonl"):
        for line in probe.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[rec["file"]] = rec
    return records


@pytest.mark.slow
def test_ingest_many_real_pdf_corpus_never_crashes() -> None:
    shared = shared_dir()
    corpus = shared / "pdf-corpus" if shared else None
    if corpus is None or not corpus.is_dir():
        pytest.skip("../shared/pdf-corpus is not available")
    probe = _probe_records(corpus)
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and
                   (p.suffix.lower() == ".pdf" or p.name in probe))  # fmt: skip
    settings = replace(INGEST, timeout_s=30.0)
    started = time.monotonic()
    docs = list(ingest_many(files, workers=2, settings=settings))
    elapsed = time.monotonic() - started
    assert len(docs) == len(files)
    assert Counter(d.file for d in docs) == Counter(p.name for p in files)
    for doc in docs:
        assert doc.status in ("ok", "error")
        if doc.status == "error":
            assert doc.error_kind in ERROR_KINDS, doc
            assert doc.error and doc.file in doc.error and "\n" not in doc.error
        else:
            assert doc.paragraphs and doc.text.strip()
            for para in doc.paragraphs:
                assert doc.text[para.char_start : para.char_end] == para.text
    with_chars = [d for d in docs if (probe.get(d.file) or {}).get("chars_first30p", 0)]
    ok = [d for d in with_chars if d.status == "ok"]
    assert len(ok) >= 0.9 * len(with_chars), Counter(d.error_kind for d in with_chars)
    encrypted = [d for d in docs if "Password" in str((probe.get(d.file) or {}).get("error", ""))
                 or (probe.get(d.file) or {}).get("error") == "pdfplumber.utils.exceptions.PdfminerException: "]  # fmt: skip
    assert all(d.error_kind == "encrypted" for d in encrypted)
    counts = Counter(d.error_kind or "ok" for d in docs)
    print(f"\npdf-corpus: {len(docs)} files in {elapsed:.0f} s: {dict(counts)}")


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


# --- hostile PDFs -------------------------------------------------------------------------------


def _write_bomb_pdf(path: Path, inflated_mib: int) -> None:
    """A one-page PDF whose content stream inflates from about 1 MB to ``inflated_mib`` MiB."""
    import zlib

    packer = zlib.compressobj(9)
    chunk = b" " * 2**20
    stream = b"".join(packer.compress(chunk) for _ in range(inflated_mib)) + packer.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def test_ingest_refuses_a_decompression_bomb_as_too_large(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pdf"
    _write_bomb_pdf(bomb, inflated_mib=1024)
    assert bomb.stat().st_size < 5 * 2**20
    settings = replace(INGEST, max_memory_mb=512, timeout_s=60.0)
    started = time.monotonic()
    docs = list(ingest_many([bomb, DATA / "numbered.pdf"], settings=settings))
    assert time.monotonic() - started < settings.timeout_s
    _assert_one_sentence_error(docs[0], "bomb.pdf", "too_large")
    assert docs[0].doc_id == doc_id_of(bomb)
    assert docs[1].status == "ok", "the run goes on after the bomb"
