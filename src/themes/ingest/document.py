"""The stage: read one PDF file into a Document, or a one-sentence error saying why not.

The file is checked before the PDF library sees it (present, not empty, a PDF at all, not too
large), then its pages are read (:mod:`.pages`), laid out (:mod:`.layout`), joined into
paragraphs (:mod:`.paragraphs`) and its metadata found (:mod:`.metadata`). A scan with no text
layer is OCRed first when asked. Every error message comes from :class:`themes.errors.Errors`.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path

from themes.config import INGEST, IngestSettings
from themes.errors import Errors, one_sentence
from themes.ingest.layout import _body_size, _layout
from themes.ingest.metadata import (
    MANIFEST_NAME,
    _fill_metadata,
    apply_manifest,
    load_manifest,
    metadata_from_filename,
)
from themes.ingest.pages import _PageData, _read_page
from themes.ingest.paragraphs import _fill_paragraphs
from themes.types import Document

log = logging.getLogger(__name__)

#: Bytes read at the start of a file to decide whether it is a PDF at all.
_SNIFF_BYTES = 1024


def doc_id_of(path: Path | str) -> str:
    """The sha256 hex digest of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _error(doc: Document, kind: str, message: str) -> Document:
    """Make ``doc`` an error Document of ``kind`` with ``message`` (from :class:`Errors`)."""
    doc.status = "error"
    doc.error_kind = kind  # type: ignore[assignment]
    doc.error = message
    doc.paragraphs = []
    return doc


def _not_pdf_reason(head: bytes) -> str | None:
    """Why the first bytes of a file show it is not a PDF, or None when they look like one."""
    if b"%PDF" in head:
        return None
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "it is an HTML or XML page"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive"
    return "it does not start with %PDF"


def _classify_open_error(name: str, exc: BaseException) -> tuple[str, str]:
    """Error kind and message for an exception raised while opening a PDF."""
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError

    inner = exc
    if (
        type(exc).__name__ == "PdfminerException"
        and exc.args
        and isinstance(exc.args[0], BaseException)
    ):
        inner = exc.args[0]
    if (
        isinstance(inner, (PDFEncryptionError, PDFPasswordIncorrect))
        or "password" in type(inner).__name__.lower()
    ):
        return "encrypted", Errors.E105.format(name=name)
    if isinstance(inner, PDFSyntaxError) and "/Root" in str(inner):
        return "not_pdf", Errors.E104.format(name=name)
    return "corrupt", Errors.E106.format(name=name, **_what_failed(inner))


def _what_failed(exc: BaseException) -> dict[str, str]:
    """An exception's type and message, cut to fit in one sentence: ``exc_type`` and ``detail``."""
    return {"exc_type": type(exc).__name__, "detail": one_sentence(exc) or "no message"}


def ingest_pdf(
    path: Path | str,
    settings: IngestSettings = INGEST,
    overrides: Mapping[str, str] | None = None,
) -> Document:
    """Read one PDF into a Document of clean paragraphs with provenance; never raises.

    Args:
        path: the PDF file.
        settings: ingestion knobs (margin band, repeat share, page and size limits).
        overrides: a manifest row (title, area, year, review_type) whose non-blank cells replace
            what was read; by default the row for this file in a ``manifest.csv`` beside it.
    """
    path = Path(path)
    doc = Document(doc_id="", file=path.name)
    try:
        doc.doc_id = doc_id_of(path)
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        return _error(
            doc,
            "corrupt",
            Errors.E101.format(
                name=path.name,
                exc_type=type(exc).__name__,
                detail=one_sentence(exc.strerror or exc),
            ),
        )
    for key, value in metadata_from_filename(path.name).items():
        setattr(doc, key, value)
    if overrides is None:
        try:
            overrides = load_manifest(path.parent).get(path.name)
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            log.warning(
                Errors.E122.format(
                    name=path.name, detail=one_sentence(exc), manifest=path.parent / MANIFEST_NAME
                )
            )
    try:
        if size == 0:
            _error(doc, "not_pdf", Errors.E102.format(name=path.name))
        elif (reason := _not_pdf_reason(head)) is not None:
            _error(doc, "not_pdf", Errors.E103.format(name=path.name, reason=reason))
        elif size > settings.max_file_mb * 1024 * 1024:
            _error(doc, "corrupt", Errors.E107.format(name=path.name, size_mb=size / 2**20,
                                                      limit_mb=settings.max_file_mb))  # fmt: skip
        else:
            _ingest_into(doc, path, settings)
            if doc.error_kind == "no_text_layer" and settings.ocr:
                _ocr_into(doc, path, settings)
    except MemoryError:
        doc.paragraphs = []  # free what was read before reporting
        _error(doc, "too_large", _too_large_message(path.name, settings))
    except Exception as exc:  # the stage must never raise for a bad input
        if _out_of_memory(exc):
            return _error(doc, "too_large", _too_large_message(path.name, settings))
        log.debug("unexpected failure on %s", path.name, exc_info=True)
        _error(doc, "corrupt", Errors.E106.format(name=path.name, **_what_failed(exc)))
    if overrides:
        apply_manifest(doc, overrides)
    return doc


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is, or wraps, a MemoryError (pdfplumber wraps pdfminer's errors)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        if isinstance(e, MemoryError):
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__, *e.args]
    return False


def _too_large_message(name: str, settings: IngestSettings) -> str:
    return Errors.E108.format(name=name, limit_mb=settings.max_memory_mb)


def _ingest_into(doc: Document, path: Path, settings: IngestSettings, name: str = "") -> None:
    """Open the PDF, read its pages, and fill ``doc`` with paragraphs and metadata.

    ``name`` is the file name used in error messages; ``path.name`` by default.
    """
    import pdfplumber

    name = name or path.name
    try:
        pdf = pdfplumber.open(path)
    except MemoryError:
        raise  # a decompression bomb: the whole file is refused, not one page
    except Exception as exc:  # pdfminer raises anything on a broken file
        if _out_of_memory(exc):
            raise MemoryError from exc
        kind, message = _classify_open_error(name, exc)
        _error(doc, kind, message)
        return
    with pdf:
        try:
            pages = pdf.pages
            n_pages = len(pages)
        except MemoryError:
            raise
        except Exception as exc:  # a broken page tree raises anything
            if _out_of_memory(exc):
                raise MemoryError from exc
            kind, message = _classify_open_error(name, exc)
            _error(doc, kind, message)
            return
        doc.pages = n_pages
        if n_pages == 0:
            _error(doc, "no_pages", Errors.E109.format(name=name))
            return
        if n_pages > settings.max_pages:
            log.warning(Errors.E121.format(name=name, pages=n_pages, limit=settings.max_pages))
        page_data: list[_PageData] = []
        first_exc: BaseException | None = None
        for index in range(min(n_pages, settings.max_pages)):
            page = None
            try:
                page = pages[index]
                page_data.append(_read_page(page, index + 1))
            except MemoryError:
                raise
            except Exception as exc:  # one bad page must not lose the rest
                if _out_of_memory(exc):
                    raise MemoryError from exc
                log.warning(Errors.E120.format(name=name, page=index + 1, **_what_failed(exc)))
                doc.bad_pages.append(index + 1)
                first_exc = first_exc or exc
            finally:
                if page is not None:
                    page.close()
        metadata = dict(pdf.metadata or {})
    if not page_data and first_exc is not None:
        kind, message = _classify_open_error(name, first_exc)
        if kind == "corrupt":
            message = Errors.E110.format(name=name, **_what_failed(first_exc))
        _error(doc, kind, message)
        return
    n_chars = sum(p.n_chars for p in page_data)
    if n_chars == 0:
        _error(doc, "no_text_layer", Errors.E111.format(name=name, pages=n_pages))
        return
    page_lines = _layout(page_data, settings)
    _fill_paragraphs(doc, page_data, page_lines)
    if not doc.paragraphs:
        _error(doc, "no_text_layer", Errors.E112.format(name=name, pages=n_pages, chars=n_chars))
        return
    _fill_metadata(doc, page_lines, metadata, _body_size(page_data))


def _ocr_into(doc: Document, path: Path, settings: IngestSettings) -> None:
    """Read a scan through OCRmyPDF: OCR a temporary copy and fill ``doc`` from it.

    ``doc`` keeps its id, file name and file-name metadata and gets ``ocr=True``; when OCR is not
    installed, fails or finds no text, ``doc`` stays a ``no_text_layer`` error saying why.
    """
    scan = {"name": path.name, "pages": doc.pages}
    # On PATH, or beside this Python: `.venv/bin/themes run --ocr` works without activating the venv.
    exe = shutil.which("ocrmypdf") or shutil.which("ocrmypdf", path=str(Path(sys.executable).parent))
    if exe is None:
        doc.error = Errors.E113.format(**scan)
        return
    command = [exe, "--force-ocr", "--output-type", "pdf", "--quiet", "-l", settings.ocr_language]
    with tempfile.TemporaryDirectory(prefix="themes-ocr-") as tmp:
        ocred = Path(tmp) / "ocr.pdf"
        try:
            done = subprocess.run([*command, str(path), str(ocred)], capture_output=True, text=True,
                                  timeout=settings.ocr_timeout_s, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            doc.error = Errors.E114.format(**scan, limit_s=settings.ocr_timeout_s)
            return
        if done.returncode != 0 or not ocred.is_file():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            doc.error = Errors.E115.format(**scan, code=done.returncode, detail=one_sentence(last))
            return
        # ``doc`` holds only what the file name said and the page count: start from that.
        fresh = replace(doc, status="ok", error_kind=None, error=None, bad_pages=[])
        _ingest_into(fresh, ocred, settings, name=path.name)
    if fresh.status != "ok":
        doc.error = Errors.E116.format(**scan)
        return
    for attr in fields(Document):
        setattr(doc, attr.name, getattr(fresh, attr.name))
    doc.ocr = True
