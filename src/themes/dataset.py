"""The labelled data a model is trained and scored on, and the fixed split that keeps them apart.

Team-written passages (``corpus/labels/passages-*.jsonl``), real Ofsted sentences rebuilt from
``../shared`` (locators in ``corpus/labels/real``), the seed sentences, and the label store's
decisions, each as one frame of ``id, text, labels, doc, ...``. A fixed share of *documents*
(chosen by a hash of the document id, so the split never moves as labels are added) is held out
and never trained on. Nothing here fits a model: :mod:`themes.train` and :mod:`themes.evaluate`
both read from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from themes.config import LABELS_DIR, shared_dir
from themes.devset import load_real_labels, real_label_file
from themes.errors import Errors, LabelError, MissingFileError
from themes.labels import current_labels

if TYPE_CHECKING:
    from themes.classify import ThemeClassifier

HELDOUT_MODULUS = 5  # one document in five is held out
REQUIRED_FIELDS = ("id", "text", "labels", "doc")
#: Real labelled sentences (locators into ../shared/ofsted) used for training when ../shared is
#: present, by set. Each set's adjudicated ``gold`` file is used when there is one, else annotator
#: a's (:func:`themes.devset.real_label_file`). Seeds are never trained on; they stay a pure evaluation set.
REAL_TRAINING_SETS = ("ofsted_dev", "ofsted_targeted", "ofsted_search", "ofsted_more")
DECISION_SOURCE = "decisions"  # ``source`` / ``file`` of rows that come from the label store


def load_labels(labels_dir: Path = LABELS_DIR) -> pd.DataFrame:
    """All written labelled passages (``passages-*.jsonl``) as one frame, one row per passage."""
    files = sorted(Path(labels_dir).glob("passages-*.jsonl"))
    if not files:
        raise MissingFileError(Errors.E415.format(folder=labels_dir))
    rows = []
    for file in files:
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise LabelError(Errors.E518.format(path=file.name, line=n, detail=err.msg)) from err
            missing = [f for f in REQUIRED_FIELDS if f not in row]
            if missing:
                raise LabelError(Errors.E416.format(name=file.name, line=n, missing=missing,
                                                    required=", ".join(REQUIRED_FIELDS)))
            row["file"] = file.name
            rows.append(row)
    frame = pd.DataFrame(rows)
    for column, default in (("kind", None), ("section", None)):
        if column not in frame:
            frame[column] = default
    return frame


def real_doc_id(file: str) -> str:
    """The document id of a real report, so the same held-out rule splits real reports too."""
    return f"ofsted:{file}"


def load_real_training(stems: Sequence[str] = REAL_TRAINING_SETS) -> pd.DataFrame:
    """Real labelled sentences with their text rebuilt from ``../shared``; empty when it is absent.

    Each report file is one document, so ``split`` holds out whole reports. Unlabelled sentences
    drawn at random are ``other_negative``; the rest, drawn for their topic or phrasing, are
    ``hard_negative``. ``pool`` keeps how each sentence was drawn.
    """
    columns = ["id", "text", "labels", "doc", "section", "kind", "source", "annotator", "file", "pool",
               "page", "char_start", "char_end"]
    if shared_dir() is None:
        return pd.DataFrame(columns=columns)
    # Rebuilding the text reads hundreds of PDF pages (minutes); a retrain asks twice (training and
    # held-out rows), so the result is kept while the label files and the shared folder are unchanged.
    real_dir = LABELS_DIR / "real"
    key = (tuple(stems), str(shared_dir()),
           tuple(sorted((f.name, f.stat().st_mtime_ns) for f in real_dir.glob("*.jsonl"))) if real_dir.is_dir() else ())
    if key not in _REAL_CACHE:
        _REAL_CACHE.clear()
        _REAL_CACHE[key] = _rebuild_real_training(stems)
    return _REAL_CACHE[key].copy()


_REAL_CACHE: dict[tuple, pd.DataFrame] = {}


def _rebuild_real_training(stems: Sequence[str]) -> pd.DataFrame:
    parts = []
    for stem in stems:
        pools = {}
        path = LABELS_DIR / "real" / f"{stem}.candidates.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                pools[row["id"]] = row.get("pool", "")
        name = real_label_file(stem)
        frame = load_real_labels(name)
        pool = frame["id"].map(pools).fillna("")
        kind = [
            "positive" if labels else ("other_negative" if p.startswith("random") else "hard_negative")
            for labels, p in zip(frame["labels"], pool)
        ]
        parts.append(pd.DataFrame({
            "id": frame["id"], "text": frame["text"], "labels": frame["labels"],
            "doc": frame["file"].map(real_doc_id), "section": None, "kind": kind,
            "source": f"real:{name}", "annotator": frame["annotator"], "file": f"real/{name}.jsonl",
            "pool": pool, "page": frame["page"], "char_start": frame["char_start"], "char_end": frame["char_end"],
        }))
    real = pd.concat(parts, ignore_index=True)
    return real.drop_duplicates("id").reset_index(drop=True)


def load_real_set(stem: str) -> pd.DataFrame | None:
    """A real-text label set with its text rebuilt from ../shared; None without it or its labels.

    The set is read from the file :func:`themes.devset.real_label_file` chooses (gold, else annotator a).
    """
    if shared_dir() is None:
        return None
    try:
        frame = load_real_labels(real_label_file(stem))
    except FileNotFoundError:
        return None
    return frame if len(frame) else None


def load_seeds() -> pd.DataFrame:
    """The seed sentences (evaluation only, never trained on) with their text; empty without ../shared."""
    if shared_dir() is None:
        return pd.DataFrame(columns=["id", "text", "labels"])
    return load_real_labels(real_label_file("seeds"))


def is_heldout(doc: str) -> bool:
    """Whether a document belongs to the fixed held-out split (a stable hash of its id)."""
    digest = hashlib.sha1(doc.encode("utf-8")).hexdigest()
    return int(digest, 16) % HELDOUT_MODULUS == 0


def is_real(frame: pd.DataFrame) -> np.ndarray:
    """Which rows are real sentences (labelled for the core themes only)."""
    return frame["doc"].astype(str).str.startswith("ofsted:").to_numpy()


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) by whole documents."""
    held = frame["doc"].map(is_heldout)
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def data_hash(frame: pd.DataFrame) -> str:
    """sha256 over the ids, texts and labels a model was trained on, in a stable order."""
    h = hashlib.sha256()
    for row in frame.sort_values("id")[["id", "text", "labels"]].itertuples(index=False):
        h.update(json.dumps([row.id, row.text, sorted(row.labels)]).encode("utf-8"))
    return h.hexdigest()


def label_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Passages per theme: positives in the training and held-out splits, plus kinds and totals."""
    train_df, held_df = split(frame)
    themes = sorted({t for labels in frame["labels"] for t in labels})
    rows = [
        {"theme": t, "positives": int(frame["labels"].map(lambda ls, t=t: t in ls).sum()),
         "train": int(train_df["labels"].map(lambda ls, t=t: t in ls).sum()),
         "heldout": int(held_df["labels"].map(lambda ls, t=t: t in ls).sum())}
        for t in themes
    ]
    for kind, count in frame["kind"].value_counts().items():
        rows.append({"theme": f"kind={kind}", "positives": int(count),
                     "train": int((train_df["kind"] == kind).sum()), "heldout": int((held_df["kind"] == kind).sum())})
    rows.append({"theme": "all passages", "positives": len(frame), "train": len(train_df), "heldout": len(held_df)})
    rows.append({"theme": "documents", "positives": frame["doc"].nunique(), "train": train_df["doc"].nunique(),
                 "heldout": held_df["doc"].nunique()})
    return pd.DataFrame(rows)


def normalised(text: str) -> str:
    """Lower case, letters and digits only: two texts equal under this are duplicates."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def with_decisions(frame: pd.DataFrame, decisions: pd.DataFrame, fill_model: ThemeClassifier | None = None,
                   ) -> pd.DataFrame:
    """The team-written passages plus the label store's current decisions, one row per passage.

    Across annotators the latest decision per passage and theme wins. A decided passage already in
    ``frame`` (same id) gains accepted themes and loses rejected ones; any other decided passage
    becomes a new row whose labels are its accepted themes (kind ``decision``, document = its
    ``doc_id``, so the held-out rule applies to it like to any document). A passage decided under
    two ids (the same text in the same document, e.g. after re-segmenting) is one row. Decisions on
    held-out documents are left out: the held-out documents stay the fixed team-written ones.

    Args:
        fill_model: for a new passage, themes nobody decided take this model's tags (a reviewer who
            accepts one theme has not said the passage lacks the others); without it they count
            as absent, as for team-written passages.
    """
    if decisions is None or decisions.empty:
        return frame.copy()
    decided = decisions.copy()
    decided["unit"] = decided["doc_id"].astype(str) + "|" + decided["text"].map(normalised)
    latest = current_labels(decided.drop(columns=["passage_id"]).rename(columns={"unit": "passage_id"}),
                            per_annotator=False)
    out = frame.copy()
    known = {pid: i for i, pid in enumerate(out["id"])}
    new_rows: dict[str, dict] = {}
    labels = [list(ls) for ls in out["labels"]]
    first_id = decided.sort_values("seq" if "seq" in decided else "time").groupby("unit")["passage_id"].first()
    for unit, group in latest.groupby("passage_id", sort=True):
        pid = first_id[unit]
        accepted = set(group.loc[group["value"] == "accept", "theme"])
        rejected = set(group.loc[group["value"] == "reject", "theme"])
        if pid in known:
            row = labels[known[pid]]
            labels[known[pid]] = sorted((set(row) | accepted) - rejected)
            continue
        first = group.iloc[0]
        if is_heldout(str(first["doc_id"])):
            continue
        new_rows[unit] = {
            "id": pid, "text": first["text"], "labels": sorted(accepted), "doc": str(first["doc_id"]),
            "kind": "decision", "section": None, "source": DECISION_SOURCE, "file": DECISION_SOURCE,
            "annotator": ",".join(sorted(set(group["annotator"]))),
        }
    out["labels"] = labels
    if new_rows and fill_model is not None:
        units = list(new_rows)
        tags = fill_model.predict([new_rows[u]["text"] for u in units])
        decided_themes = latest.groupby("passage_id")["theme"].agg(set)
        for unit, tag_row in zip(units, tags):
            filled = {t for t, on in zip(fill_model.themes_, tag_row) if on and t not in decided_themes[unit]}
            new_rows[unit]["labels"] = sorted(set(new_rows[unit]["labels"]) | filled)
    if new_rows:
        out = pd.concat([out, pd.DataFrame(list(new_rows.values()))], ignore_index=True)
    return out
