"""Read review PDFs into Documents of clean paragraphs that keep their page, box and offsets.

The stage never raises for a bad input: a file that cannot be read comes back as a Document with
``status="error"``, an ``error_kind`` from :data:`themes.types.ERROR_KINDS` and a one-sentence
``error`` naming the file, with its code from :class:`themes.errors.Errors` in front. A page that
fails is listed in ``Document.bad_pages`` and the rest kept.

Cleaning, in the order it happens on each page:

1. duplicated "fake bold" characters are removed (``dedupe_chars``), ``(cid:N)`` glyphs dropped,
   bullet glyphs normalised to "•" (:mod:`.pages`);
2. ruled tables (``find_tables``) become one ``table`` paragraph each and leave the prose
   (:mod:`.pages`);
3. running headers and footers (margin-band lines repeating across pages, digits normalised) and
   bare page numbers are removed (:mod:`.layout`);
4. small-font notes at the page foot that start with a number become ``footnote`` paragraphs
   (:mod:`.layout`);
5. a two-column page (a vertical gutter no words cross) is read left column, then right
   (:mod:`.layout`);
6. lines are joined into paragraphs at vertical gaps, numbered paragraphs ("4.12", "1."), bullets
   and font changes; words split by a line-end hyphen are re-joined (:mod:`.paragraphs`).

Title, area, year and review type come from the file name, the cover and a manifest
(:mod:`.metadata`). :func:`ingest_pdf` (:mod:`.document`) reads one file in this process;
:func:`ingest_with_timeout` and :func:`ingest_many` (:mod:`.pool`) run it in child processes so that
a file that hangs or crashes the PDF library is killed and reported, not waited on.
"""

from themes.ingest.document import doc_id_of, ingest_pdf
from themes.ingest.metadata import (
    MANIFEST_NAME,
    apply_manifest,
    area_from_slug,
    area_from_text,
    load_manifest,
    metadata_from_filename,
    review_type_from_text,
    year_from_text,
)
from themes.ingest.pages import clean_text
from themes.ingest.paragraphs import KEEP_HYPHEN_PREFIXES, join_lines
from themes.ingest.pool import IngestFunc, ingest_many, ingest_with_timeout

__all__ = [
    "KEEP_HYPHEN_PREFIXES",
    "MANIFEST_NAME",
    "IngestFunc",
    "apply_manifest",
    "area_from_slug",
    "area_from_text",
    "clean_text",
    "doc_id_of",
    "ingest_many",
    "ingest_pdf",
    "ingest_with_timeout",
    "join_lines",
    "load_manifest",
    "metadata_from_filename",
    "review_type_from_text",
    "year_from_text",
]
