"""The label store: researchers' accept/reject decisions, append-only, and their exchange formats.

Every decision a researcher makes about a passage and a theme is one JSON line in
``corpus/labels/decisions/decisions-<annotator>.jsonl``. Lines are only ever appended, never
rewritten; the *current* label of a passage for a theme is the latest decision (per annotator, or
across annotators for training). Each decision carries the passage's text and provenance (document,
page, character offsets), so a model can be retrained from the store alone and every label traced
back to the page it came from.

Writes are atomic in the sense that matters here: a batch is written with one ``O_APPEND`` write
under an exclusive lock and fsynced. A process killed in the middle can leave at most one torn
last line; readers skip a line that is not valid JSON (with a warning), and the next writer starts
on a fresh line, so every earlier decision stays intact and the file stays readable.

The exchange formats of annotation tools live in :mod:`themes.exchange`; agreement between
annotators in :mod:`themes.agreement`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from themes.config import LABELS_DIR
from themes.errors import Errors, LabelError

DECISIONS_DIR = LABELS_DIR / "decisions"
VALUES: tuple[str, ...] = ("accept", "reject")


@dataclass(frozen=True)
class Decision:
    """One researcher's accept/reject of one theme for one passage.

    Args:
        passage_id: the passage's id in the run it was shown from (``passages.parquet``).
        doc_id: the document's id (sha256 of the PDF), used to keep documents whole in splits.
        page: 1-based page of the passage, when known.
        char_start, char_end: offsets of the passage in the document's text, when known.
        text: the passage text (kept so the model can be retrained from the store alone).
        theme: theme id from the codebook.
        value: "accept" (the passage shows the theme) or "reject" (it does not).
        annotator: who decided.
        time: ISO 8601 UTC time of the decision.
        model_version: version of the model whose score was shown, if any.
        score: the score that was shown, if any.
        source: where the decision was made ("notebook", "import:prodigy", ...).
        decision_id: stable id (a hash of passage, theme, value, annotator and time when not given).
        note: free text from the annotator.
    """

    passage_id: str
    doc_id: str
    page: int | None
    char_start: int | None
    char_end: int | None
    text: str
    theme: str
    value: str
    annotator: str
    time: str
    model_version: str | None = None
    score: float | None = None
    source: str = "notebook"
    decision_id: str = ""
    note: str | None = None

    def __post_init__(self) -> None:
        if not self.decision_id:
            key = json.dumps([self.passage_id, self.theme, self.value, self.annotator, self.time])
            object.__setattr__(self, "decision_id", hashlib.sha1(key.encode("utf-8")).hexdigest()[:16])

    def check(self, known_themes: Sequence[str] | None = None) -> Decision:
        """Return ``self`` when it is a usable decision; raise ``LabelError`` (a ``ValueError``) saying what is wrong."""
        where = f"Decision {self.decision_id} (passage {self.passage_id!r})"
        if self.value not in VALUES:
            raise LabelError(Errors.E501.format(where=where, value=self.value))
        if known_themes is not None and self.theme not in known_themes:
            raise LabelError(Errors.E502.format(where=where, theme=self.theme))
        for name in ("passage_id", "doc_id", "text", "annotator", "time", "theme"):
            if not str(getattr(self, name) or "").strip():
                raise LabelError(Errors.E503.format(where=where, field=name))
        return self


DECISION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Decision))
_REQUIRED = ("passage_id", "doc_id", "text", "theme", "value", "annotator", "time")


def now() -> str:
    """The current UTC time as ISO 8601 with microseconds (decisions in one second stay ordered)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def make_decision(
    passage: dict | pd.Series, theme: str, value: str, annotator: str, *,
    model_version: str | None = None, score: float | None = None, source: str = "notebook",
    note: str | None = None, time: str | None = None, known_themes: Sequence[str] | None = None,
) -> Decision:
    """A checked decision about a passage row (``passage_id``, ``doc_id``, ``page``, offsets, ``text``)."""
    get = passage.get

    def as_int(v: Any) -> int | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else int(v)

    return Decision(
        passage_id=str(get("passage_id")), doc_id=str(get("doc_id")), page=as_int(get("page")),
        char_start=as_int(get("char_start")), char_end=as_int(get("char_end")), text=str(get("text")),
        theme=theme, value=value, annotator=annotator, time=time or now(), model_version=model_version,
        score=None if score is None else float(score), source=source, note=note,
    ).check(known_themes)


# -- the store ---------------------------------------------------------------------------------

def store_file(annotator: str, store: Path = DECISIONS_DIR) -> Path:
    """The JSON Lines file that holds one annotator's decisions."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", annotator.strip()).strip("-.") or "anonymous"
    return Path(store) / f"decisions-{slug}.jsonl"


def _append_bytes(path: Path, payload: bytes) -> None:
    """Append ``payload`` in one locked, fsynced write, starting a new line after a torn tail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two notebooks of one annotator must not interleave lines
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            payload = b"\n" + payload  # isolate the torn line a killed writer left behind
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the new file's name durable too
        finally:
            os.close(dir_fd)


def append_decisions(decisions: Iterable[Decision], store: Path = DECISIONS_DIR) -> int:
    """Append decisions to their annotators' files; returns how many were written."""
    by_file: dict[Path, list[Decision]] = {}
    for d in decisions:
        by_file.setdefault(store_file(d.check().annotator, store), []).append(d)
    for path, batch in by_file.items():
        payload = "".join(json.dumps(asdict(d), ensure_ascii=False) + "\n" for d in batch)
        _append_bytes(path, payload.encode("utf-8"))
    return sum(len(b) for b in by_file.values())


def append_decision(decision: Decision, store: Path = DECISIONS_DIR) -> Decision:
    """Append one decision and return it."""
    append_decisions([decision], store)
    return decision


@dataclass
class StoreReadReport:
    """What reading the store found: decisions read and torn lines skipped, per file."""

    n_decisions: int
    skipped: list[tuple[str, int]]  # (file name, line number) of lines that were not valid JSON


def read_store(store: Path = DECISIONS_DIR) -> tuple[list[Decision], StoreReadReport]:
    """Every decision in the store, in file order, and a report of torn lines skipped."""
    decisions: list[Decision] = []
    skipped: list[tuple[str, int]] = []
    for file in sorted(Path(store).glob("decisions-*.jsonl")):
        data = file.read_bytes()
        lines = data.split(b"\n")
        for n, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                skipped.append((file.name, n))  # a write cut short by a crash or kill
                continue
            missing = [f for f in _REQUIRED if f not in record]
            if missing:
                raise LabelError(Errors.E504.format(name=file.name, line=n, missing=missing))
            decisions.append(Decision(**{k: record.get(k) for k in DECISION_FIELDS if k in record}))
    if skipped:
        warnings.warn(Errors.E505.format(count=len(skipped), lines=skipped[:5]), stacklevel=2)
    return decisions, StoreReadReport(len(decisions), skipped)


def to_frame(decisions: Sequence[Decision]) -> pd.DataFrame:
    """Decisions as a frame, one row each, with ``seq`` (order read) to break time ties."""
    frame = pd.DataFrame([asdict(d) for d in decisions], columns=list(DECISION_FIELDS))
    frame["seq"] = range(len(frame))
    return frame


def load_decisions(store: Path = DECISIONS_DIR) -> pd.DataFrame:
    """Every decision in the store as a frame (empty, with the columns, when there are none)."""
    decisions, _ = read_store(store)
    return to_frame(decisions)


def current_labels(decisions: pd.DataFrame, per_annotator: bool = True) -> pd.DataFrame:
    """The latest decision per (passage, theme, annotator), or per (passage, theme) across annotators.

    Both annotators' decisions are kept in the store; across annotators the latest one wins.
    """
    if decisions.empty:
        return decisions.copy()
    keys = ["passage_id", "theme", "annotator"] if per_annotator else ["passage_id", "theme"]
    ordered = decisions.sort_values(["time", "seq"] if "seq" in decisions else ["time"], kind="stable")
    return ordered.groupby(keys, sort=True).tail(1).sort_values(keys).reset_index(drop=True)


def decisions_hash(decisions: pd.DataFrame | Sequence[Decision]) -> str:
    """sha256 over the decisions (every field), independent of file and line order."""
    frame = decisions if isinstance(decisions, pd.DataFrame) else to_frame(decisions)
    h = hashlib.sha256()
    if not frame.empty:
        rows = frame[list(DECISION_FIELDS)].astype(object).where(frame[list(DECISION_FIELDS)].notna(), None)
        for record in sorted(json.dumps(list(r), default=str) for r in rows.itertuples(index=False)):
            h.update(record.encode("utf-8"))
    return h.hexdigest()


def add_new(decisions: Iterable[Decision], store: Path = DECISIONS_DIR) -> int:
    """Append only decisions whose ``decision_id`` is not in the store yet (imports are idempotent)."""
    known = set(load_decisions(store)["decision_id"])
    fresh, seen = [], set()
    for d in decisions:
        if d.decision_id not in known and d.decision_id not in seen:
            fresh.append(d)
            seen.add(d.decision_id)
    return append_decisions(fresh, store)


def decision_counts(decisions: pd.DataFrame) -> pd.DataFrame:
    """Current decisions per theme and annotator: accepts, rejects, passages."""
    current = current_labels(decisions)
    if current.empty:
        return pd.DataFrame(columns=["theme", "annotator", "accept", "reject", "passages"])
    table = current.pivot_table(index=["theme", "annotator"], columns="value", values="passage_id",
                                aggfunc="count", fill_value=0)
    for value in VALUES:
        if value not in table:
            table[value] = 0
    table["passages"] = table["accept"] + table["reject"]
    return table[["accept", "reject", "passages"]].reset_index().rename_axis(None, axis=1)
