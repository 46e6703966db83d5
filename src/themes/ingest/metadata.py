"""A review's title, area, year and type: from its file name, its cover and first pages, or a
manifest.

The file name is read first (our ``<year>_<area>_<type>_<child>.pdf`` and Ofsted's
``<yyyy-mm-dd>_<area>_<number>.pdf``); the cover text then names the area (and the year and type
when the name did not); a ``manifest.csv`` beside the files overrides both, cell by cell.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from themes.errors import Errors
from themes.ingest.layout import _Line
from themes.types import REVIEW_TYPES, Document

log = logging.getLogger(__name__)

_SMALL_WORDS = {"and", "of", "upon", "on", "the", "in", "under", "by", "le"}
_TYPE_SLUGS = {
    "lcspr": "LCSPR",
    "scr": "SCR",
    "rapid-review": "rapid review",
    "rapidreview": "rapid review",
    "rr": "rapid review",
    "annual-report": "annual report",
    "annualreport": "annual report",
    "national-review": "national review",
    "panel": "national review",
    "other": "other",
}
_SAMPLE_NAME_RE = re.compile(
    r"^(?P<year>(?:19|20)\d{2})_(?P<area>[a-z0-9-]+)_(?P<type>[a-z0-9-]+)(?:_(?P<child>[a-z0-9-]+))?$",
    re.IGNORECASE,
)
_OFSTED_NAME_RE = re.compile(
    r"^(?P<year>(?:19|20)\d{2})-\d{2}-\d{2}_(?P<area>[a-z0-9-]+)_(?P<number>\d+)$", re.IGNORECASE
)


def area_from_slug(slug: str) -> str:
    """Title-case an area slug: hyphens to spaces, "and"/"of"/"upon" kept lower case."""
    words = [w for w in slug.replace("_", "-").split("-") if w]
    out = []
    for i, w in enumerate(words):
        out.append(w.lower() if (i > 0 and w.lower() in _SMALL_WORDS) else w.capitalize())
    return " ".join(out)


def metadata_from_filename(name: str) -> dict[str, Any]:
    """Year, area and review type from our file-name conventions; empty when none matches.

    ``<year>_<area-slug>_<type-slug>_<child>.pdf`` (``2021_northmere_lcspr_child-a.pdf``) and
    Ofsted's ``<yyyy-mm-dd>_<area-slug>_<number>.pdf`` (``2016-05-16_bury_80443.pdf``).
    """
    stem = Path(name).stem
    m = _OFSTED_NAME_RE.match(stem)
    if m:
        return {"year": int(m.group("year")), "area": area_from_slug(m.group("area"))}
    m = _SAMPLE_NAME_RE.match(stem)
    if m:
        out: dict[str, Any] = {
            "year": int(m.group("year")),
            "area": area_from_slug(m.group("area")),
        }
        rtype = _TYPE_SLUGS.get(m.group("type").lower())
        if rtype:
            out["review_type"] = rtype
        return out
    m = re.search(r"(?<!\d)((?:19|20)\d{2})(?!\d)", stem)
    return {"year": int(m.group(1))} if m else {}


_AREA_WORD = r"[A-Z][\w'’.&-]*"
_AREA = rf"(?P<area>{_AREA_WORD}(?:[ \t]+(?:(?:and|of|upon|on|with|&)[ \t]+)?{_AREA_WORD})*)"
_AREA_CUES = [
    re.compile(
        rf"{_AREA}\s+(?:Local\s+)?Safeguarding\s+Children(?:['’]s)?\s+(?:Partnership|Board)"
    ),
    re.compile(rf"{_AREA}\s+Safeguarding\s+(?:Children\s+)?Partnership"),
    re.compile(rf"{_AREA}\s+(?:Local\s+)?Safeguarding\s+(?:Children\s+)?Board"),
]
_INSPECTION_RE = re.compile(
    r"Inspection\s+of\s+(?:the\s+)?(?P<area>.{2,60}?)\s+local\s+authority\s+children['’]s\s+services",
    re.IGNORECASE | re.DOTALL,
)
#: An inspection's headline judgement: "Children's services in Cheshire East require improvement".
_SERVICES_IN_RE = re.compile(
    rf"Children['’]s\s+services\s+in\s+{_AREA}\s+(?:are|is|require|requires|remain|remains|have|has)\b"
)
_LEADING_NOISE = {
    "the", "a", "an", "review", "report", "annual", "published", "by", "for", "of", "on",
    "commissioned", "inspection", "serious", "case", "local", "child", "children", "practice",
    "rapid", "learning", "this", "executive", "summary", "overview", "final", "and", "from",
    "safeguarding", "partnership", "board", "in", "to", "with", "version", "draft",
}  # fmt: skip
_AREA_PREFIXES = re.compile(
    r"^(?:the\s+)?(?:royal\s+borough\s+of|london\s+borough\s+of|metropolitan\s+borough\s+of"
    r"|borough\s+of|county\s+of|council\s+of\s+the|city\s+of(?!\s+london$))\s+",
    re.IGNORECASE,
)
#: On a cover, the line just above "Inspection of services for children ..." names the area.
_ABOVE_INSPECTION_CUE = re.compile(
    rf"^[ \t]*{_AREA}[ \t]*\n[ \t]*(?:Re-?inspection|Inspection)\s+of\s+(?:services\s+for\s+children"
    r"|children['’]s\s+(?:social\s+care\s+)?services)",
    re.MULTILINE,
)
#: A cover line that is only a borough's name: "Royal Borough of Kensington and Chelsea".
_BOROUGH_CUE = re.compile(
    rf"^[ \t]*(?:The\s+)?(?:Royal|London|Metropolitan)\s+Borough\s+of\s+{_AREA}[ \t]*$",
    re.MULTILINE,
)
#: Last resort on a cover: "Gateshead Borough Council", "Telford and Wrekin Council".
_COUNCIL_CUE = re.compile(
    rf"^[ \t]*{_AREA}\s+(?:(?:Metropolitan\s+)?Borough\s+|County\s+|City\s+)?Council\b(?!\s+of)",
    re.MULTILINE,
)
_AREA_SUFFIXES = re.compile(
    r"\s+(?:unitary\s+authority|city\s+council|county\s+council|borough\s+council|metropolitan\s+borough\s+council"
    r"|metropolitan\s+borough|metropolitan\s+district|district\s+metropolitan|metropolitan"
    r"|district|council|city|county|borough)$",
    re.IGNORECASE,
)

#: Review-type cues, strongest first; used on the cover page, then on pages 1–3.
_TYPE_CUES: list[tuple[str, re.Pattern[str]]] = [
    ("annual report", re.compile(r"\bannual\s+report\b", re.IGNORECASE)),
    ("rapid review", re.compile(r"\brapid\s+review\b", re.IGNORECASE)),
    ("LCSPR", re.compile(r"\blocal\s+child\s+safeguarding\s+practice\s+review\b|\bLCSPR\b", re.IGNORECASE)),
    ("SCR", re.compile(r"\bserious\s+case\s+review\b|\bSCR\b", re.IGNORECASE)),
    ("other", re.compile(r"\binspection\s+of\b.{0,80}?\bchildren['’]s\s+(?:social\s+care\s+)?services\b"
                         r"|\binspection\s+of\s+services\s+for\s+children\b",
                         re.IGNORECASE | re.DOTALL)),
    ("national review", re.compile(
        r"\bchild\s+safeguarding\s+practice\s+review\s+panel\b|\bnational\s+review\b", re.IGNORECASE)),
]  # fmt: skip
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
#: "Report published: 13 February 2017", "Date of publication: March 2021": the year a review is
#: filed under, which can differ from the year its events or inspection took place.
_PUBLISHED_RE = re.compile(
    rf"\b(?:published(?:\s+on)?|publication\s+date|date\s+of\s+publication)\s*:?\s*"
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+)?(?:(?:{_MONTHS})\s+)?((?:19|20)\d{{2}})\b",
    re.IGNORECASE,
)
_MONTH_YEAR_RE = re.compile(rf"\b(?:{_MONTHS})\s+((?:19|20)\d{{2}})\b", re.IGNORECASE)
_YEAR_RE = re.compile(r"(?<![\d.,/])((?:19[89]|20[0-4])\d)(?![\d.,/])")


#: Words a cover line can hold on its own that name no place ("Doncaster Metropolitan / Borough").
_NOT_AN_AREA = frozenset({"borough", "council", "county", "city", "district", "metropolitan"})


def _tidy_area(raw: str) -> str | None:
    words = raw.split()
    while words and words[0].lower().strip(",.") in _LEADING_NOISE:
        words.pop(0)
    # A single capital letter left at the front is a child's pseudonym ("Child A Northmere").
    while len(words) > 1 and len(words[0]) == 1:
        words.pop(0)
    while words and (words[-1].lower() in _SMALL_WORDS or words[-1].lower() == "local"):
        words.pop()
    area = _AREA_PREFIXES.sub("", " ".join(words))
    while (shorter := _AREA_SUFFIXES.sub("", area)) != area:  # "X Metropolitan District Council"
        area = shorter
    area = area.strip(" ,.-")
    if not area or len(area) > 60 or not area[0].isupper() or area.lower() in _NOT_AN_AREA:
        return None
    return area


def area_from_text(text: str, cover: bool = True) -> str | None:
    """The partnership's area named in cover text, or None.

    Args:
        text: the text to search.
        cover: whether ``text`` is a cover page, where a line naming a council ("Gateshead
            Borough Council") also names the area; elsewhere that is too often another body
            ("Children in Care Council").
    """
    for strong in (_INSPECTION_RE, _SERVICES_IN_RE):
        m = strong.search(text)
        area = _tidy_area(" ".join(m.group("area").split())) if m else None
        if area:
            return area
    best: tuple[int, str] | None = None
    for cue in _AREA_CUES:
        for m in cue.finditer(text):
            area = _tidy_area(m.group("area"))
            if area and (best is None or m.start() < best[0]):
                best = (m.start(), area)
                break
    if best is not None:
        return best[1]
    if not cover:
        return None
    for cue in (_ABOVE_INSPECTION_CUE, _BOROUGH_CUE, _COUNCIL_CUE):
        m = cue.search(text)
        area = _tidy_area(m.group("area")) if m else None
        if area:
            return area
    return None


def review_type_from_text(cover: str, first_pages: str) -> str | None:
    """Review type from the cover page's cues (by strength), else the earliest cue on pages 1–3."""
    for rtype, cue in _TYPE_CUES:
        if cue.search(cover):
            return rtype
    earliest: tuple[int, str] | None = None
    for rtype, cue in _TYPE_CUES:
        m = cue.search(first_pages)
        if m and (earliest is None or m.start() < earliest[0]):
            earliest = (m.start(), rtype)
    return earliest[1] if earliest else None


def year_from_text(cover: str, first_pages: str) -> int | None:
    """Year of the review: its publication date, else a "Month YYYY" on the cover, else any year
    on the cover or pages 1–3."""
    for pattern in (_PUBLISHED_RE, _MONTH_YEAR_RE, _YEAR_RE):
        for text in (cover, first_pages):
            m = pattern.search(text)
            if m:
                return int(m.group(1))
    return None


def _pdf_title(metadata: Mapping[str, Any]) -> str | None:
    title = metadata.get("Title")
    if not isinstance(title, str):
        return None
    title = " ".join(title.split())
    low = title.lower()
    junk = (
        not title
        or low.startswith(("microsoft word", "untitled", "document", "slide"))
        or low.endswith((".doc", ".docx", ".pdf", ".indd", ".rtf"))
        or len(title) < 4
    )
    return None if junk else title


def _cover_title(lines: list[_Line], body_size: float) -> str | None:
    """The largest-font text on page 1 (consecutive lines of that size), when it is larger than
    the body text."""
    sized = [ln for ln in lines if ln.kind == "body" and ln.size > 0 and len(ln.text) >= 2]
    if not sized:
        return None
    top = max(ln.size for ln in sized)
    if body_size and top < 1.1 * body_size:
        return None
    picked: list[str] = []
    started = False
    for ln in lines:
        if ln.kind == "body" and ln.size >= top - 0.5:
            picked.append(ln.text)
            started = True
        elif started:
            break
    title = " ".join(" ".join(picked).split())
    if len(title) < 3:
        return None
    return title if len(title) <= 200 else title[:199] + "…"


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------

MANIFEST_NAME = "manifest.csv"
_MANIFEST_FIELDS = ("title", "area", "year", "review_type")


def load_manifest(folder: Path) -> dict[str, dict[str, str]]:
    """Rows of ``manifest.csv`` in ``folder`` keyed by file name; empty when there is none.

    Columns: file, title, area, year, review_type. Blank cells are left out, so they never
    override what was read from the file.
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return {}
    rows: dict[str, dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            name = (row.get("file") or "").strip()
            if not name:
                continue
            rows[Path(name).name] = {
                k: v.strip() for k in _MANIFEST_FIELDS if (v := row.get(k)) and v.strip()
            }
    return rows


def apply_manifest(doc: Document, row: Mapping[str, str]) -> Document:
    """Override a document's metadata with a manifest row's non-blank cells; returns ``doc``."""
    if row.get("title"):
        doc.title = row["title"].strip()
    if row.get("area"):
        doc.area = row["area"].strip()
    year = (row.get("year") or "").strip()
    if year:
        try:
            doc.year = int(float(year))
        except ValueError:
            log.warning(Errors.E123.format(value=year, name=doc.file, manifest=MANIFEST_NAME))
    rtype = (row.get("review_type") or "").strip()
    if rtype:
        match = next((t for t in REVIEW_TYPES if t.lower() == rtype.lower()), None)
        if match is None:
            log.warning(Errors.E124.format(value=rtype, name=doc.file, manifest=MANIFEST_NAME,
                                           allowed=", ".join(REVIEW_TYPES)))  # fmt: skip
        else:
            doc.review_type = match  # type: ignore[assignment]
    return doc


def _fill_metadata(
    doc: Document, page_lines: list[list[_Line]], metadata: Mapping[str, Any], body_size: float
) -> None:
    """Title, area, year and review type from the cover, the first pages and the file name."""
    # Paragraphs, not lines: a cover heading wrapped over two lines ("Royal Borough of Kensington
    # and / Chelsea") is one name.
    prose = [p for p in doc.paragraphs if p.kind != "table"]
    cover = "\n".join(p.text for p in prose if p.page == 1)
    first = "\n".join(p.text for p in prose if p.page <= 3)
    doc.title = (_cover_title(page_lines[0], body_size) if page_lines else None) or _pdf_title(
        metadata
    )
    area = area_from_text(cover) or area_from_text(first, cover=False)
    if area:
        doc.area = area
    if doc.year is None:
        doc.year = year_from_text(cover, first)
    if doc.review_type is None:
        rtype = review_type_from_text(cover, first)
        if rtype is not None:
            doc.review_type = rtype  # type: ignore[assignment]
