"""Reviewing a run's tagged passages: what the notebooks 01 and 02 show and the buttons they press.

- :func:`load_run` and :func:`filter_passages` pick passages of a run's output folder by theme,
  score band, document, year, area and review type;
- :func:`neighbours`, :func:`highlight_html` and :func:`passage_html` show a passage with the
  paragraphs around it, its document and page, and the terms that drove its score marked;
- :class:`ReviewSession` walks a queue of (passage, theme) pairs and writes every accept, reject
  or added theme straight to the label store (:mod:`themes.labels`); its ``widget()`` is the
  ipywidgets front end, whose buttons call the session's methods, and :func:`filter_widget`
  refills its queue.

The queue of what to label next is :mod:`themes.active`; retraining on the decisions is
:mod:`themes.retrain`.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from themes import labels as label_store
from themes.classify import SCOPE_WORDS
from themes.codebook import load_codebook
from themes.config import DEFAULT_OUT_DIR, MODELS_DIR
from themes.errors import (
    ArgumentError,
    Errors,
    MissingFileError,
    QueueFinishedError,
    UnknownPassageError,
)
from themes.labels import DECISIONS_DIR, Decision
from themes.registry import load_model

RUN_FILES = ("documents.csv", "passages.parquet", "predictions.parquet")


@dataclass
class Run:
    """A pipeline run read back from its output folder.

    ``passages`` has the document's title, file, year, area and review type joined on; ``scores``
    and ``tagged`` are wide (one row per passage, one column per theme).
    """

    out: Path
    documents: pd.DataFrame
    passages: pd.DataFrame
    predictions: pd.DataFrame
    scores: pd.DataFrame
    tagged: pd.DataFrame
    model_version: str | None

    @property
    def themes(self) -> list[str]:
        return list(self.scores.columns)


def load_run(out: Path | str = DEFAULT_OUT_DIR) -> Run:
    """Read ``documents.csv``, ``passages.parquet`` and ``predictions.parquet`` from a run's folder."""
    out = Path(out).expanduser()
    missing = [name for name in RUN_FILES if not (out / name).is_file()]
    if missing:
        raise MissingFileError(Errors.E422.format(out=out, missing=", ".join(missing)))
    documents = pd.read_csv(out / "documents.csv", encoding="utf-8-sig")
    passages = pd.read_parquet(out / "passages.parquet")
    predictions = pd.read_parquet(out / "predictions.parquet")
    meta = documents[["doc_id", "file", "title", "area", "year", "review_type"]]
    passages = passages.merge(meta, on="doc_id", how="left")
    passages = passages.sort_values(["doc_id", "char_start"], kind="stable").reset_index(drop=True)
    scores = predictions.pivot(index="passage_id", columns="theme", values="score")
    tagged = predictions.pivot(index="passage_id", columns="theme", values="tagged").astype(bool)
    versions = predictions["model_version"].dropna().unique()
    return Run(out, documents, passages, predictions, scores, tagged, str(versions[0]) if len(versions) else None)


def filter_passages(
    run: Run,
    theme: str,
    min_score: float = 0.0,
    max_score: float = 1.0,
    document: str | None = None,
    year: int | Sequence[int] | None = None,
    area: str | None = None,
    review_type: str | None = None,
    tagged: bool | None = None,
    decisions: pd.DataFrame | None = None,
    undecided_only: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """Passages of a run for one theme, highest score first.

    Args:
        theme: the theme whose score is filtered and shown.
        min_score, max_score: the score band (inclusive).
        document: a doc id, file name or part of the title (case-insensitive).
        year: one year or several.
        area: partnership area (case-insensitive, exact).
        review_type: e.g. "LCSPR", "SCR", "rapid review".
        tagged: only passages over (True) or under (False) the theme's threshold.
        decisions: the label store's decisions, to show each passage's current label.
        undecided_only: leave out passages anyone has already decided for this theme.
        limit: at most this many rows.
    """
    if theme not in run.scores.columns:
        raise ArgumentError(Errors.E423.format(theme=theme, out=run.out, themes=run.themes))
    frame = run.passages.copy()
    frame["theme"] = theme
    frame["score"] = frame["passage_id"].map(run.scores[theme])
    frame["tagged"] = frame["passage_id"].map(run.tagged[theme]).fillna(False).astype(bool)
    keep = frame["score"].between(min_score, max_score)
    if document:
        needle = document.lower()
        keep &= (frame["doc_id"] == document) | (frame["file"].str.lower() == needle) | \
            frame["title"].fillna("").str.lower().str.contains(needle, regex=False)
    if year is not None:
        years = [year] if isinstance(year, int | np.integer) else list(year)
        keep &= frame["year"].isin(years)
    if area:
        keep &= frame["area"].fillna("").str.lower() == area.lower()
    if review_type:
        keep &= frame["review_type"].fillna("").str.lower() == review_type.lower()
    if tagged is not None:
        keep &= frame["tagged"] == tagged
    frame = frame[keep]
    frame["label"] = None
    if decisions is not None and not decisions.empty:
        latest = label_store.current_labels(decisions, per_annotator=False)
        latest = latest[latest["theme"] == theme].set_index("passage_id")["value"]
        frame["label"] = frame["passage_id"].map(latest)
        if undecided_only:
            frame = frame[frame["label"].isna()]
    frame = frame.sort_values(["score", "passage_id"], ascending=[False, True], kind="stable")
    columns = ["passage_id", "doc_id", "title", "file", "year", "area", "review_type", "page", "char_start",
               "char_end", "section", "theme", "score", "tagged", "label", "text"]
    frame = frame[columns].reset_index(drop=True)
    return frame.head(limit) if limit else frame


def neighbours(run: Run, passage_id: str, before: int = 1, after: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The passages just before and just after one passage in its document."""
    index = run.passages.index[run.passages["passage_id"] == passage_id]
    if not len(index):
        raise UnknownPassageError(Errors.E424.format(passage=passage_id, out=run.out))
    i = int(index[0])
    doc = run.passages.at[i, "doc_id"]
    same = run.passages["doc_id"] == doc
    prev = run.passages[same & (run.passages.index < i)].tail(before)
    nxt = run.passages[same & (run.passages.index > i)].head(after)
    return prev, nxt


# -- showing a passage ---------------------------------------------------------------------------

def explain_terms(model: Any, text: str, theme: str, k: int = 5) -> list[str]:
    """The terms that pushed ``theme``'s score up most (stop-word-only terms are left out by
    :meth:`themes.classify.ThemeClassifier.explain`); none for a model that cannot explain."""
    if model is None or theme not in getattr(model, "themes_", []) or not hasattr(model, "explain"):
        return []
    return model.explain(text, theme, k=k)


def _term_pattern(term: str) -> str | None:
    """A regex for an explanation term: scope prefixes ("not x", "would x") mark words, not text."""
    words = term.split()
    # "not"/"would" before a word are the explainer's spelling of neg_/hyp_ scope marks.
    core = [w for i, w in enumerate(words) if not (w in SCOPE_WORDS and i + 1 < len(words))]
    core = [w for w in core if re.fullmatch(r"[a-z0-9']+", w)]
    if not core:
        return None
    return r"\b" + r"[\W_]+".join(re.escape(w) for w in core) + r"\b"


def highlight_html(text: str, terms: Sequence[str]) -> str:
    """The passage as HTML with every occurrence of the driving terms wrapped in ``<mark>``."""
    patterns = sorted({p for p in (_term_pattern(t) for t in terms) if p}, key=len, reverse=True)
    if not patterns:
        return html.escape(text)
    regex = re.compile("|".join(patterns), re.IGNORECASE)
    out, last = [], 0
    for match in regex.finditer(text):
        out.append(html.escape(text[last:match.start()]))
        out.append(f"<mark>{html.escape(match.group(0))}</mark>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def passage_html(run: Run, row: pd.Series | dict, terms: Sequence[str] = (), context: int = 1,
                 label: str | None = None) -> str:
    """One passage as an HTML card: document title and page, neighbours, highlighted text, score."""
    before, after = neighbours(run, row["passage_id"], context, context)
    title = html.escape(str(row.get("title") or row.get("file") or row["doc_id"]))
    year = "" if pd.isna(row.get("year")) else f" ({int(row['year'])})"
    muted = 'style="color:#777;font-size:90%;margin:4px 0"'
    parts = [
        '<div style="border:1px solid #ccc;border-radius:6px;padding:10px;max-width:900px">',
        (f"<div><b>{title}</b>{year} · {html.escape(str(row.get('file') or ''))} · page {row['page']}"
         f" · {html.escape(str(row.get('section') or 'no section'))}</div>"),
        (f"<div>theme <code>{html.escape(str(row['theme']))}</code> · score <b>{row['score']:.3f}</b>"
         f" · {'tagged' if row.get('tagged') else 'not tagged'}"
         + (f" · current label: <b>{html.escape(label)}</b>" if label else "") + "</div>"),
    ]
    parts += [f"<p {muted}>{html.escape(t)}</p>" for t in before["text"]]
    parts.append(f'<p style="background:#f6f8fa;padding:6px;margin:4px 0">{highlight_html(row["text"], terms)}</p>')
    parts += [f"<p {muted}>{html.escape(t)}</p>" for t in after["text"]]
    if terms:
        parts.append(f"<div {muted}>terms that drove the score: " + ", ".join(html.escape(t) for t in terms) + "</div>")
    parts.append("</div>")
    return "\n".join(parts)


def load_run_model(run: Run, models_dir: Path = MODELS_DIR) -> Any | None:
    """The run's model (for explanations), or ``None`` when that version is not in ``models_dir``."""
    if run.model_version is None:
        return None
    try:
        return load_model(run.model_version, models_dir).model
    except FileNotFoundError:
        return None


# -- reviewing -----------------------------------------------------------------------------------

@dataclass
class ReviewSession:
    """A queue of (passage, theme) pairs to decide, writing each decision to the label store.

    Args:
        run: the run the passages come from.
        queue: rows with at least ``passage_id``, ``theme`` and ``score`` (e.g. from
            :func:`filter_passages` or :func:`label_next`).
        annotator: who decides.
        store: the label store folder.
        model: the run's model, for highlighting (optional).
    """

    run: Run
    queue: pd.DataFrame
    annotator: str
    store: Path = DECISIONS_DIR
    model: Any = None
    position: int = 0
    made: list[Decision] = field(default_factory=list)
    _ui: Any = field(default=None, repr=False)
    last_error: Exception | None = field(default=None, repr=False)
    _ui_filters: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.annotator.strip():
            raise ArgumentError(Errors.E425)
        self.queue = self.queue.reset_index(drop=True)
        self.known_themes = load_codebook().ids

    # state
    def current(self) -> pd.Series | None:
        """The (passage, theme) row under review, or ``None`` when the queue is done."""
        return None if self.position >= len(self.queue) else self.queue.iloc[self.position]

    def _passage(self, passage_id: str) -> pd.Series:
        return self.run.passages.loc[self.run.passages["passage_id"] == passage_id].iloc[0]

    def _score(self, passage_id: str, theme: str) -> float | None:
        if theme in self.run.scores.columns and passage_id in self.run.scores.index:
            value = self.run.scores.at[passage_id, theme]
            return None if pd.isna(value) else float(value)
        return None

    # actions (the widget's buttons call exactly these)
    def decide(self, value: str, theme: str | None = None, note: str | None = None) -> Decision:
        """Write a decision about the current passage (its queued theme unless ``theme`` is given)."""
        row = self.current()
        if row is None:
            raise QueueFinishedError(Errors.E426)
        theme = theme or str(row["theme"])
        passage = self._passage(row["passage_id"])
        decision = label_store.make_decision(
            passage, theme, value, self.annotator, model_version=self.run.model_version,
            score=self._score(row["passage_id"], theme), note=note, known_themes=self.known_themes,
        )
        label_store.append_decision(decision, self.store)
        self.made.append(decision)
        return decision

    def accept(self) -> Decision:
        """The passage shows the queued theme; move on."""
        decision = self.decide("accept")
        self.position += 1
        return decision

    def reject(self) -> Decision:
        """The passage does not show the queued theme; move on."""
        decision = self.decide("reject")
        self.position += 1
        return decision

    def add_theme(self, theme: str) -> Decision:
        """The passage also shows another theme; stay on it."""
        return self.decide("accept", theme=theme)

    def set_queue(self, queue: pd.DataFrame) -> None:
        """Review another queue (e.g. after changing the filters) from its first passage."""
        self.queue = queue.reset_index(drop=True)
        self.position = 0
        if self._ui is not None:
            self._ui["refresh"](f"{len(self.queue)} passage(s) to review.")

    def skip(self) -> None:
        """Move on without a decision."""
        self.position += 1

    def back(self) -> None:
        """Go back one passage (a new decision there supersedes the old one)."""
        self.position = max(0, self.position - 1)

    def counts(self) -> dict[str, int]:
        """Decisions made in this session and in the store overall."""
        made = Counter(d.value for d in self.made)
        return {"accept": made["accept"], "reject": made["reject"], "session": len(self.made),
                "store": len(label_store.load_decisions(self.store)), "left": max(0, len(self.queue) - self.position)}

    def counts_text(self) -> str:
        c = self.counts()
        return (f"{c['session']} decision(s) this session ({c['accept']} accepted, {c['reject']} rejected); "
                f"{c['store']} in the label store; {c['left']} passage(s) left in the queue.")

    def html(self) -> str:
        """The current passage as HTML (or a closing note)."""
        row = self.current()
        if row is None:
            return "<p><b>Queue finished.</b> Open 03-retrain-and-compare to train on your decisions.</p>"
        full = {**self._passage(row["passage_id"]).to_dict(), "theme": row["theme"],
                "score": self._score(row["passage_id"], str(row["theme"])) or float(row.get("score", 0.0)),
                "tagged": bool(row.get("tagged", False))}
        terms = explain_terms(self.model, full["text"], str(row["theme"]))
        mine = [d.value for d in self.made if d.passage_id == row["passage_id"] and d.theme == row["theme"]]
        label = mine[-1] if mine else (row.get("label") if isinstance(row.get("label"), str) else None)
        header = f"<div>{self.position + 1} of {len(self.queue)}</div>"
        return header + passage_html(self.run, full, terms, label=label)

    # the ipywidgets front end
    def widget(self) -> Any:
        """Accept / Reject / Skip / Back buttons, an add-a-theme picker and a running count."""
        import ipywidgets as w

        view = w.HTML(self.html())
        count = w.HTML(self.counts_text())
        buttons = {
            "accept": w.Button(description="Accept", button_style="success", icon="check"),
            "reject": w.Button(description="Reject", button_style="danger", icon="times"),
            "skip": w.Button(description="Skip"),
            "back": w.Button(description="Back"),
        }
        picker = w.Dropdown(options=self.known_themes, description="Also shows:")
        add = w.Button(description="Add theme", icon="plus")
        status = w.HTML("")

        def refresh(message: str = "") -> None:
            view.value = self.html()
            count.value = self.counts_text()
            status.value = html.escape(message)

        def act(name: str):
            def handler(_button: Any) -> None:
                try:
                    if name == "add":
                        decision = self.add_theme(picker.value)
                        refresh(f"Added {decision.theme}.")
                        return
                    result = getattr(self, name)()
                    refresh(f"Saved: {result.value} {result.theme}." if isinstance(result, Decision) else "")
                except (IndexError, ValueError) as err:  # e.g. the queue is finished
                    refresh(str(err))
                except Exception as err:  # noqa: BLE001 (ipywidgets would swallow it; click() re-raises)
                    self.last_error = err
                    refresh(f"Error: {err}")
            return handler

        for name, button in buttons.items():
            button.on_click(act(name))
        add.on_click(act("add"))
        self._ui = {**buttons, "add": add, "picker": picker, "view": view, "count": count, "status": status,
                    "refresh": refresh}
        return w.VBox([view, w.HBox(list(buttons.values())), w.HBox([picker, add]), count, status])

    def click(self, name: str) -> None:
        """Press one of the widget's buttons ("accept", "reject", "skip", "back", "add"), as a user would."""
        if self._ui is None:
            self.widget()
        self.last_error = None
        self._ui[name].click()
        if self.last_error is not None:
            raise self.last_error


def filter_widget(run: Run, session: ReviewSession, theme: str | None = None,
                  score: tuple[float, float] = (0.3, 1.0)) -> Any:
    """Filters (theme, score band, document, year, area, undecided only) that refill a session's queue.

    "Apply" calls :func:`filter_passages` with the chosen values and :meth:`ReviewSession.set_queue`.
    """
    import ipywidgets as w

    every = "(all)"
    docs = run.documents[run.documents["status"] == "ok"]
    theme_box = w.Dropdown(options=run.themes, value=theme if theme in run.themes else run.themes[0],
                           description="Theme")
    band = w.FloatRangeSlider(value=score, min=0.0, max=1.0, step=0.01, description="Score")
    document = w.Dropdown(options=[every, *sorted(docs["file"].dropna())], description="Document")
    year = w.Dropdown(options=[every, *sorted(int(y) for y in docs["year"].dropna().unique())], description="Year")
    area = w.Dropdown(options=[every, *sorted(docs["area"].dropna().unique())], description="Area")
    undecided = w.Checkbox(value=False, description="Only passages nobody has decided")
    apply = w.Button(description="Apply", icon="filter")

    def on_apply(_button: Any) -> None:
        queue = filter_passages(
            run, theme_box.value, band.value[0], band.value[1],
            document=None if document.value == every else document.value,
            year=None if year.value == every else int(year.value),
            area=None if area.value == every else area.value,
            decisions=label_store.load_decisions(session.store), undecided_only=undecided.value,
        )
        session.set_queue(queue)

    apply.on_click(on_apply)
    session._ui_filters = {"theme": theme_box, "score": band, "document": document, "year": year, "area": area,
                           "undecided": undecided, "apply": apply}
    return w.VBox([w.HBox([theme_box, band]), w.HBox([document, year, area]), w.HBox([undecided, apply])])
