"""The researcher's loop behind the notebooks: read a run's tagged passages, decide, retrain, compare.

Everything a notebook does is a function here, so tests call the same code the widgets call:

- :func:`load_run` and :func:`filter_passages` pick passages of a run's output folder by theme,
  score band, document, year, area and review type;
- :func:`neighbours`, :func:`highlight_html` and :func:`passage_html` show a passage with the
  paragraphs around it, its document and page, and the terms that drove its score marked;
- :class:`ReviewSession` walks a queue of (passage, theme) pairs and writes every accept, reject
  or added theme straight to the label store (:mod:`themes.labels`); its ``widget()`` is the
  ipywidgets front end, whose buttons call the session's methods;
- :func:`label_next` is the active-learning queue: undecided passages scored near their theme's
  threshold, spread over documents and themes;
- :func:`retrain` trains a challenger on the team-written passages plus the store's decisions,
  scores it beside the champion (the default model) on the fixed held-out documents, keeps it under
  ``models/<version>/`` and promotes it only when its core macro-F1 is not lower than the
  champion's minus a margin; :func:`prevalence_change` shows what the new model would change on
  the last run's corpus.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from getpass import getuser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from themes import labels as label_store
from themes.config import CORE_THEMES, DEFAULT_OUT_DIR, LABELS_DIR, MODELS_DIR
from themes.labels import DECISIONS_DIR, Decision

RUN_FILES = ("documents.csv", "passages.parquet", "predictions.parquet")


# -- notebook parameters -------------------------------------------------------------------------

@dataclass(frozen=True)
class NotebookParams:
    """Where a notebook reads and writes; each field can be set by a ``THEMES_*`` environment variable.

    Args:
        out: a run's output folder (``THEMES_OUT``).
        models_dir: model versions (``THEMES_MODELS_DIR``).
        labels_dir: team-written labelled passages (``THEMES_LABELS_DIR``).
        decisions_dir: the label store (``THEMES_DECISIONS_DIR``).
        annotator: who is deciding (``THEMES_ANNOTATOR``; default the login name).
        demo_decisions: headless runs click this many buttons in place of a reviewer (``THEMES_DEMO_DECISIONS``).
        fast: retrain with a small, quick model (``THEMES_FAST``), for tests and demonstrations.
        use_flow: retrain through the Prefect flow rather than the plain function (``THEMES_USE_FLOW``).
        margin: how much lower a challenger's core macro-F1 may be and still be promoted (``THEMES_MARGIN``).
    """

    out: Path = DEFAULT_OUT_DIR
    models_dir: Path = MODELS_DIR
    labels_dir: Path = LABELS_DIR
    decisions_dir: Path = DECISIONS_DIR
    annotator: str = "reviewer"
    demo_decisions: int = 0
    fast: bool = False
    use_flow: bool = True
    margin: float = 0.0

    @classmethod
    def from_env(cls, **overrides: Any) -> NotebookParams:
        """Defaults, then ``THEMES_*`` environment variables, then keyword overrides."""
        env = os.environ
        flag = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}
        values: dict[str, Any] = {
            "out": Path(env.get("THEMES_OUT", DEFAULT_OUT_DIR)),
            "models_dir": Path(env.get("THEMES_MODELS_DIR", MODELS_DIR)),
            "labels_dir": Path(env.get("THEMES_LABELS_DIR", LABELS_DIR)),
            "decisions_dir": Path(env.get("THEMES_DECISIONS_DIR", DECISIONS_DIR)),
            "annotator": env.get("THEMES_ANNOTATOR") or _login(),
            "demo_decisions": int(env.get("THEMES_DEMO_DECISIONS", "0") or 0),
            "fast": flag.get(env.get("THEMES_FAST", "0").lower(), True),
            "use_flow": flag.get(env.get("THEMES_USE_FLOW", "1").lower(), True),
            "margin": float(env.get("THEMES_MARGIN", "0") or 0),
        }
        for key, value in overrides.items():
            if key not in values:
                raise ValueError(f"Unknown notebook parameter {key!r}; use one of {sorted(values)}.")
            values[key] = Path(value).expanduser() if key.endswith(("_dir", "out")) else value
        return cls(**values)

    def retrain_params(self) -> dict:
        """Keyword arguments for :func:`retrain`: a small model when ``fast`` is set."""
        if self.fast:
            return {"params": {"use_chars": False}, "themes": list(CORE_THEMES), "n_splits": 3,
                    "with_real": False}
        return {}


def _login() -> str:
    try:
        return getuser()
    except (KeyError, OSError):
        return "reviewer"


# -- a run's output folder -----------------------------------------------------------------------

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
        raise FileNotFoundError(f"{out} is not a run's output folder: {', '.join(missing)} missing; "
                                "run `themes run --out` first.")
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
        raise ValueError(f"Theme {theme!r} has no scores in {run.out}; the run's model scored {run.themes}.")
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
        raise KeyError(f"Passage {passage_id!r} is not in the run at {run.out}.")
    i = int(index[0])
    doc = run.passages.at[i, "doc_id"]
    same = run.passages["doc_id"] == doc
    prev = run.passages[same & (run.passages.index < i)].tail(before)
    nxt = run.passages[same & (run.passages.index > i)].head(after)
    return prev, nxt


# -- showing a passage ---------------------------------------------------------------------------

def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def explain_terms(model: Any, text: str, theme: str, k: int = 5) -> list[str]:
    """The terms that pushed ``theme``'s score up most, leaving out terms made only of stop words."""
    if model is None or theme not in getattr(model, "themes_", []):
        return []
    stop = _stop_words()
    terms = []
    for term in model.explain(text, theme, k=3 * k):
        words = [w for w in term.split() if w not in ("not", "would")]
        if words and not all(w in stop for w in words):
            terms.append(term)
        if len(terms) == k:
            break
    return terms


def _term_pattern(term: str) -> str | None:
    """A regex for an explanation term: scope prefixes ("not x", "would x") mark words, not text."""
    words = term.split()
    # "not"/"would" before a word are the explainer's spelling of neg_/hyp_ scope marks.
    core = [w for i, w in enumerate(words) if not (w in ("not", "would") and i + 1 < len(words))]
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
    from themes.registry import load_model

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
            raise ValueError("A review session needs an annotator name.")
        self.queue = self.queue.reset_index(drop=True)
        from themes.codebook import load_codebook

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
            raise IndexError("The review queue is finished; there is no passage to decide.")
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


# -- active learning -----------------------------------------------------------------------------

def run_thresholds(run: Run, models_dir: Path = MODELS_DIR) -> dict[str, float]:
    """Each theme's threshold: from the run's model card, or else from the run's own tags.

    Without the card, the threshold lies between the highest untagged and the lowest tagged score;
    the midpoint is used.
    """
    import json

    if run.model_version:
        card = Path(models_dir) / run.model_version / "card.json"
        if card.is_file():
            thresholds = json.loads(card.read_text()).get("thresholds") or {}
            if set(run.themes) <= set(thresholds):
                return {t: float(thresholds[t]) for t in run.themes}
    out = {}
    for theme in run.themes:
        s, t = run.scores[theme], run.tagged[theme]
        low = float(s[~t].max()) if (~t).any() else 0.0
        high = float(s[t].min()) if t.any() else 1.0
        out[theme] = (low + high) / 2 if t.any() and (~t).any() else (0.5 if not t.any() else high)
    return out


def label_next(
    run: Run,
    thresholds: dict[str, float],
    decisions: pd.DataFrame | None = None,
    n: int = 20,
    themes: Sequence[str] | None = None,
    max_per_document: int = 3,
    max_per_theme: int | None = None,
) -> pd.DataFrame:
    """The undecided (passage, theme) pairs whose labels should help the model most.

    Uncertainty sampling: pairs whose score is closest to the theme's threshold come first
    (``uncertainty`` is 1 at the threshold, 0 at the far end of the scale). Diversity: at most
    ``max_per_document`` pairs from one document, at most ``max_per_theme`` per theme (default
    about twice an even share), one theme per passage, and no repeated passage text (boilerplate);
    the caps are relaxed only when too few pairs remain.
    """
    themes = [t for t in (themes or run.themes) if t in run.scores.columns]
    decided: set[tuple[str, str]] = set()
    if decisions is not None and not decisions.empty:
        decided = set(zip(decisions["passage_id"], decisions["theme"]))
    long = run.scores[themes].stack().rename("score").reset_index()
    long.columns = ["passage_id", "theme", "score"]
    long = long[[(p, t) not in decided for p, t in zip(long["passage_id"], long["theme"])]]
    threshold = long["theme"].map(thresholds).astype(float)
    scale = np.maximum(threshold, 1 - threshold)
    long["threshold"] = threshold
    long["uncertainty"] = (1 - (long["score"] - threshold).abs() / scale).clip(0, 1)
    long["tagged"] = long["score"] >= threshold
    meta = run.passages.set_index("passage_id")
    long["doc_id"] = long["passage_id"].map(meta["doc_id"])
    long["norm"] = long["passage_id"].map(meta["text"]).map(lambda t: re.sub(r"[^a-z0-9]", "", str(t).lower()))
    long = long.sort_values(["uncertainty", "passage_id", "theme"], ascending=[False, True, True], kind="stable")
    per_theme = max_per_theme or max(1, math.ceil(2 * n / max(1, len(themes))))

    chosen: list[int] = []
    seen_passages: set[str] = set()
    seen_texts: set[str] = set()
    docs: Counter[str] = Counter()
    by_theme: Counter[str] = Counter()
    for capped in (True, False):
        for idx, row in long.iterrows():
            if len(chosen) >= n:
                break
            if idx in chosen or row["passage_id"] in seen_passages or row["norm"] in seen_texts:
                continue
            if capped and (docs[row["doc_id"]] >= max_per_document or by_theme[row["theme"]] >= per_theme):
                continue
            chosen.append(idx)
            seen_passages.add(row["passage_id"])
            seen_texts.add(row["norm"])
            docs[row["doc_id"]] += 1
            by_theme[row["theme"]] += 1
    queue = long.loc[chosen].drop(columns=["norm", "doc_id"])
    info = run.passages[["passage_id", "doc_id", "title", "file", "page", "text"]]
    return queue.merge(info, on="passage_id", how="left").reset_index(drop=True)


# -- retraining: champion and challenger ---------------------------------------------------------

@dataclass
class RetrainResult:
    """A retrained candidate, how it compares with the champion, and whether it was promoted.

    ``table`` holds per-theme F1 of both models on the same fixed held-out documents (and the
    core macro-F1 in its first row).
    """

    version: str
    folder: Path
    card: dict
    champion: str | None
    champion_f1: float | None
    challenger_f1: float
    margin: float
    promoted: bool
    reason: str
    table: pd.DataFrame

    def summary(self) -> dict:
        return {"version": self.version, "champion": self.champion, "champion_macro_f1_core": self.champion_f1,
                "challenger_macro_f1_core": self.challenger_f1, "margin": self.margin, "promoted": self.promoted,
                "reason": self.reason, "label_decisions_hash": self.card.get("label_decisions_hash"),
                "n_label_decisions": self.card.get("n_label_decisions")}


def training_frame(
    labels_dir: Path = LABELS_DIR, decisions_dir: Path = DECISIONS_DIR, fill_model: Any = None,
    with_real: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The team-written passages merged with the store's decisions, and the decisions themselves.

    Args:
        fill_model: tags the themes nobody decided for a reviewed passage (see
            :func:`themes.train.with_decisions`); ``None`` counts them as absent.
        with_real: add the real labelled Ofsted sentences, as ``themes train`` does, when
            ``../shared`` is present (a few minutes to rebuild their text), so a challenger is not
            trained on less real text than the champion it is compared with.
    """
    from themes.train import load_labels, load_real_training, with_decisions

    decisions = label_store.load_decisions(decisions_dir)
    frame = with_decisions(load_labels(labels_dir), decisions, fill_model)
    real = load_real_training() if with_real else frame.iloc[:0]
    if len(real):
        frame = pd.concat([frame, real], ignore_index=True)
    return frame, decisions


def fit_candidate(
    frame: pd.DataFrame, decisions: pd.DataFrame, params: dict | None = None,
    themes: Sequence[str] | None = None, n_splits: int = 5, with_learning_curve: bool = False,
) -> Any:
    """Train a challenger on the merged frame; its card records the decisions it was trained on."""
    from themes.train import split, train

    result = train(frame, params=params, themes=themes, with_learning_curve=with_learning_curve, n_splits=n_splits)
    train_df, _ = split(frame)
    sources = train_df["source"].astype(str) if "source" in train_df else pd.Series([], dtype=str)
    real_sources = sources[sources.str.startswith("real:")]
    result.card["real_training"] = {"train_sentences": len(real_sources), "sets": sorted(set(real_sources))}
    trained_from_store = int((sources == "decisions").sum())
    result.card.update({
        "label_decisions_hash": label_store.decisions_hash(decisions),
        "n_label_decisions": len(decisions),
        "n_label_decision_passages_trained": trained_from_store,
        "label_decision_annotators": sorted(decisions["annotator"].unique()) if len(decisions) else [],
    })
    return result


def heldout_frame(labels_dir: Path = LABELS_DIR) -> pd.DataFrame:
    """The fixed held-out documents of the team-written passages: the ground both models are scored on."""
    from themes.train import load_labels, split

    return split(load_labels(labels_dir))[1]


def compare_on(heldout: pd.DataFrame, models: dict[str, Any]) -> pd.DataFrame:
    """Per-theme F1 (and core macro-F1 first) of several fitted models on the same passages."""
    from themes.evaluate import label_matrix, score

    columns = {}
    for name, model in models.items():
        themes = list(model.themes_)
        y = label_matrix(heldout["labels"], themes)
        s = score(name, "heldout", y, model.predict(list(heldout["text"])), themes)
        columns[name] = pd.concat([pd.Series({"macro_f1_core": s.macro_f1_core}), s.per_theme["f1"]])
    table = pd.DataFrame(columns)
    table.index.name = "measure"
    return table.round(3).reset_index()


def champion_model(models_dir: Path = MODELS_DIR) -> Any | None:
    """The current default model (``LoadedModel``), or ``None`` when there is none."""
    from themes.registry import default_version, load_model

    version = default_version(models_dir)
    return load_model(version, models_dir) if version else None


def challenge(candidate: Any, models_dir: Path, heldout: pd.DataFrame, margin: float = 0.0) -> tuple[dict, pd.DataFrame]:
    """Score the challenger beside the current default model; decide whether it may be promoted.

    Returns the decision (champion, both macro-F1s, margin, promote, reason) and the per-theme table.
    """
    from themes.registry import default_version, load_model

    champion_version = default_version(models_dir)
    models = {"challenger": candidate}
    if champion_version:
        models = {"champion": load_model(champion_version, models_dir).model, "challenger": candidate}
    table = compare_on(heldout, models)
    macro = table.set_index("measure").loc["macro_f1_core"]
    challenger_f1 = float(macro["challenger"])
    if not champion_version:
        decision = {"champion": None, "champion_f1": None, "promote": True,
                    "reason": "There is no default model yet; the candidate becomes the first."}
    else:
        champion_f1 = float(macro["champion"])
        ok = challenger_f1 >= champion_f1 - margin - 1e-9
        decision = {"champion": champion_version, "champion_f1": champion_f1, "promote": ok,
                    "reason": (f"core macro-F1 {challenger_f1:.3f} vs champion {champion_f1:.3f} "
                               f"(margin {margin:.3f}): " + ("promoted" if ok else "kept, not promoted"))}
    decision.update({"challenger_f1": challenger_f1, "margin": margin})
    return decision, table


def save_candidate(result: Any, decision: dict, models_dir: Path = MODELS_DIR) -> tuple[str, Path]:
    """Save the challenger under a new ``models_dir/<version>/`` with the comparison in its card."""
    from themes.registry import save_model
    from themes.train import new_version

    version = new_version(result.card, Path(models_dir))
    result.card["challenge"] = {k: decision[k] for k in ("champion", "champion_f1", "challenger_f1", "margin",
                                                         "promote", "reason")}
    folder = save_model(result.model, result.card, version, Path(models_dir))
    return version, folder


def retrain(
    labels_dir: Path = LABELS_DIR, decisions_dir: Path = DECISIONS_DIR, models_dir: Path = MODELS_DIR,
    margin: float = 0.0, params: dict | None = None, themes: Sequence[str] | None = None,
    n_splits: int = 5, with_learning_curve: bool = False, promote: bool = True, fill_undecided: bool = True,
    with_real: bool = True,
) -> RetrainResult:
    """Train on the team-written passages plus every current decision; promote only if not worse.

    Args:
        margin: the challenger is promoted when its core macro-F1 on the fixed held-out documents
            is at least the champion's minus this.
        params, themes, n_splits, with_learning_curve: passed to :func:`themes.train.train`.
        promote: when False the candidate is saved and compared but never made the default.
        fill_undecided: themes nobody decided for a reviewed passage take the champion's tags
            rather than counting as absent.
        with_real: train on the real labelled Ofsted sentences too (see :func:`training_frame`).
    """
    from themes.registry import promote as make_default

    champion = champion_model(Path(models_dir)) if fill_undecided else None
    frame, decisions = training_frame(labels_dir, decisions_dir, champion.model if champion else None, with_real)
    result = fit_candidate(frame, decisions, params, themes, n_splits, with_learning_curve)
    result.card["undecided_themes_filled_by"] = champion.version if champion else None
    decision, table = challenge(result.model, Path(models_dir), heldout_frame(labels_dir), margin)
    version, folder = save_candidate(result, decision, models_dir)
    promoted = bool(promote and decision["promote"])
    if promoted:
        make_default(version, Path(models_dir), reason=decision["reason"])
    return RetrainResult(version, folder, result.card, decision["champion"], decision["champion_f1"],
                         decision["challenger_f1"], margin, promoted, decision["reason"], table)


def prevalence_change(run: Run, models: dict[str, Any]) -> pd.DataFrame:
    """Share of the run's documents in which each theme is present, under each model, and the change.

    Args:
        models: name -> fitted classifier (e.g. {"champion": ..., "challenger": ...}); the first
            two are compared in the ``change`` column.
    """
    from themes import aggregate as agg

    ok = run.documents[run.documents["status"] == "ok"]
    texts = list(run.passages["text"])
    shares = {}
    for name, model in models.items():
        proba = model.predict_proba(texts)
        rows = []
        for j, theme in enumerate(model.themes_):
            rows.append(pd.DataFrame({"passage_id": run.passages["passage_id"], "theme": theme,
                                      "score": proba[:, j], "tagged": proba[:, j] >= model.thresholds_[j]}))
        predictions = pd.concat(rows, ignore_index=True)
        doc_themes = agg.document_themes(ok, run.passages, predictions, list(model.themes_))
        shares[name] = doc_themes.groupby("theme")["present"].mean()
    table = pd.DataFrame(shares).round(3)
    table.index.name = "theme"
    names = list(models)
    if len(names) >= 2:
        table["change"] = (table[names[1]] - table[names[0]]).round(3)
    return table.reset_index()


def show(obj: Any) -> None:
    """Display HTML text or any object in a notebook (plain print outside one)."""
    try:
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        print(obj)
        return
    display(HTML(obj) if isinstance(obj, str) else obj)


def cards_side_by_side(left: str | None, right: str, models_dir: Path = MODELS_DIR) -> str:
    """Two model cards (Markdown, shown as preformatted text) in two columns of HTML."""
    from themes.registry import CARD_MD, resolve

    def column(version: str | None) -> str:
        if version is None:
            return "<div style='flex:1'><i>no current model</i></div>"
        text = (resolve(version, Path(models_dir)) / CARD_MD).read_text()
        return ("<div style='flex:1;min-width:0'><pre style='white-space:pre-wrap;font-size:80%'>"
                + html.escape(text) + "</pre></div>")

    return "<div style='display:flex;gap:12px'>" + column(left) + column(right) + "</div>"
