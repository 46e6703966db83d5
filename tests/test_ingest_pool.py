"""Tests for themes.ingest.pool: files read in reader processes that are killed when they hang,
replaced when they die, and never stall or crash the run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from test_ingest import DATA, _assert_one_sentence_error

from themes.config import INGEST, shared_dir
from themes.ingest import doc_id_of, ingest_many, ingest_pdf, ingest_with_timeout
from themes.types import ERROR_KINDS, Document


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
