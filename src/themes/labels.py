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

Exchange formats (``export_decisions`` / ``import_decisions``): Prodigy textcat JSONL (binary
accept/reject and multi-choice), Label Studio JSON tasks with choices, Argilla-style records, and a
plain CSV that opens in Excel. Exporting and importing again keeps every decision, field for field.
Agreement between annotators: Cohen's kappa per theme and pair, Krippendorff's alpha (nominal).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import math
import os
import re
import warnings
import zlib
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from themes.config import LABELS_DIR

DECISIONS_DIR = LABELS_DIR / "decisions"
VALUES: tuple[str, ...] = ("accept", "reject")
FORMATS: tuple[str, ...] = ("prodigy", "labelstudio", "argilla", "csv")
Format = Literal["prodigy", "labelstudio", "argilla", "csv"]


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
        """Return ``self`` when it is a usable decision; raise ``ValueError`` saying what is wrong."""
        where = f"Decision {self.decision_id} (passage {self.passage_id!r})"
        if self.value not in VALUES:
            raise ValueError(f"{where} has value {self.value!r}; use 'accept' or 'reject'.")
        if known_themes is not None and self.theme not in known_themes:
            raise ValueError(f"{where} names the unknown theme {self.theme!r}; see corpus/codebook.yaml.")
        for name in ("passage_id", "doc_id", "text", "annotator", "time", "theme"):
            if not str(getattr(self, name) or "").strip():
                raise ValueError(f"{where} has an empty {name}.")
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
                raise ValueError(f"{file.name} line {n} lacks the field(s) {missing}; it is not a decision.")
            decisions.append(Decision(**{k: record.get(k) for k in DECISION_FIELDS if k in record}))
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} torn line(s) in the label store: {skipped[:5]}", stacklevel=2)
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


# -- exchange formats ----------------------------------------------------------------------------

def _int32(text: str) -> int:
    """A signed 32-bit hash, the kind Prodigy uses for ``_input_hash`` / ``_task_hash``."""
    value = zlib.crc32(text.encode("utf-8"))
    return value - (1 << 32) if value >= (1 << 31) else value


def _meta(d: Decision) -> dict:
    keep = ("passage_id", "doc_id", "page", "char_start", "char_end", "model_version", "score", "time",
            "source", "decision_id", "note")
    return {k: getattr(d, k) for k in keep}


def _to_prodigy(decisions: Sequence[Decision]) -> str:
    lines = []
    for d in decisions:
        stamp = int(datetime.fromisoformat(d.time).timestamp())
        lines.append(json.dumps({
            "text": d.text, "label": d.theme, "answer": d.value, "meta": _meta(d),
            "_input_hash": _int32(d.text), "_task_hash": _int32(d.text + "|" + d.theme),
            "_annotator_id": d.annotator, "_session_id": d.annotator, "_timestamp": stamp,
        }, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def _to_labelstudio(decisions: Sequence[Decision]) -> str:
    tasks: dict[str, dict] = {}
    for d in decisions:
        task = tasks.setdefault(d.passage_id, {
            "id": len(tasks) + 1,
            "data": {"text": d.text, "passage_id": d.passage_id, "doc_id": d.doc_id, "page": d.page,
                     "char_start": d.char_start, "char_end": d.char_end},
            "annotations": [],
        })
        task["annotations"].append({
            "completed_by": d.annotator, "created_at": d.time, "was_cancelled": False,
            "result": [{"from_name": d.theme, "to_name": "text", "type": "choices",
                        "value": {"choices": [d.value]}}],
            # Exact provenance per decision (a task groups decisions by passage id only).
            "meta": {**_meta(d), "text": d.text},
        })
    return json.dumps(list(tasks.values()), ensure_ascii=False, indent=1) + "\n"


def _to_argilla(decisions: Sequence[Decision]) -> str:
    records = []
    for d in decisions:
        records.append({
            "id": d.decision_id,
            "fields": {"text": d.text},
            "metadata": {k: v for k, v in _meta(d).items() if k != "decision_id"},
            "suggestions": {} if d.score is None else
            {d.theme: {"value": "accept", "score": d.score, "agent": d.model_version}},
            "responses": {d.theme: [{"user_id": d.annotator, "value": d.value, "status": "submitted",
                                     "inserted_at": d.time}]},
            "status": "completed",
        })
    return json.dumps(records, ensure_ascii=False, indent=1) + "\n"


def _to_csv(decisions: Sequence[Decision]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(DECISION_FIELDS)
    for d in decisions:
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                         for v in (getattr(d, f) for f in DECISION_FIELDS)])
    return buffer.getvalue()


def export_decisions(decisions: pd.DataFrame | Sequence[Decision], path: Path, fmt: Format) -> int:
    """Write decisions in an annotation tool's format; returns how many were written.

    Args:
        fmt: "prodigy" (textcat JSONL, one accept/reject per line), "labelstudio" (JSON tasks, one
            per passage, one annotation per decision), "argilla" (JSON records, one per decision),
            or "csv" (UTF-8 with BOM, one row per decision; opens in Excel).
    """
    items = _decisions_of(decisions)
    writers = {"prodigy": _to_prodigy, "labelstudio": _to_labelstudio, "argilla": _to_argilla, "csv": _to_csv}
    if fmt not in writers:
        raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    text = writers[fmt](items)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="")
    return len(items)


def _decisions_of(decisions: pd.DataFrame | Sequence[Decision]) -> list[Decision]:
    if not isinstance(decisions, pd.DataFrame):
        return list(decisions)
    rows = decisions[list(DECISION_FIELDS)].astype(object).where(decisions[list(DECISION_FIELDS)].notna(), None)
    return [Decision(**dict(zip(DECISION_FIELDS, r))) for r in rows.itertuples(index=False)]


def _opt_int(v: Any) -> int | None:
    return None if v in (None, "") else int(v)


def _opt_float(v: Any) -> float | None:
    return None if v in (None, "") else float(v)


def _iso(value: Any) -> str | None:
    """ISO 8601 from an ISO string or a Unix timestamp."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="microseconds")
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    # Keep an aware time exactly as written (round trips must not change it); naive means UTC.
    return text if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC).isoformat()


def _annotator_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("id")
    return None if value in (None, "") else str(value)


class _Builder:
    """Collects decisions from one imported file, filling gaps and naming the bad record."""

    def __init__(self, fmt: str, annotator: str | None, known_themes: Sequence[str] | None,
                 implicit_reject: Sequence[str] | None):
        self.fmt, self.annotator, self.known = fmt, annotator, known_themes
        self.implicit_reject = list(implicit_reject or [])
        self.out: list[Decision] = []

    def add(self, where: str, meta: dict, text: str, theme: str, value: str, annotator: Any,
            time: Any) -> None:
        who = _annotator_of(annotator) or self.annotator
        if not who:
            raise ValueError(f"{where} names no annotator; pass one with --annotator.")
        when = _iso(meta.get("time")) or _iso(time)
        if not when:
            raise ValueError(f"{where} has no time for its decision.")
        if not text:
            raise ValueError(f"{where} has no text.")
        passage_id = str(meta.get("passage_id") or f"{self.fmt}-{hashlib.sha1(text.encode()).hexdigest()[:12]}")
        decision = Decision(
            passage_id=passage_id, doc_id=str(meta.get("doc_id") or f"import:{passage_id}"),
            page=_opt_int(meta.get("page")), char_start=_opt_int(meta.get("char_start")),
            char_end=_opt_int(meta.get("char_end")), text=text, theme=str(theme), value=str(value),
            annotator=who, time=when, model_version=meta.get("model_version"),
            score=_opt_float(meta.get("score")), source=meta.get("source") or f"import:{self.fmt}",
            decision_id=meta.get("decision_id") or "", note=meta.get("note"),
        )
        try:
            self.out.append(decision.check(self.known))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err

    def add_multi(self, where: str, meta: dict, text: str, chosen: Sequence[str], offered: Sequence[str],
                  annotator: Any, time: Any) -> None:
        """Multi-choice: chosen themes are accepted, offered-but-not-chosen ones rejected."""
        meta = {k: v for k, v in meta.items() if k != "decision_id"}  # several decisions: own ids
        for theme in chosen:
            self.add(where, meta, text, theme, "accept", annotator, time)
        for theme in offered:
            if theme not in chosen:
                self.add(where, meta, text, theme, "reject", annotator, time)


def _records(text: str) -> list[Any]:
    """A JSON array, or JSON Lines."""
    stripped = text.lstrip("\ufeff").strip()
    if stripped.startswith("["):
        return json.loads(stripped)
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def _from_prodigy(records: list[dict], b: _Builder) -> None:
    for n, r in enumerate(records, start=1):
        where = f"Prodigy record {n}"
        meta = r.get("meta") or {}
        answer = r.get("answer", "accept")
        annotator = r.get("_annotator_id") or r.get("_session_id")
        if "options" in r:  # multi-choice: "accept" holds the chosen option ids
            if answer != "accept":
                continue  # a rejected or ignored multi-choice example says nothing about themes
            offered = [str(o["id"]) for o in r["options"]]
            b.add_multi(where, meta, r.get("text", ""), list(r.get("accept", [])), offered, annotator,
                        r.get("_timestamp"))
        elif answer in VALUES:
            if "label" not in r:
                raise ValueError(f"{where} has an answer but no label (theme).")
            b.add(where, meta, r.get("text", ""), r["label"], answer, annotator, r.get("_timestamp"))


def _from_labelstudio(records: list[dict], b: _Builder) -> None:
    for n, task in enumerate(records, start=1):
        data = task.get("data") or {}
        text = data.get("text", "")
        for m, ann in enumerate(task.get("annotations") or [], start=1):
            if ann.get("was_cancelled"):
                continue
            where = f"Label Studio task {task.get('id', n)} annotation {m}"
            meta = {**data, **(ann.get("meta") or {})}
            time = ann.get("created_at") or ann.get("updated_at")
            results = [r for r in ann.get("result") or [] if r.get("type") == "choices"]
            for r in results:
                choices = [str(c) for c in (r.get("value") or {}).get("choices", [])]
                if choices and set(choices) <= set(VALUES):  # one accept/reject control per theme
                    if len(choices) != 1:
                        raise ValueError(f"{where} has both accept and reject for {r.get('from_name')!r}.")
                    b.add(where, meta, meta.get("text") or text, r.get("from_name"), choices[0],
                          ann.get("completed_by"), time)
                else:  # one multi-choice control whose choices are theme ids
                    b.add_multi(where, meta, meta.get("text") or text, choices, b.implicit_reject,
                                ann.get("completed_by"), time)


def _from_argilla(records: list[dict], b: _Builder) -> None:
    for n, rec in enumerate(records, start=1):
        where = f"Argilla record {rec.get('id', n)}"
        meta = dict(rec.get("metadata") or {})
        text = (rec.get("fields") or {}).get("text", "")
        responses = rec.get("responses") or {}
        if isinstance(responses, list):  # Argilla 1.x: [{"user_id", "values": {q: {"value"}}, "status"}]
            responses = {q: [{"user_id": r.get("user_id"), "value": v.get("value"), "status": r.get("status"),
                              "inserted_at": r.get("inserted_at")}]
                         for r in responses for q, v in (r.get("values") or {}).items()}
        # A record this module exported holds one decision and its id is that decision's id.
        ours = "passage_id" in meta and sum(len(a) for a in responses.values()) == 1
        if ours:
            meta["decision_id"] = rec.get("id")
        for question, answers in responses.items():
            for answer in answers:
                if answer.get("status", "submitted") != "submitted":
                    continue
                value = answer.get("value")
                time = answer.get("inserted_at") or answer.get("updated_at") or rec.get("inserted_at")
                if isinstance(value, list):  # a multi-label question whose options are theme ids
                    b.add_multi(where, meta, text, [str(v) for v in value], b.implicit_reject,
                                answer.get("user_id"), time)
                elif value in VALUES:  # one accept/reject question per theme
                    b.add(where, meta, text, question, value, answer.get("user_id"), time)
                elif value is not None:  # a single-label question whose options are theme ids
                    b.add(where, meta, text, str(value), "accept", answer.get("user_id"), time)


def _from_csv(text: str, b: _Builder) -> None:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [f for f in _REQUIRED if f not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"The CSV lacks the column(s) {missing}.")
    for n, row in enumerate(reader, start=2):
        meta = {k: (row.get(k) or None) for k in DECISION_FIELDS}
        b.add(f"CSV line {n}", meta, row["text"], row["theme"], row["value"], row["annotator"], row["time"])


def import_decisions(
    path: Path, fmt: Format, annotator: str | None = None, known_themes: Sequence[str] | None = None,
    implicit_reject: Sequence[str] | None = None,
) -> list[Decision]:
    """Read decisions exported by an annotation tool (or by :func:`export_decisions`).

    Args:
        fmt: "prodigy", "labelstudio", "argilla" or "csv".
        annotator: used when a record names no annotator.
        known_themes: when given, a decision for any other theme is an error.
        implicit_reject: for multi-choice Label Studio / Argilla answers, the themes that were
            offered: those not chosen are recorded as rejects (Prodigy lists its options itself).
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown import format {fmt!r}; use one of {', '.join(FORMATS)}.")
    text = Path(path).read_text(encoding="utf-8")
    builder = _Builder(fmt, annotator, known_themes, implicit_reject)
    try:
        if fmt == "csv":
            _from_csv(text, builder)
        else:
            {"prodigy": _from_prodigy, "labelstudio": _from_labelstudio, "argilla": _from_argilla}[fmt](
                _records(text), builder)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a valid {fmt} export ({type(err).__name__}: {err}).") from err
    return builder.out


# -- agreement -----------------------------------------------------------------------------------

def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha for nominal data.

    Args:
        units: per unit (passage), the values the coders gave it; missing values left out. Units
            with fewer than two values are not pairable and are ignored.

    Returns NaN when fewer than two values are pairable or only one category was ever used.
    """
    coincidence: Counter[tuple[Hashable, Hashable]] = Counter()
    for unit in units:
        values = list(unit)
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                coincidence[(c, k)] += pairs / (m - 1)
    marginals: Counter[Hashable] = Counter()
    for (c, _), o in coincidence.items():
        marginals[c] += o
    n = sum(marginals.values())
    if n < 2 or len(marginals) < 2:
        return float("nan")
    observed = sum(o for (c, k), o in coincidence.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k)
    return 1.0 - (n - 1) * observed / expected


@dataclass
class Agreement:
    """Agreement between annotators: per theme and pair (kappa), per theme (alpha)."""

    pairs: pd.DataFrame  # theme, annotator_a, annotator_b, n_both, percent_agreement, kappa
    themes: pd.DataFrame  # theme, n_annotators, n_units, alpha, mean_kappa


def agreement(decisions: pd.DataFrame, themes: Sequence[str] | None = None) -> Agreement:
    """Cohen's kappa per theme for every pair of annotators, and Krippendorff's alpha per theme.

    Uses each annotator's current label (latest decision) per passage and theme; a passage
    counts for a pair when both decided it.
    """
    from sklearn.metrics import cohen_kappa_score

    current = current_labels(decisions)
    themes = sorted(current["theme"].unique()) if themes is None else list(themes)
    pair_rows, theme_rows = [], []
    for theme in themes:
        part = current[current["theme"] == theme]
        wide = part.pivot(index="passage_id", columns="annotator", values="value")
        annotators = sorted(wide.columns)
        kappas = []
        for a, b in combinations(annotators, 2):
            both = wide[[a, b]].dropna()
            if both.empty:
                continue
            same = float((both[a] == both[b]).mean())
            kappa = (float("nan") if both[a].nunique() == 1 and both[b].nunique() == 1
                     else float(cohen_kappa_score(both[a], both[b], labels=list(VALUES))))
            kappas.append(kappa)
            pair_rows.append({"theme": theme, "annotator_a": a, "annotator_b": b, "n_both": len(both),
                              "percent_agreement": round(same, 4),
                              "kappa": round(kappa, 4) if not math.isnan(kappa) else kappa})
        units = [list(row.dropna()) for _, row in wide.iterrows()]
        alpha = krippendorff_alpha_nominal(units)
        valid = [k for k in kappas if not math.isnan(k)]
        theme_rows.append({
            "theme": theme, "n_annotators": len(annotators), "n_units": sum(len(u) >= 2 for u in units),
            "alpha": round(alpha, 4) if not math.isnan(alpha) else alpha,
            "mean_kappa": round(sum(valid) / len(valid), 4) if valid else float("nan"),
        })
    pair_columns = ["theme", "annotator_a", "annotator_b", "n_both", "percent_agreement", "kappa"]
    theme_columns = ["theme", "n_annotators", "n_units", "alpha", "mean_kappa"]
    return Agreement(pd.DataFrame(pair_rows, columns=pair_columns), pd.DataFrame(theme_rows, columns=theme_columns))
