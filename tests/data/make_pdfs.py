"""Write the small PDFs that tests/test_ingest.py reads, each showing one layout problem.

Run from anywhere: ``.venv/bin/python tests/data/make_pdfs.py``. The PDFs are committed, so the
tests do not need reportlab; re-run this script only when a sample changes. All text is our own.
"""

from __future__ import annotations

from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import simpleSplit
from reportlab.pdfgen import canvas

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = A4
LEFT = 72.0
BODY = "Helvetica"
BOLD = "Helvetica-Bold"


def _new(name: str, **kwargs: object) -> canvas.Canvas:
    c = canvas.Canvas(str(HERE / name), pagesize=A4, invariant=1, **kwargs)
    c.setAuthor("themes tests")
    return c


def _para(c: canvas.Canvas, text: str, y: float, *, x: float = LEFT, width: float | None = None,
          size: float = 11, leading: float = 14, font: str = BODY) -> float:  # fmt: skip
    """Draw a wrapped paragraph from baseline ``y``; return the baseline below it."""
    width = width or (WIDTH - 2 * LEFT)
    c.setFont(font, size)
    for line in simpleSplit(text, font, size, width):
        c.drawString(x, y, line)
        y -= leading
    return y


def _lines(c: canvas.Canvas, lines: list[str], y: float, *, x: float = LEFT, size: float = 11,
           leading: float = 14, font: str = BODY) -> float:  # fmt: skip
    """Draw pre-broken lines (so a test controls exactly where lines end)."""
    c.setFont(font, size)
    for line in lines:
        c.drawString(x, y, line)
        y -= leading
    return y


PAGES_TEXT = [
    (
        "The review looked at the help offered to Child A and the family between 2018 and 2020. "
        "Practitioners from health, education, police and children's social care took part in "
        "learning events and shared their records with the reviewer."
    ),
    (
        "Child A was seen regularly by the health visitor during the first year. The visits noted "
        "that the home was cluttered and that the mother appeared tired, but no referral was made "
        "to children's social care at that time."
    ),
    (
        "The school raised concerns about attendance in the spring term. A meeting was held with the "
        "mother, who said the absences were due to illness, and this account was accepted without "
        "further checks with the family doctor."
    ),
    (
        "The police attended a report of a disturbance at the address in the summer. The officers "
        "recorded that the children were present, and a notification was sent to children's social "
        "care two weeks later."
    ),
]


def make_running_headers() -> None:
    """Four pages with a running header, a "Page N of 4" footer and a bare page number."""
    c = _new("running_headers.pdf")
    for i, text in enumerate(PAGES_TEXT, 1):
        c.setFont(BODY, 9)
        c.drawString(
            LEFT, HEIGHT - 40, "Northmere Safeguarding Children Partnership - Child A review 2021"
        )
        c.drawCentredString(WIDTH / 2, 34, f"Page {i} of {len(PAGES_TEXT)}")
        c.drawRightString(WIDTH - LEFT, 20, str(i))
        y = _para(c, f"Section {i}", HEIGHT - 110, size=14, font=BOLD)
        _para(c, text, y - 8)
        c.showPage()
    c.save()


def make_hyphenation() -> None:
    """Words broken across lines with a hyphen, one a real compound ("multi-agency")."""
    c = _new("hyphenation.pdf")
    _lines(c, [
        "The social worker did not complete the assess-",
        "ment before the case was closed, and the multi-",
        "agency meeting that had been planned was not held. Nobody asked about the",
        "decision-making in the team or whether the non-",
        "English speaking father had been offered an interpreter at the first visit.",
    ], HEIGHT - 100)  # fmt: skip
    c.showPage()
    c.save()


def make_numbered() -> None:
    """Numbered paragraphs set with no vertical gap between them."""
    c = _new("numbered.pdf")
    _lines(c, [
        "4.11 The health visitor saw the baby at home and noted that the mother seemed",
        "low in mood; she was advised to see her doctor.",
        "4.12 The family doctor was not told of the health visitor's concern and no",
        "appointment was made.",
        "4.13. The midwife's records were not shared with the health visitor.",
        "1. Agencies should share information about a new partner joining the home.",
        "2. Managers should check that assessments are updated when the household",
        "changes.",
    ], HEIGHT - 100)  # fmt: skip
    c.showPage()
    c.save()


LEFT_COL = [
    "Alpha one: the left column starts the story of the",
    "family and what the agencies knew about them in",
    "the first months, line by line, in plain words so",
    "that the reading order can be checked by a test.",
    "Alpha five: the health visitor made four visits to",
    "the home and recorded that all seemed well with",
    "the baby, though the mother missed two clinics.",
    "Alpha eight: the left column ends here with a",
    "full stop at the end of its last line of text.",
]
RIGHT_COL = [
    "Bravo one: the right column continues with what",
    "happened later, when the school first raised its",
    "concerns about the older child's attendance and",
    "the bruising that a teacher saw on the arm.",
    "Bravo five: the referral to children's social care",
    "was made by telephone and was not followed up in",
    "writing, so there was no record of the decision.",
    "Bravo eight: the right column ends here with a",
    "full stop at the end of its last line of text.",
]


def make_two_column() -> None:
    """A title across the page, a centred line, then two columns whose lines sit level."""
    c = _new("two_column.pdf")
    c.setFont(BOLD, 16)
    c.drawString(LEFT, HEIGHT - 90, "Findings across the two columns of this page")
    # A short centred line whose word space falls on the gutter: still one line, not two.
    c.setFont(BODY, 10)
    c.drawCentredString(WIDTH / 2, HEIGHT - 110, "Part two")
    col_w = (WIDTH - 2 * LEFT - 24) / 2
    y0 = HEIGHT - 130
    _lines(c, LEFT_COL, y0, size=10, leading=13)
    _lines(c, RIGHT_COL, y0, x=LEFT + col_w + 24, size=10, leading=13)
    c.showPage()
    c.save()


def make_table() -> None:
    """Prose, a ruled three-by-three table, and more prose."""
    c = _new("table.pdf")
    y = _para(c, "The table below lists the contacts each agency had with the family before "
              "the incident.", HEIGHT - 100)  # fmt: skip
    rows = [["Agency", "Contacts", "Outcome"], ["Health visiting", "4", "No referral"],
            ["School", "2", "Meeting with mother"]]  # fmt: skip
    col_x = [LEFT, LEFT + 160, LEFT + 260, LEFT + 420]
    top = y - 10
    row_h = 22
    c.setLineWidth(0.8)
    for r in range(len(rows) + 1):
        c.line(col_x[0], top - r * row_h, col_x[-1], top - r * row_h)
    for x in col_x:
        c.line(x, top, x, top - len(rows) * row_h)
    c.setFont(BODY, 10)
    for r, row in enumerate(rows):
        for k, cell in enumerate(row):
            c.drawString(col_x[k] + 4, top - r * row_h - 15, cell)
    _para(c, "After the table the review returns to its account of the school's concerns.",
          top - len(rows) * row_h - 30)  # fmt: skip
    c.showPage()
    c.save()


def make_footnote() -> None:
    """Body text with a superscript reference and two small-font footnotes at the page foot."""
    c = _new("footnote.pdf")
    y = _para(
        c,
        "The partnership followed the statutory guidance on reviews and used a "
        "systems approach to understand why practice happened as it did.",
        HEIGHT - 100,
    )
    c.setFont(BODY, 6)
    c.drawString(LEFT + 190, y + 18, "1")
    _para(c, "Practitioners were interviewed in small groups and the family were invited "
          "to contribute.", y - 8)  # fmt: skip
    c.setLineWidth(0.5)
    c.line(LEFT, 110, LEFT + 150, 110)
    _lines(c, ["1 Working Together to Safeguard Children, chapter four.",
               "2 The mother met the reviewer twice; the father declined."], 96, size=8,
           leading=10)  # fmt: skip
    c.showPage()
    c.save()


def make_fake_bold() -> None:
    """A heading and a line printed twice with a tiny offset, as some tools fake bold."""
    c = _new("fake_bold.pdf")
    for dx in (0, 0.4):
        c.setFont(BODY, 14)
        c.drawString(LEFT + dx, HEIGHT - 100, "Key findings")
        c.setFont(BODY, 11)
        c.drawString(
            LEFT + dx, HEIGHT - 130, "The assessment was not updated when a new partner moved in."
        )
    c.showPage()
    c.save()


def make_encrypted() -> None:
    """A PDF that needs the password "secret" to open."""
    c = _new("encrypted.pdf", encrypt="secret")
    _para(c, "This text is only readable with the password.", HEIGHT - 100)
    c.showPage()
    c.save()


def make_image_only() -> None:
    """Two pages with a filled rectangle and no text, like a scan without OCR."""
    c = _new("image_only.pdf")
    for _ in range(2):
        c.setFillGray(0.6)
        c.rect(LEFT, 300, 300, 300, fill=1, stroke=0)
        c.showPage()
    c.save()


def make_covers() -> None:
    """Review-like files whose metadata come from the file name and the cover."""
    c = _new("2021_northmere_lcspr_child-a.pdf")
    c.setFont(BOLD, 24)
    c.drawString(LEFT, HEIGHT - 200, "Local Child Safeguarding Practice")
    c.drawString(LEFT, HEIGHT - 230, "Review: Child A")
    c.setFont(BODY, 14)
    c.drawString(LEFT, HEIGHT - 280, "Northmere Safeguarding Children Partnership")
    c.drawString(LEFT, HEIGHT - 300, "Published June 2021")
    c.showPage()
    _para(c, "1.1 This review considers the help given to Child A by local agencies.", HEIGHT - 100)
    c.showPage()
    c.save()

    # The file name says one area; the cover names the board, which wins.
    c = _new("2019_westbrook_scr_family-b.pdf")
    c.setFont(BOLD, 22)
    c.drawString(LEFT, HEIGHT - 200, "Serious Case Review: Family B")
    c.setFont(BODY, 14)
    c.drawString(LEFT, HEIGHT - 250, "Eastvale Local Safeguarding Children Board")
    c.drawString(LEFT, HEIGHT - 270, "March 2019")
    c.showPage()
    _para(c, "1.1 This serious case review looks at the care of the children in Family B.",
          HEIGHT - 100)  # fmt: skip
    c.showPage()
    c.save()

    # No naming convention: everything from the cover (the Panel's annual report).
    c = _new("panel_report.pdf")
    c.setTitle("The Panel's annual report")
    c.setFont(BOLD, 26)
    c.drawString(LEFT, HEIGHT - 200, "Annual Report 2020")
    c.setFont(BODY, 14)
    c.drawString(LEFT, HEIGHT - 240, "The Child Safeguarding Practice Review Panel")
    c.showPage()
    _para(c, "The Panel received notifications of serious incidents from every region.",
          HEIGHT - 100)  # fmt: skip
    c.showPage()
    c.save()


# --- a hand-written PDF for glyphs reportlab cannot produce ----------------------------------


def _raw_pdf(objects: list[bytes]) -> bytes:
    """A minimal PDF from object bodies (object 1 is the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def make_glyphs() -> None:
    """Bullets in a private-use code point (as Word's Symbol bullets come out) and (cid:N) glyphs."""
    content = b"\n".join([
        b"BT /F1 11 Tf 72 740 Td (Concerns raised by the school:) Tj ET",
        b"BT /F1 11 Tf 72 720 Td (\\225 Parents were seen at home.) Tj ET",
        b"BT /F1 11 Tf 72 706 Td (\\225 The school was not told of the move.) Tj ET",
        b"BT /F2 11 Tf 72 680 Td <00410042> Tj ET",
        b"BT /F1 11 Tf 90 680 Td (The health visitor was not invited.) Tj ET",
    ])  # fmt: skip
    cmap = b"\n".join([
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def",
        b"1 begincodespacerange <00> <FF> endcodespacerange",
        b"1 beginbfchar <95> <F0B7> endbfchar",
        b"endcmap CMapName currentdict /CMap defineresource pop end end",
    ])  # fmt: skip
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R /F2 7 0 R >> >> >>"
        ),
        _stream(content),
        (
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding"
            b" /ToUnicode 6 0 R >>"
        ),
        _stream(cmap),
        (
            b"<< /Type /Font /Subtype /Type0 /BaseFont /Unmapped /Encoding /Identity-H"
            b" /DescendantFonts [8 0 R] >>"
        ),
        (
            b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Unmapped /DW 500"
            b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
            b" /FontDescriptor 9 0 R >>"
        ),
        (
            b"<< /Type /FontDescriptor /FontName /Unmapped /Flags 4 /FontBBox [0 -200 1000 800]"
            b" /ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 >>"
        ),
    ]
    (HERE / "glyphs.pdf").write_bytes(_raw_pdf(objects))


def make_no_pages() -> None:
    """A well-formed PDF whose page tree is empty."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    (HERE / "no_pages.pdf").write_bytes(_raw_pdf(objects))


def main() -> None:
    """Write every sample PDF into this folder."""
    make_running_headers()
    make_hyphenation()
    make_numbered()
    make_two_column()
    make_table()
    make_footnote()
    make_fake_bold()
    make_encrypted()
    make_image_only()
    make_covers()
    make_glyphs()
    make_no_pages()


if __name__ == "__main__":
    main()
