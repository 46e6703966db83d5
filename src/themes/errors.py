"""Numbered catalogue of the messages users see, each one sentence that says what to do.

In the manner of spaCy's ``errors.py``: a message is a class attribute named by its stable code,
and reading it through the class gives the message with its code in front, ready to ``format``::

    >>> Errors.E105.format(name="review.pdf")
    '[E105] review.pdf is encrypted; needs a password.'

A code never changes meaning once released: a retired message keeps its number, and a new message
takes the next free one. Numbers are reserved by stage:

====== =============================================
E0xx   general and command line
E1xx   ingest: reading PDFs, metadata, the reader pool
E2xx   segment
E3xx   codebook
E4xx   model, registry and classify
E5xx   labels
E6xx   aggregate and report
E7xx   flows
====== =============================================

Each message is one sentence (a per-file error is a product promise: one line in
``documents.csv``) ending in a full stop; placeholders name what they hold (``{name}`` is always a
file name).
"""

from __future__ import annotations

import re
from typing import Any

#: What a code looks like, and a code at the start of a message: "[E105] ...".
_NAME_RE = re.compile(r"[EW]\d{3}")
_CODE_RE = re.compile(r"^\[(?P<code>[EW]\d{3})\] ")


class _WithCodes(type):
    """Metaclass: reading ``Errors.E105`` gives ``"[E105] " + message``."""

    def __getattribute__(cls, name: str) -> Any:
        value = super().__getattribute__(name)
        if _NAME_RE.fullmatch(name):
            return f"[{name}] {value}"
        return value


# fmt: off
class Errors(metaclass=_WithCodes):
    """Every user-facing error and warning, by code; see the module docstring for the ranges."""

    # --- E1xx: ingest ---------------------------------------------------------------------------
    # A file that cannot be read at all.
    E101 = "{name} could not be read ({exc_type}: {detail})."
    E102 = "{name} is empty (0 bytes), not a PDF."
    E103 = "{name} is not a PDF ({reason})."
    E104 = "{name} is not a readable PDF (it has no /Root object)."
    E105 = "{name} is encrypted; needs a password."
    E106 = "{name} could not be read as a PDF ({exc_type}: {detail})."
    E107 = ("{name} is too large to be a review ({size_mb:.0f} MB, over the {limit_mb:g} MB limit); "
            "raise ingest.max_file_mb to read it.")
    E108 = ("{name} needed more than {limit_mb} MiB of memory to read (a decompression bomb or an "
            "oversized image); raise ingest.max_memory_mb to read it.")
    E109 = "{name} opens with 0 pages."
    E110 = "{name} could not be read: every page failed ({exc_type}: {detail})."
    # Scans: no text layer, and OCR.
    E111 = ("{name} has no text layer ({pages} pages); OCR needed (themes run --ocr, with ocrmypdf "
            "and tesseract installed).")
    E112 = ("{name} has no usable text layer ({pages} pages; its {chars} characters are unmapped "
            "glyphs or page furniture); OCR needed (themes run --ocr, with ocrmypdf and tesseract "
            "installed).")
    E113 = ("{name} has no text layer ({pages} pages) and cannot be OCRed: ocrmypdf is not on PATH "
            "(pip install 'themes[ocr]' and install tesseract).")
    E114 = ("{name} has no text layer ({pages} pages) and OCR took longer than {limit_s:g} s; raise "
            "ingest.ocr_timeout_s to wait longer.")
    E115 = ("{name} has no text layer ({pages} pages) and OCR failed (ocrmypdf exit code {code}: "
            "{detail}).")
    E116 = "{name} has no text layer ({pages} pages) and OCR found no text in it."
    # The reader processes.
    E117 = "{name} could not be sent to a reader process (it exited at start)."
    E118 = "{name} crashed the reader process twice (exit code {code})."
    E119 = ("{name} took longer than {limit_s:g} s to read and was stopped; raise ingest.timeout_s "
            "to wait longer.")
    # Warnings: the file is read, but not all of it or not as the manifest says.
    E120 = "{name} page {page} could not be read ({exc_type}: {detail}); the other pages are kept."
    E121 = ("{name} has {pages} pages; only the first {limit} are read (raise ingest.max_pages to "
            "read more).")
    E122 = "The manifest beside {name} could not be read ({detail}); fix or remove {manifest}."
    E123 = "The manifest year {value!r} for {name} is not a year; ignored, fix it in {manifest}."
    E124 = ("The manifest review_type {value!r} for {name} is not one of {allowed}; ignored, fix it "
            "in {manifest}.")
    E125 = "The reader's memory limit could not be set to {limit_mb} MiB; files are read without it."
# fmt: on


def code_of(message: str | None) -> str | None:
    """The code a message starts with ("E105"), or None when it carries none."""
    m = _CODE_RE.match(message or "")
    return m.group("code") if m else None


def one_sentence(text: object, limit: int = 200) -> str:
    """Collapse whitespace and cut a library's message so it fits inside one of ours.

    Trailing full stops go, so that "(KeyError: 'Font')." does not end in two.
    """
    text = " ".join(str(text).split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"
