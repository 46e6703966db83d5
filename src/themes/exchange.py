"""Label exchange with annotation tools: Prodigy, Label Studio, Argilla and a CSV for Excel.

:func:`export_decisions` writes the label store's decisions in a tool's own format and
:func:`import_decisions` reads them back (or reads what the tool exported); a round trip keeps every
decision field for field. The formats follow the tools' documented files:

- Prodigy: textcat JSONL, one ``{"text", "label", "answer", "meta", "_input_hash", "_task_hash",
  "_annotator_id", "_session_id", "_timestamp", "_view_id"}`` per decision (``prodigy db-in`` keeps
  the hashes it is given); multi-choice records (``options`` / ``accept``) are read too.
- Label Studio: a JSON list of tasks ``{"data", "annotations": [{"completed_by", "result": [{"from_name",
  "to_name", "type": "choices", "value": {"choices"}}]}]}``, one ``Choices`` control per theme whose
  name is the theme id; :func:`labelstudio_config` writes the labelling config those names refer to.
  A single multi-choice control (choices are theme ids) is read too.
- Argilla (2.x): the records of ``Dataset.to_disk`` (``fields``, ``metadata``, ``suggestions``,
  ``responses``) with the dataset settings (``fields`` and one ``label_selection`` question per
  theme, :func:`argilla_settings`) beside them; Argilla 1.x records are read too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree

import pandas as pd

from themes.errors import Errors, LabelError, located, one_sentence
from themes.labels import _REQUIRED, DECISION_FIELDS, VALUES, Decision

FORMATS: tuple[str, ...] = ("prodigy", "labelstudio", "argilla", "csv")
Format = Literal["prodigy", "labelstudio", "argilla", "csv"]

#: Name of the Label Studio object tag that shows the passage (``to_name`` of every result).
LABELSTUDIO_TEXT = "text"

#: File names of an Argilla dataset folder (``Dataset.to_disk`` / ``Dataset.from_disk``).
ARGILLA_RECORDS = "records.json"
ARGILLA_SETTINGS = ".argilla/settings.json"
ARGILLA_DATASET_FILE = ".argilla/dataset.json"
ARGILLA_DATASET: dict[str, Any] = {
    "name": "themes-decisions",
    "guidelines": "Accept a theme when the passage shows the failing the codebook defines; reject it otherwise.",
    "allow_extra_metadata": True,
    "distribution": {"strategy": "overlap", "min_submitted": 1},
}


# -- labelling set-ups the exports need -------------------------------------------------------------

def labelstudio_config(themes: Sequence[str], titles: Mapping[str, str] | None = None, multi: bool = False) -> str:
    """The Label Studio labelling config (XML) that the ``labelstudio`` export and import use.

    Args:
        themes: theme ids; each becomes a ``Choices`` control named by the id, with the choices
            ``accept`` and ``reject``, pointing at the ``Text`` tag named ``text`` (so an exported
            result's ``from_name`` / ``to_name`` / ``value.choices`` match the config).
        titles: a header shown above each theme's control (e.g. the codebook label).
        multi: one multi-choice control named ``themes`` whose choices are the theme ids instead
            (import it with ``--offered`` so unchosen themes become rejects).
    """
    view = ElementTree.Element("View")
    ElementTree.SubElement(view, "Text", name=LABELSTUDIO_TEXT, value=f"${LABELSTUDIO_TEXT}")
    titles = titles or {}
    if multi:
        ElementTree.SubElement(view, "Header", value="Themes the passage shows")
        choices = ElementTree.SubElement(view, "Choices", name="themes", toName=LABELSTUDIO_TEXT,
                                         choice="multiple", showInline="false")
        for theme in themes:
            ElementTree.SubElement(choices, "Choice", value=theme, alias=theme, hint=titles.get(theme, theme))
    else:
        for theme in themes:
            ElementTree.SubElement(view, "Header", value=titles.get(theme, theme))
            choices = ElementTree.SubElement(view, "Choices", name=theme, toName=LABELSTUDIO_TEXT,
                                             choice="single-radio", showInline="true")
            for value in VALUES:
                ElementTree.SubElement(choices, "Choice", value=value)
    ElementTree.indent(view)
    return ElementTree.tostring(view, encoding="unicode") + "\n"


def argilla_settings(themes: Sequence[str], titles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Argilla dataset settings (``Settings.serialize()`` form) for the ``argilla`` export.

    One text field ``text`` and, per theme, a ``label_selection`` question named by the theme id
    with the labels ``accept`` and ``reject``; the decision's provenance is extra metadata.
    """
    titles = titles or {}
    options = [{"value": v, "text": v} for v in VALUES]
    return {
        "guidelines": ARGILLA_DATASET["guidelines"],
        "fields": [{"name": "text", "title": "Passage", "required": True,
                    "settings": {"type": "text", "use_markdown": False}}],
        "questions": [{"name": theme, "title": titles.get(theme, theme), "description": None, "required": False,
                       "settings": {"type": "label_selection", "options": options, "visible_options": None}}
                      for theme in themes],
        "metadata": [],
        "vectors": [],
        "allow_extra_metadata": True,
    }


def argilla_paths(path: Path) -> tuple[Path, Path, Path | None]:
    """Where the ``argilla`` export writes: records, settings and dataset files.

    A path ending in ``.json`` gets the records, with the settings beside it as
    ``<stem>.settings.json``; any other path is a dataset folder laid out as Argilla's
    ``Dataset.to_disk`` does (``records.json``, ``.argilla/settings.json``, ``.argilla/dataset.json``),
    which ``Dataset.from_disk`` loads.
    """
    path = Path(path)
    if path.suffix == ".json":
        return path, path.with_name(f"{path.stem}.settings.json"), None
    return path / ARGILLA_RECORDS, path / ARGILLA_SETTINGS, path / ARGILLA_DATASET_FILE


# -- export ------------------------------------------------------------------------------------------

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
            "_annotator_id": d.annotator, "_session_id": d.annotator, "_timestamp": stamp, "_view_id": "classification",
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
            # Label Studio's import resolves an annotator by e-mail ({"email": ...}) or by numeric user id;
            # a bare string is refused, so the annotator travels as the e-mail field.
            "completed_by": {"email": d.annotator}, "created_at": d.time, "was_cancelled": False,
            "result": [{"from_name": d.theme, "to_name": "text", "type": "choices",
                        "value": {"choices": [d.value]}}],
            # Exact provenance per decision (a task groups decisions by passage id only).
            "meta": {**_meta(d), "text": d.text},
        })
    return json.dumps(list(tasks.values()), ensure_ascii=False, indent=1) + "\n"


def argilla_user_id(annotator: str) -> str:
    """A stable UUID for an annotator name: Argilla's responses name their user by UUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"themes-annotator:{annotator}"))


def _to_argilla(decisions: Sequence[Decision]) -> str:
    """Records as Argilla 2.x writes them (``Record.to_dict``): one per decision."""
    records = []
    for d in decisions:
        metadata = {k: v for k, v in _meta(d).items() if k != "decision_id" and v is not None}
        records.append({
            "id": d.decision_id,
            "fields": {"text": d.text},
            "metadata": {**metadata, "annotator": d.annotator},
            "suggestions": {} if d.score is None else
            {d.theme: {"value": "accept", "score": d.score, "agent": d.model_version}},
            "responses": {d.theme: [{"value": d.value, "user_id": argilla_user_id(d.annotator),
                                     "status": "submitted"}]},
            "vectors": {},
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


def export_decisions(
    decisions: pd.DataFrame | Sequence[Decision], path: Path, fmt: Format,
    themes: Sequence[str] | None = None,
) -> int:
    """Write decisions in an annotation tool's format; returns how many were written.

    Args:
        fmt: "prodigy" (textcat JSONL, one accept/reject per line), "labelstudio" (JSON tasks, one
            per passage, one annotation per decision; its labelling config comes from
            :func:`labelstudio_config`), "argilla" (records, one per decision, and the dataset's
            settings beside them: see :func:`argilla_paths`), or "csv" (UTF-8 with BOM, one row per
            decision; opens in Excel).
        themes: for "argilla", the questions its settings declare; by default the themes decided.
    """
    items = _decisions_of(decisions)
    writers = {"prodigy": _to_prodigy, "labelstudio": _to_labelstudio, "argilla": _to_argilla, "csv": _to_csv}
    if fmt not in writers:
        raise LabelError(Errors.E506.format(direction="export", value=fmt, choices=", ".join(FORMATS)))
    text = writers[fmt](items)
    path = Path(path)
    if fmt == "argilla":
        records_path, settings_path, dataset_path = argilla_paths(path)
        chosen = list(themes) if themes is not None else sorted({d.theme for d in items})
        _write(settings_path, json.dumps(argilla_settings(chosen), ensure_ascii=False, indent=1) + "\n")
        if dataset_path is not None:
            _write(dataset_path, json.dumps(ARGILLA_DATASET, indent=1) + "\n")
        path = records_path
    _write(path, text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
    return len(items)


def _write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding, newline="")


def _decisions_of(decisions: pd.DataFrame | Sequence[Decision]) -> list[Decision]:
    if not isinstance(decisions, pd.DataFrame):
        return list(decisions)
    rows = decisions[list(DECISION_FIELDS)].astype(object).where(decisions[list(DECISION_FIELDS)].notna(), None)
    return [Decision(**dict(zip(DECISION_FIELDS, r))) for r in rows.itertuples(index=False)]


# -- import ------------------------------------------------------------------------------------------

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
            raise LabelError(Errors.E507.format(where=where))
        when = _iso(meta.get("time")) or _iso(time)
        if not when:
            raise LabelError(Errors.E508.format(where=where))
        if not text:
            raise LabelError(Errors.E509.format(where=where))
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
            raise LabelError(located(err, where)) from err

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
                raise LabelError(Errors.E510.format(where=where))
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
                        raise LabelError(Errors.E511.format(where=where, control=r.get("from_name")))
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
                who = meta.get("annotator") if ours else answer.get("user_id")
                if isinstance(value, list):  # a multi-label question whose options are theme ids
                    b.add_multi(where, meta, text, [str(v) for v in value], b.implicit_reject, who, time)
                elif value in VALUES:  # one accept/reject question per theme
                    b.add(where, meta, text, question, value, who, time)
                elif value is not None:  # a single-label question whose options are theme ids
                    b.add(where, meta, text, str(value), "accept", who, time)


def _from_csv(text: str, b: _Builder) -> None:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [f for f in _REQUIRED if f not in (reader.fieldnames or [])]
    if missing:
        raise LabelError(Errors.E512.format(missing=missing))
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
        raise LabelError(Errors.E506.format(direction="import", value=fmt, choices=", ".join(FORMATS)))
    path = Path(path)
    if fmt == "argilla" and path.is_dir():  # a dataset folder as Argilla's Dataset.to_disk writes it
        path = path / ARGILLA_RECORDS
    text = path.read_text(encoding="utf-8")
    builder = _Builder(fmt, annotator, known_themes, implicit_reject)
    try:
        if fmt == "csv":
            _from_csv(text, builder)
        else:
            {"prodigy": _from_prodigy, "labelstudio": _from_labelstudio, "argilla": _from_argilla}[fmt](
                _records(text), builder)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise LabelError(
            Errors.E513.format(path=path, fmt=fmt, exc_type=type(err).__name__, detail=one_sentence(err))
        ) from err
    return builder.out
