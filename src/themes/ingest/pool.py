"""Read files in child processes, so that a file that hangs or crashes the PDF library is killed
and reported, not waited on.

:func:`ingest_many` keeps ``workers`` reader processes busy and yields Documents as they finish;
:func:`ingest_with_timeout` is the same for one file.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from themes.config import INGEST, IngestSettings
from themes.errors import Errors
from themes.ingest.document import _error, _too_large_message, _what_failed, doc_id_of, ingest_pdf
from themes.ingest.metadata import metadata_from_filename
from themes.types import Document

log = logging.getLogger(__name__)

# Workers are fresh interpreters (``python -c ...``), like multiprocessing's "spawn", so a
# multi-threaded parent (Prefect) is never forked. Unlike multiprocessing they never re-import the
# parent's ``__main__``: that breaks under ``python -`` and costs a Prefect or CLI import per file.
# Each worker reads many files in turn; one that overruns its time limit is killed and replaced.

IngestFunc = Callable[[Path, IngestSettings], Document]

#: The worker's first message is the parent's sys.path, read before ``themes`` is imported so a
#: parent that found ``themes`` through its own path finds it in the worker too.
_WORKER_CODE = """
import os, pickle, struct, sys
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise SystemExit(0)
        data += chunk
    return data
(size,) = struct.unpack("!Q", read(8))
sys.path[:] = list(dict.fromkeys(pickle.loads(read(size)) + sys.path))
from themes.ingest.pool import _worker_main
_worker_main()
"""
#: A worker is replaced after this many files, so a slow leak in the PDF library stays bounded.
_FILES_PER_WORKER = 50
_HEADER = struct.Struct("!Q")


def _send(stream: Any, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: Any, n: int) -> bytes:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("worker closed its output")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _receive(stream: Any) -> Any:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))


def _limit_memory(max_mb: int) -> None:
    """Cap this process's address space at ``max_mb`` MiB (soft limit; 0 lifts it).

    Set per file in the reader process itself, so the pool and the single-file path both get it.
    Only the soft limit moves, so a later file with a higher setting can raise it again.
    """
    try:
        import resource
    except ImportError:  # not POSIX: no limit, as before
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = int(max_mb) * 2**20 if max_mb and max_mb > 0 else hard
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError):
        log.warning(Errors.E125.format(limit_mb=max_mb))


def _worker_main() -> None:
    """Loop in a worker process: read (path, settings, func) jobs, answer with Documents."""
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    parent = os.getppid()

    def watch_parent() -> None:
        # A worker stuck in a hung file must not outlive a parent that was killed.
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    while True:
        try:
            path, settings, func = _receive(inp)
        except EOFError:
            return
        _limit_memory(getattr(settings, "max_memory_mb", 0))
        try:
            doc = func(path, settings)
        except MemoryError:
            doc = _error(
                Document(doc_id="", file=path.name),
                "too_large",
                _too_large_message(path.name, settings),
            )
        except Exception as exc:  # noqa: BLE001 - func should not raise; report, do not die
            doc = _error(
                Document(doc_id="", file=path.name),
                "corrupt",
                Errors.E101.format(name=path.name, **_what_failed(exc)),
            )
        _send(out, doc)


class _Worker:
    """One worker process and the file it is reading, if any."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.done = 0
        self.path: Path | None = None
        self.deadline = 0.0
        _send(self.proc.stdin, list(sys.path))

    def start(self, path: Path, settings: IngestSettings, func: IngestFunc) -> None:
        self.path = path
        extra = settings.ocr_timeout_s if settings.ocr else 0.0  # a scan may need OCR first
        self.deadline = time.monotonic() + settings.timeout_s + extra
        _send(self.proc.stdin, (path, settings, func))

    def stop(self) -> None:
        """End the process: politely when idle, by kill when busy or stuck."""
        try:
            if self.path is None and self.proc.stdin:
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def _safe_doc_id(path: Path) -> str:
    try:
        return doc_id_of(path)
    except OSError:
        return ""


def _failed(path: Path, kind: str, message: str) -> Document:
    doc = Document(doc_id=_safe_doc_id(path), file=path.name)
    for key, value in metadata_from_filename(path.name).items():
        setattr(doc, key, value)
    return _error(doc, kind, message)


def _start(worker: _Worker, path: Path, settings: IngestSettings, func: IngestFunc) -> bool:
    """Hand ``path`` to ``worker``; False (and the worker stopped) if its process has gone."""
    try:
        worker.start(path, settings, func)
        return True
    except OSError:
        worker.path = None
        worker.stop()
        return False


def _started(
    idle: _Worker | None, path: Path, settings: IngestSettings, func: IngestFunc
) -> _Worker | None:
    """A worker reading ``path``: the idle one if it is still alive, else a fresh one.

    An idle worker can have died between files (the OOM killer, a user's kill); that says nothing
    about the next file, so it gets a fresh process. None if a fresh process cannot take it either.
    """
    if idle is not None and _start(idle, path, settings, func):
        return idle
    try:
        fresh = _Worker()
    except OSError:
        return None
    return fresh if _start(fresh, path, settings, func) else None


def ingest_many(
    paths: Iterable[Path | str],
    workers: int = 1,
    settings: IngestSettings = INGEST,
    func: IngestFunc = ingest_pdf,
) -> Iterator[Document]:
    """Ingest files in worker processes, ``workers`` at a time, yielding Documents as they finish.

    A file still being read after ``settings.timeout_s`` seconds has its worker killed and comes
    back as a ``timeout`` error; a file whose worker dies is tried once more on a fresh worker, and
    comes back as ``reader_crashed`` if that one dies too. Either way the other files go on. A
    worker is given its next file as soon as it hands one back, before the caller sees it.

    Args:
        paths: the PDF files.
        workers: how many files are read at once.
        settings: ingestion knobs; ``timeout_s`` is the per-file wall-clock limit.
        func: what a worker runs on each file, a picklable top-level function; ``ingest_pdf``.
    """
    pending = deque(Path(p) for p in paths)
    retried: set[Path] = set()
    idle: list[_Worker] = []
    busy: list[_Worker] = []
    n_workers = max(1, int(workers))

    def fill() -> Iterator[Document]:
        """Start pending files on free readers; a file no reader will take comes back failed."""
        while pending and len(busy) < n_workers:
            path = pending.popleft()
            started = _started(idle.pop() if idle else None, path, settings, func)
            if started is None:
                yield _failed(path, "reader_crashed", Errors.E117.format(name=path.name))
                continue
            busy.append(started)

    try:
        while pending or busy:
            yield from fill()
            if not busy:
                continue
            wait_for = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = multiprocessing.connection.wait([w.proc.stdout for w in busy], wait_for)
            for worker in list(busy):
                path = worker.path
                assert path is not None
                doc: Document | None = None
                if worker.proc.stdout in ready:
                    try:
                        doc = _receive(worker.proc.stdout)
                    except (EOFError, OSError, pickle.UnpicklingError):
                        code = worker.proc.wait()
                        worker.path = None
                        worker.stop()
                        busy.remove(worker)
                        # A reader can die for reasons outside its file (the OOM killer, a user's
                        # kill while it had just started the next file): one more try on a fresh one.
                        if path not in retried:
                            retried.add(path)
                            pending.appendleft(path)
                            yield from fill()
                            continue
                        doc = _failed(
                            path, "reader_crashed", Errors.E118.format(name=path.name, code=code)
                        )
                        yield from fill()
                        yield doc
                        continue
                elif time.monotonic() >= worker.deadline:
                    worker.stop()
                    worker.path = None
                    doc = _failed(
                        path,
                        "timeout",
                        Errors.E119.format(name=path.name, limit_s=settings.timeout_s),
                    )
                if doc is None:
                    continue
                busy.remove(worker)
                if worker.path is not None:
                    worker.path = None
                    worker.done += 1
                    # After a MemoryError the process's heap is suspect: start a fresh one.
                    if worker.done >= _FILES_PER_WORKER or doc.error_kind == "too_large":
                        worker.stop()
                    else:
                        idle.append(worker)
                # Give the freed reader its next file before the caller gets this one: what the
                # caller does with a document (segmenting, caching) must not leave a core idle.
                yield from fill()
                yield doc
    finally:
        for worker in busy + idle:
            worker.stop()


def ingest_with_timeout(
    path: Path | str, settings: IngestSettings = INGEST, func: IngestFunc = ingest_pdf
) -> Document:
    """Ingest one file in a worker process killed after ``settings.timeout_s`` seconds.

    Returns the file's Document, or a ``timeout`` error Document carrying the file's doc_id.
    """
    return next(ingest_many([path], workers=1, settings=settings, func=func))
