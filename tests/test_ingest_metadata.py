"""Tests for themes.ingest.metadata: title, area, year and review type from the file name, the
cover and a manifest.

Tests of the cover reader run on files with neutral names ("doc1.pdf"), so that what they find can
only have come from the cover; the file-name reader has its own tests.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from test_ingest import DATA

from themes.ingest import (
    apply_manifest,
    area_from_text,
    ingest_pdf,
    load_manifest,
    metadata_from_filename,
    review_type_from_text,
    year_from_text,
)
from themes.types import Document


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


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("2021_northmere_lcspr_child-a.pdf",
         ("Local Child Safeguarding Practice Review: Child A", "Northmere", 2021, "LCSPR")),
        ("2019_westbrook_scr_family-b.pdf",
         ("Serious Case Review: Family B", "Eastvale", 2019, "SCR")),
        # The Panel's own annual report is an annual report, not a national review.
        ("panel_report.pdf", ("Annual Report 2020", None, 2020, "annual report")),
    ],
)  # fmt: skip
def test_ingest_metadata_from_the_cover_under_a_neutral_name(
    sample: str, expected: tuple[object, ...], tmp_path: Path
) -> None:
    neutral = tmp_path / "doc1.pdf"
    shutil.copy(DATA / sample, neutral)
    assert metadata_from_filename(neutral.name) == {}  # so all that is found is the cover's
    doc = ingest_pdf(neutral)
    assert doc.status == "ok", doc.error
    assert (doc.title, doc.area, doc.year, doc.review_type) == expected


def _cover_pdf(path: Path, lines: list[str]) -> Path:
    """A two-page PDF: ``lines`` on the cover, far enough apart to be paragraphs, then prose."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.setFont("Helvetica", 14)
    for i, line in enumerate(lines):
        c.drawString(72, A4[1] - 200 - 40 * i, line)
    c.showPage()
    c.setFont("Helvetica", 11)
    c.drawString(72, A4[1] - 100, "1.1 The review looked at the help the family were offered.")
    c.showPage()
    c.save()
    return path


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Wyvern Bay", "Inspection of services for children in need",
          "Report published: 13 February 2017"], ("Wyvern Bay", 2017, "other")),
        (["Child C", "Ashby Fen Safeguarding Children Partnership", "Rapid Review", "August 2022"],
         ("Ashby Fen", 2022, "rapid review")),
        (["Serious Case Review: Child D", "The Eastwold Local Safeguarding Children Board",
          "Date of publication: March 2016"], ("Eastwold", 2016, "SCR")),
        (["Local Child Safeguarding Practice Review", "Royal Borough of Northmere and Fen",
          "Published 2023"], ("Northmere and Fen", 2023, "LCSPR")),
    ],
)  # fmt: skip
def test_ingest_metadata_from_a_generated_cover(
    lines: list[str], expected: tuple[object, ...], tmp_path: Path
) -> None:
    doc = ingest_pdf(_cover_pdf(tmp_path / "doc1.pdf", lines))
    assert doc.status == "ok", doc.error
    assert (doc.area, doc.year, doc.review_type) == expected


@pytest.mark.parametrize(
    ("sample", "name", "expected"),
    [
        # The cover names another area ("Eastvale ... Board"): the cover's area wins, while the
        # name's year and type win over the cover's "March 2019" and "Serious Case Review".
        ("2019_westbrook_scr_family-b.pdf", "2018_westbrook_lcspr_child-x.pdf",
         ("Eastvale", 2018, "LCSPR")),
        # The cover names no area: the name's is kept.
        ("panel_report.pdf", "2018_northmere_scr_child-x.pdf", ("Northmere", 2018, "SCR")),
    ],
)  # fmt: skip
def test_ingest_metadata_file_name_and_cover_together(
    sample: str, name: str, expected: tuple[object, ...], tmp_path: Path
) -> None:
    path = tmp_path / name
    shutil.copy(DATA / sample, path)
    doc = ingest_pdf(path)
    assert (doc.area, doc.year, doc.review_type) == expected


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
    assert area_from_text(cover) == area
    assert review_type_from_text(cover, cover) == rtype


def test_ingest_area_from_an_inspection_headline() -> None:
    cover = "Northmere\nInspection of services for children\nChildren’s services in North Mere require\nimprovement"
    assert area_from_text(cover) == "North Mere"


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
    assert year_from_text(cover, cover) == year


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
    assert area_from_text(cover) == area
    assert area_from_text(cover, cover=False) is None  # only a cover's own lines say this


def test_ingest_council_names_area_only_on_a_cover() -> None:
    assert area_from_text("Gateshead Borough Council\nInspection of services") == "Gateshead"
    text = "Children told the\nChildren in Care Council about their plans."
    assert area_from_text(text, cover=False) is None


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
