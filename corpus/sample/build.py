"""Render the fictional sample corpus: every ``src/<stem>.yaml`` becomes ``<stem>.pdf``.

The PDFs imitate the layout of English child safeguarding review reports so the pipeline meets
what it will meet in real files: a cover page, a contents page, a running header and a footer with
"Page N of M", numbered paragraphs, bullet lists, ruled tables, footnotes at the foot of the page
where they are cited, and sections set in two genuine columns (two frames side by side).

Usage (from the project root)::

    .venv/bin/python corpus/sample/build.py            # rebuild every document
    .venv/bin/python corpus/sample/build.py STEM ...   # rebuild only these stems

Output is byte-for-byte deterministic (reportlab ``invariant=1``), so rebuilding an unchanged
YAML file leaves its PDF unchanged in git.

YAML keys beyond the shared schema, all optional: ``child`` (cover line; default: the part of the
title after its last colon), ``reviewer`` (cover line "Independent reviewer: <reviewer>") or
``author`` (a full cover line, e.g. for a national review), ``published`` (e.g. "March 2021";
default: a month derived from the stem), per section ``new_page`` (default true), a block
``h: "sub-heading"``, and a block ``box: {title: "Learning point 1", text: "..."}`` (a boxed
learning point, ruled and shaded). Footnote markers ``[^n]`` may appear in paragraphs and bullets,
not tables or boxes.

``--root DIR`` builds another corpus laid out the same way (``DIR/src/*.yaml`` into ``DIR/*.pdf``,
checked against ``DIR/expected/``), such as the held-out document-evaluation set in
``corpus/doc-eval``.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from themes.config import CORE_THEMES
from themes.types import REVIEW_TYPES, SECTIONS

HERE = Path(__file__).resolve().parent
SRC_DIR = HERE / "src"
EXPECTED_DIR = HERE / "expected"

#: Codebook theme ids (fixed for the project); used only to catch typos in ``known_themes``.
ALL_THEMES: tuple[str, ...] = CORE_THEMES + (
    "domestic_abuse",
    "child_voice",
    "fathers_male_partners",
    "professional_challenge",
    "disguised_compliance",
    "was_not_brought",
    "neglect",
    "extrafamilial_harm",
    "parental_mental_health",
    "not_in_school",
)
LAYOUTS = ("one_column", "two_column")
TYPE_NAMES = {
    "LCSPR": "Local Child Safeguarding Practice Review",
    "SCR": "Serious Case Review",
    "rapid review": "Rapid Review",
    "annual report": "Annual Report",
    "national review": "National Review",
    "other": "Review Report",
}
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MIN_PAGES, MAX_PAGES = 8, 20

PAGE_W, PAGE_H = A4
MARGIN_X = 2.3 * cm
MARGIN_TOP = 2.6 * cm
MARGIN_BOTTOM = 2.4 * cm
GUTTER = 0.8 * cm
FOOTNOTE_RULE_GAP = 8.0

FN_MARKER = re.compile(r"\[\^(\d+)\]")
#: Rise and size of a footnote marker: low enough that text extraction keeps it on its line
#: ("assurance1"), as with word-processor output.
SUPER = '<super rise="3" size="7">'
PARA_NUMBER = re.compile(r"^(\d+(?:\.\d+)+)\s+(.*)$", re.DOTALL)

# Helvetica has no extractable bullet glyph; Vera ships with reportlab, so it is always there.
pdfmetrics.registerFont(TTFont("Vera", "Vera.ttf"))

BODY = ParagraphStyle(
    "body", fontName="Helvetica", fontSize=10.5, leading=14.2, spaceAfter=7,
    leftIndent=0, bulletFontName="Helvetica", bulletFontSize=10.5,
)  # fmt: skip
NUMBERED = ParagraphStyle("numbered", parent=BODY, leftIndent=34, bulletIndent=0)
BULLET = ParagraphStyle(
    "bullet", parent=BODY, leftIndent=52, bulletIndent=40, spaceAfter=3, bulletFontName="Vera",
)  # fmt: skip
H1 = ParagraphStyle(
    "h1", fontName="Helvetica-Bold", fontSize=14, leading=18, spaceBefore=4, spaceAfter=10,
    keepWithNext=True,
)  # fmt: skip
H2 = ParagraphStyle(
    "h2", fontName="Helvetica-Bold", fontSize=11.5, leading=15, spaceBefore=6, spaceAfter=6,
    keepWithNext=True,
)  # fmt: skip
CAPTION = ParagraphStyle(
    "caption", fontName="Helvetica-Bold", fontSize=9.5, leading=12, spaceBefore=4, spaceAfter=4,
    keepWithNext=True,
)  # fmt: skip
CELL = ParagraphStyle("cell", fontName="Helvetica", fontSize=9, leading=11.2)
CELL_HEAD = ParagraphStyle("cellhead", parent=CELL, fontName="Helvetica-Bold")
FOOTNOTE = ParagraphStyle(
    "footnote", fontName="Helvetica", fontSize=8, leading=9.8, leftIndent=9, firstLineIndent=-9,
)  # fmt: skip
CONTENTS = ParagraphStyle("contents", fontName="Helvetica", fontSize=11, leading=15)
CONTENTS_NUM = ParagraphStyle("contentsnum", parent=CONTENTS, alignment=TA_RIGHT)


class SampleError(ValueError):
    """A sample YAML file does not follow the schema."""


# --------------------------------------------------------------------------------------------
# Reading and checking the YAML
# --------------------------------------------------------------------------------------------


def load_spec(path: Path) -> dict[str, Any]:
    """Read one sample YAML file and check it against the schema.

    Args:
        path: the ``src/<stem>.yaml`` file.

    Returns:
        The parsed mapping, with footnote keys turned into ``str``.
    """
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SampleError(f"{path.name}: is not valid YAML ({exc}); fix the syntax.") from exc
    if not isinstance(spec, dict):
        raise SampleError(f"{path.name}: top level must be a mapping of schema keys.")
    required = ("title", "partnership", "area", "year", "review_type", "known_themes", "header",
                "footer", "sections")  # fmt: skip
    missing = [k for k in required if k not in spec]
    if missing:
        raise SampleError(f"{path.name}: missing required keys {missing}.")
    if spec["review_type"] not in REVIEW_TYPES:
        raise SampleError(
            f"{path.name}: review_type {spec['review_type']!r} is not one of {REVIEW_TYPES}."
        )
    bad = [t for t in spec["known_themes"] if t not in ALL_THEMES]
    if bad:
        raise SampleError(f"{path.name}: known_themes has unknown theme ids {bad}.")
    if not path.stem.startswith(f"{spec['year']}_"):
        raise SampleError(f"{path.name}: stem must start with the year {spec['year']}_.")
    spec["footnotes"] = {str(k): str(v) for k, v in (spec.get("footnotes") or {}).items()}
    cited: list[str] = []
    for si, sec in enumerate(spec["sections"], 1):
        where = f"{path.name}: section {si} ({sec.get('heading', '?')!r})"
        for key in ("heading", "section", "layout", "blocks"):
            if key not in sec:
                raise SampleError(f"{where} has no {key!r}.")
        if sec["section"] not in SECTIONS:
            raise SampleError(f"{where}: section {sec['section']!r} is not one of {SECTIONS}.")
        if sec["layout"] not in LAYOUTS:
            raise SampleError(f"{where}: layout {sec['layout']!r} is not one of {LAYOUTS}.")
        for bi, block in enumerate(sec["blocks"], 1):
            if not isinstance(block, dict) or len(block) != 1:
                raise SampleError(f"{where} block {bi} must have exactly one key: p, bullets, "
                                  "table, box or h.")  # fmt: skip
            kind, value = next(iter(block.items()))
            if kind == "p" or kind == "h":
                cited += FN_MARKER.findall(str(value))
            elif kind == "bullets":
                for item in value:
                    cited += FN_MARKER.findall(str(item))
            elif kind == "table":
                cells = [value.get("caption", "")] + list(value["header"])
                cells += [c for row in value["rows"] for c in row]
                if any(FN_MARKER.search(str(c)) for c in cells):
                    raise SampleError(f"{where} block {bi}: footnote markers are not supported "
                                      "in tables; cite the footnote in a paragraph.")  # fmt: skip
                width = len(value["header"])
                if any(len(row) != width for row in value["rows"]):
                    raise SampleError(f"{where} block {bi}: every table row needs {width} cells.")
            elif kind == "box":
                if not isinstance(value, dict) or not value.get("text"):
                    raise SampleError(f"{where} block {bi}: a box needs a 'text' (and may have "
                                      "a 'title').")  # fmt: skip
                if FN_MARKER.search(str(value.get("text"))):
                    raise SampleError(f"{where} block {bi}: footnote markers are not supported "
                                      "in boxes; cite the footnote in a paragraph.")  # fmt: skip
            else:
                raise SampleError(f"{where} block {bi}: unknown block kind {kind!r}.")
    undefined = sorted(set(cited) - set(spec["footnotes"]), key=int)
    if undefined:
        raise SampleError(f"{path.name}: footnotes {undefined} are cited but not defined.")
    unused = sorted(set(spec["footnotes"]) - set(cited), key=int)
    if unused:
        raise SampleError(f"{path.name}: footnotes {unused} are defined but never cited.")
    return spec


# --------------------------------------------------------------------------------------------
# Footnotes: frames that reserve room at their foot for the notes cited in them
# --------------------------------------------------------------------------------------------


@dataclass
class FootnoteState:
    """Which footnotes have been placed during one build pass (each is printed once)."""

    texts: dict[str, str]
    placed: set[str] = field(default_factory=set)


class NotedParagraph(Paragraph):
    """A paragraph that cites footnotes; it never splits so its notes stay on its page."""

    def __init__(self, text: str, style: ParagraphStyle, fn_ids: list[str], **kw: Any) -> None:
        super().__init__(text, style, **kw)
        self.fn_ids = fn_ids

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        """Refuse to split (move whole to the next frame) unless taller than a frame."""
        _, height = self.wrap(availWidth, availHeight)
        if height <= availHeight or height < 0.6 * (PAGE_H - MARGIN_TOP - MARGIN_BOTTOM):
            return []
        return super().split(availWidth, availHeight)


class FootnoteFrame(Frame):
    """A frame whose bottom rises to make room for the footnotes cited in it."""

    def __init__(self, *args: Any, state: FootnoteState, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.state = state
        self.notes: list[tuple[str, Paragraph, float]] = []

    def _reset(self) -> None:
        super()._reset()
        self._geom()  # undo the raised bottom of the previous page
        self.notes = []

    def _note_flowables(self, fn_ids: list[str]) -> list[tuple[str, Paragraph, float]]:
        out = []
        for fid in fn_ids:
            if fid in self.state.placed or any(fid == n[0] for n in self.notes):
                continue
            para = Paragraph(f"{SUPER}{fid}</super> {escape(self.state.texts[fid])}", FOOTNOTE)
            _, h = para.wrap(self._aW, PAGE_H)
            out.append((fid, para, h + 2.0))
        return out

    def _add(self, flowable: Flowable, canv: Canvas, trySplit: int = 0) -> int:
        fn_ids = getattr(flowable, "fn_ids", None)
        if not fn_ids:
            return super()._add(flowable, canv, trySplit)
        new = self._note_flowables(fn_ids)
        extra = sum(h for _, _, h in new)
        if new and not self.notes:
            extra += FOOTNOTE_RULE_GAP
        saved = self._y1p
        self._y1p = saved + extra
        ok = super()._add(flowable, canv, trySplit)
        if ok:
            self.notes.extend(new)
            self.state.placed.update(fid for fid, _, _ in new)
        else:
            self._y1p = saved
        return ok

    add = _add

    def draw_notes(self, canv: Canvas) -> None:
        """Draw this frame's footnotes at its foot, under a short rule."""
        if not self.notes:
            return
        x = self._x1 + self._leftPadding
        y = self._y1 + self._bottomPadding
        for _, para, h in reversed(self.notes):
            para.wrap(self._aW, h)
            para.drawOn(canv, x, y)
            y += h
        canv.saveState()
        canv.setLineWidth(0.5)
        canv.line(x, y + 3, x + min(5 * cm, self._aW * 0.4), y + 3)
        canv.restoreState()


# --------------------------------------------------------------------------------------------
# Document template: cover, one-column and two-column pages
# --------------------------------------------------------------------------------------------


class HeadingMark(Flowable):
    """Zero-size marker that records the page its section heading landed on."""

    _ZEROSIZE = True

    def __init__(self, key: int) -> None:
        super().__init__()
        self.key = key

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return 0.0, 0.0

    def draw(self) -> None:
        pass


class ReviewDoc(BaseDocTemplate):
    """A4 review with a cover page and header/footer pages in one or two columns."""

    def __init__(self, target: Any, spec: dict[str, Any], total_pages: int | None,
                 **kw: Any) -> None:  # fmt: skip
        super().__init__(
            target, pagesize=A4, invariant=1, title=spec["title"], author=spec["partnership"],
            subject=TYPE_NAMES[spec["review_type"]], creator="themes sample corpus (build.py)",
            producer="ReportLab", leftMargin=MARGIN_X, rightMargin=MARGIN_X,
            topMargin=MARGIN_TOP, bottomMargin=MARGIN_BOTTOM, **kw,
        )  # fmt: skip
        self.spec = spec
        self.total_pages = total_pages
        self.heading_pages: dict[int, int] = {}
        self.state = FootnoteState(texts=spec["footnotes"])
        body_h = PAGE_H - MARGIN_TOP - MARGIN_BOTTOM
        body_w = PAGE_W - 2 * MARGIN_X
        col_w = (body_w - GUTTER) / 2
        cover = Frame(MARGIN_X, MARGIN_BOTTOM, body_w, body_h, id="cover")
        one = FootnoteFrame(MARGIN_X, MARGIN_BOTTOM, body_w, body_h, id="body",
                            state=self.state)  # fmt: skip
        left = FootnoteFrame(MARGIN_X, MARGIN_BOTTOM, col_w, body_h, id="left",
                             state=self.state)  # fmt: skip
        right = FootnoteFrame(MARGIN_X + col_w + GUTTER, MARGIN_BOTTOM, col_w, body_h,
                              id="right", state=self.state)  # fmt: skip
        self.addPageTemplates([
            PageTemplate("cover", [cover], onPage=self._cover_page),
            PageTemplate("one", [one], onPage=self._furniture, onPageEnd=self._notes),
            PageTemplate("two", [left, right], onPage=self._furniture, onPageEnd=self._notes),
        ])  # fmt: skip

    def afterFlowable(self, flowable: Flowable) -> None:
        """Remember the page of each section heading for the contents page."""
        if isinstance(flowable, HeadingMark):
            self.heading_pages[flowable.key] = self.page

    def _cover_page(self, canv: Canvas, doc: BaseDocTemplate) -> None:
        canv.saveState()
        canv.setFillColor(colors.HexColor("#1f3b5a"))
        canv.rect(0, PAGE_H - 1.2 * cm, PAGE_W, 1.2 * cm, stroke=0, fill=1)
        canv.setFont("Helvetica", 7.5)
        canv.setFillColor(colors.grey)
        canv.drawCentredString(
            PAGE_W / 2, 1.4 * cm, "Fictional sample written for software testing"
        )
        canv.restoreState()

    def _furniture(self, canv: Canvas, doc: BaseDocTemplate) -> None:
        canv.saveState()
        canv.setFont("Helvetica", 8.5)
        canv.setFillColor(colors.HexColor("#333333"))
        top = PAGE_H - 1.5 * cm
        canv.drawString(MARGIN_X, top, self.spec["header"])
        canv.setLineWidth(0.4)
        canv.line(MARGIN_X, top - 4, PAGE_W - MARGIN_X, top - 4)
        bottom = 1.5 * cm
        canv.line(MARGIN_X, bottom + 11, PAGE_W - MARGIN_X, bottom + 11)
        canv.drawString(MARGIN_X, bottom, self.spec["footer"])
        total = self.total_pages if self.total_pages else 0
        canv.drawRightString(PAGE_W - MARGIN_X, bottom, f"Page {doc.page} of {total}")
        canv.restoreState()

    def _notes(self, canv: Canvas, doc: BaseDocTemplate) -> None:
        for frame in doc.pageTemplate.frames:
            if isinstance(frame, FootnoteFrame):
                frame.draw_notes(canv)


# --------------------------------------------------------------------------------------------
# From YAML blocks to flowables
# --------------------------------------------------------------------------------------------


def inline(text: str) -> tuple[str, list[str]]:
    """Escape text for reportlab markup and turn ``[^n]`` into superscripts.

    Returns:
        The markup and the footnote ids cited in it, in order.
    """
    ids = FN_MARKER.findall(text)
    markup = FN_MARKER.sub(lambda m: f"{SUPER}{m.group(1)}</super>", escape(" ".join(text.split())))
    return markup, ids


def make_paragraph(text: str, style: ParagraphStyle, bullet: str | None = None) -> Paragraph:
    """A paragraph, made a :class:`NotedParagraph` when it cites footnotes."""
    markup, ids = inline(text)
    if ids:
        return NotedParagraph(markup, style, ids, bulletText=bullet)
    return Paragraph(markup, style, bulletText=bullet)


def make_table(block: dict[str, Any], width: float) -> list[Flowable]:
    """A captioned table with grid lines, cell text wrapped, header row repeated."""
    header = [Paragraph(inline(str(c))[0], CELL_HEAD) for c in block["header"]]
    rows = [[Paragraph(inline(str(c))[0], CELL) for c in row] for row in block["rows"]]
    ncol = len(block["header"])
    lengths = []
    for j in range(ncol):
        texts = [str(block["header"][j])] + [str(r[j]) for r in block["rows"]]
        lengths.append(min(max(len(t) for t in texts), 200) ** 0.9 + 4)
    floor = width * 0.2 / ncol
    spare = width - floor * ncol
    widths = [floor + spare * n / sum(lengths) for n in lengths]
    table = Table([header] + rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.6, colors.HexColor("#555555")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ec")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))  # fmt: skip
    out: list[Flowable] = []
    if block.get("caption"):
        out.append(Paragraph(inline(str(block["caption"]))[0], CAPTION))
    out += [table, Spacer(1, 10)]
    return out


def make_box(block: dict[str, Any], width: float) -> list[Flowable]:
    """A boxed learning point: an optional bold title over the text, ruled and shaded."""
    cells = []
    if block.get("title"):
        cells.append([Paragraph(inline(str(block["title"]))[0], CELL_HEAD)])
    cells.append([Paragraph(inline(str(block["text"]))[0], BODY)])
    box = Table(cells, colWidths=[width - 4], hAlign="LEFT")
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.0, colors.HexColor("#2f4f6f")),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#eef2f6")),
        ("LEFTPADDING", (0, 0), (-1, -1), 8),
        ("RIGHTPADDING", (0, 0), (-1, -1), 8),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))  # fmt: skip
    return [Spacer(1, 4), box, Spacer(1, 10)]


def cover_flowables(spec: dict[str, Any], stem: str) -> list[Flowable]:
    """The cover page: partnership, title, child, review type, date and author."""
    big = ParagraphStyle("cv1", fontName="Helvetica-Bold", fontSize=22, leading=28,
                         alignment=TA_CENTER, spaceAfter=18)  # fmt: skip
    mid = ParagraphStyle("cv2", fontName="Helvetica", fontSize=15, leading=20,
                         alignment=TA_CENTER, spaceAfter=12)  # fmt: skip
    small = ParagraphStyle("cv3", parent=mid, fontSize=11.5, leading=16, spaceAfter=6)
    title = str(spec["title"])
    child = spec.get("child") or (title.rsplit(":", 1)[1].strip() if ":" in title else "")
    published = spec.get("published") or (
        f"{MONTHS[zlib.crc32(stem.encode()) % 12]} {spec['year']}"
    )
    if spec.get("author"):
        author = str(spec["author"])
    else:
        author = f"Independent reviewer: {spec.get('reviewer', '[name withheld]')}"
    out: list[Flowable] = [
        Spacer(1, 2.5 * cm),
        Paragraph(escape(str(spec["partnership"])), mid),
        Spacer(1, 1.5 * cm),
        Paragraph(escape(title), big),
    ]
    if child and child not in title:
        out.append(Paragraph(escape(f"Concerning: {child}"), mid))
    out += [
        Spacer(1, 1.0 * cm),
        Paragraph(escape(TYPE_NAMES[spec["review_type"]]), small),
        Paragraph(escape(f"Area: {spec['area']}"), small),
        Paragraph(escape(f"Published: {published}"), small),
        Spacer(1, 3.0 * cm),
        Paragraph(escape(author), small),
    ]
    return out


def contents_flowables(spec: dict[str, Any], pages: dict[int, int]) -> list[Flowable]:
    """The contents page: one row per section with its page number (blank on the first pass)."""
    rows = [
        [Paragraph(escape(str(sec["heading"])), CONTENTS),
         Paragraph(str(pages.get(i, "")), CONTENTS_NUM)]
        for i, sec in enumerate(spec["sections"])
    ]  # fmt: skip
    width = PAGE_W - 2 * MARGIN_X
    table = Table(rows, colWidths=[width - 2 * cm, 2 * cm], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor("#bbbbbb")),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))  # fmt: skip
    return [Paragraph("Contents", H1), Spacer(1, 6), table]


def story(spec: dict[str, Any], stem: str, pages: dict[int, int]) -> list[Flowable]:
    """All flowables of one document, in order."""
    out: list[Flowable] = [NextPageTemplate("cover")]
    out += cover_flowables(spec, stem)
    out += [NextPageTemplate("one"), PageBreak()]
    out += contents_flowables(spec, pages)
    layout = "one_column"
    body_w = PAGE_W - 2 * MARGIN_X
    col_w = (body_w - GUTTER) / 2
    for i, sec in enumerate(spec["sections"]):
        new_layout = sec["layout"]
        if i == 0 or sec.get("new_page", True) or new_layout != layout:
            out += [NextPageTemplate("two" if new_layout == "two_column" else "one"), PageBreak()]
        layout = new_layout
        width = col_w if layout == "two_column" else body_w
        out += [HeadingMark(i), Paragraph(escape(str(sec["heading"])), H1)]
        for block in sec["blocks"]:
            kind, value = next(iter(block.items()))
            if kind == "h":
                out.append(make_paragraph(str(value), H2))
            elif kind == "p":
                text = str(value).strip()
                m = PARA_NUMBER.match(text)
                if m:
                    out.append(make_paragraph(m.group(2), NUMBERED, bullet=m.group(1)))
                else:
                    out.append(make_paragraph(text, BODY))
            elif kind == "bullets":
                out += [make_paragraph(str(item), BULLET, bullet="\u2022") for item in value]
                out.append(Spacer(1, 5))
            elif kind == "table":
                out += make_table(value, width)
            elif kind == "box":
                out += make_box(value, width)
    return out


def render(spec: dict[str, Any], stem: str) -> tuple[bytes, int]:
    """Lay the document out twice (page numbers, then final) and return the PDF bytes.

    Returns:
        The PDF bytes and its page count.
    """
    first = ReviewDoc(io.BytesIO(), spec, total_pages=None)
    first.build(story(spec, stem, {}))
    total = first.page
    buf = io.BytesIO()
    final = ReviewDoc(buf, spec, total_pages=total)
    final.build(story(spec, stem, first.heading_pages))
    if final.page != total or final.heading_pages != first.heading_pages:
        raise SampleError(f"{stem}: layout changed between passes; report this as a build.py bug.")
    return buf.getvalue(), total


def check_expected(spec: dict[str, Any], stem: str) -> list[str]:
    """Differences between ``expected/<stem>.json`` and the YAML (empty when they agree)."""
    path = HERE / "expected" / f"{stem}.json"
    if not path.exists():
        return [f"{stem}: expected/{stem}.json is missing."]
    got = json.loads(path.read_text(encoding="utf-8"))
    want = {"file": f"{stem}.pdf", "title": spec["title"], "area": spec["area"],
            "year": spec["year"], "review_type": spec["review_type"],
            "known_themes": list(spec["known_themes"])}  # fmt: skip
    problems = []
    for key, value in want.items():
        if key == "known_themes":
            if sorted(got.get(key, [])) != sorted(value):
                problems.append(f"{stem}: expected known_themes {got.get(key)} != YAML {value}.")
        elif got.get(key) != value:
            problems.append(f"{stem}: expected {key} {got.get(key)!r} != YAML {value!r}.")
    return problems


def build(stems: list[str] | None = None, root: Path | None = None) -> int:
    """Render the named stems (all when ``None``) and return the number of problems found.

    Args:
        stems: the stems to build; all of ``src/*.yaml`` when ``None``.
        root: the corpus folder (``src/`` and ``expected/`` inside it, PDFs written into it);
            this script's own folder, the sample corpus, by default.
    """
    global HERE
    if root is not None:
        HERE = Path(root).resolve()
    src_dir = HERE / "src"
    paths = sorted(src_dir.glob("*.yaml"))
    if stems:
        wanted = set(stems)
        missing = wanted - {p.stem for p in paths}
        if missing:
            print(
                f"no such sample source: {sorted(missing)} (looked in {src_dir})", file=sys.stderr
            )
            return len(missing)
        paths = [p for p in paths if p.stem in wanted]
    problems = 0
    for path in paths:
        try:
            spec = load_spec(path)
            data, pages = render(spec, path.stem)
        except SampleError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            problems += 1
            continue
        out = HERE / f"{path.stem}.pdf"
        if not out.exists() or out.read_bytes() != data:
            out.write_bytes(data)
        note = (
            "" if MIN_PAGES <= pages <= MAX_PAGES else f"  WARNING outside {MIN_PAGES}-{MAX_PAGES}"
        )
        print(f"{out.name}: {pages} pages{note}")
        for msg in check_expected(spec, path.stem):
            print(f"WARNING {msg}", file=sys.stderr)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``build.py [STEM ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stems", nargs="*", help="stems to build (default: all src/*.yaml)")
    parser.add_argument("--root", type=Path, default=None,
                        help="corpus folder holding src/ and expected/ (default: corpus/sample)")
    args = parser.parse_args(argv)
    return 1 if build(args.stems or None, args.root) else 0


if __name__ == "__main__":
    sys.exit(main())
