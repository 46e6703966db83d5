"""Versioned models on disk: ``models/<version>/`` with ``card.json`` and ``card.md`` beside the model.

A model is one of two kinds, neither of them a pickle:

- ``model.skops``: a scikit-learn estimator saved with skops, loaded only when every type in the
  file is one that our own estimators write (:data:`MODEL_TYPES`); a file holding anything else
  (``builtins.exec`` as an analyzer, say) is refused before any of it is built;
- ``model.onnx`` + ``tokenizer.json`` + ``head.json``: a fine-tuned sentence encoder run by
  onnxruntime (:mod:`themes.encoder`); ONNX graphs, tokenizer files and the JSON head are data.

``models/DEFAULT`` names the version used when no model is given.
"""

from __future__ import annotations

import json
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from themes import config
from themes.config import MODELS_DIR
from themes.errors import Errors, MissingFileError, ModelError, one_sentence
from themes.tables import document_evaluation_markdown

if TYPE_CHECKING:
    from themes.classify import ThemeClassifier

# skops (and the scikit-learn it imports) load in ``save_model`` and ``load_model``: a re-run whose
# predictions are all cached reads only model cards, and saves seconds of imports.

MODEL_FILE = "model.skops"
#: An encoder model's files (:mod:`themes.encoder`); ``head.json`` marks the folder as one.
ONNX_FILE, ONNX_HEAD = "model.onnx", "head.json"
CARD_JSON = "card.json"
CARD_MD = "card.md"
DEFAULT_POINTER = "DEFAULT"

#: Every type a saved :class:`~themes.classify.ThemeClassifier` (or the optional
#: :class:`~themes.embed.EmbeddingClassifier`) is made of, in any of its settings (logreg or svm,
#: calibrated or not, any feature set). The one list :func:`load_model` trusts;
#: tests/test_registry.py checks that a model in each setting writes nothing outside it.
MODEL_TYPES: frozenset[str] = frozenset({
    "builtins.bool", "builtins.dict", "builtins.float", "builtins.int", "builtins.list",
    "builtins.NoneType", "builtins.str", "builtins.tuple",
    "numpy.bool_", "numpy.dtype", "numpy.float32", "numpy.float64", "numpy.int32", "numpy.int64",
    "numpy.ndarray",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.svm._classes.LinearSVC",
    "themes.classify.ThemeClassifier",
    "themes.classify._scope_analyzer",
    "themes.embed.EmbeddingClassifier",  # the optional comparison model (themes[embeddings])
    "themes.embed._scope_bigrams",
})  # fmt: skip


def model_file_types(file: Path) -> set[str]:
    """Every ``module.name`` a skops file would build, read from its schema without loading it."""
    import skops.io as sio

    with zipfile.ZipFile(file) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set(sio.get_untrusted_types(file=file))
    todo: list[object] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found


def model_kind(folder: Path) -> str | None:
    """``"skops"`` or ``"onnx"`` for a model folder, ``None`` when it holds neither kind."""
    if (folder / MODEL_FILE).is_file():
        return "skops"
    if (folder / ONNX_HEAD).is_file() and (folder / ONNX_FILE).is_file():
        return "onnx"
    return None


@dataclass(frozen=True)
class LoadedModel:
    """A fitted classifier with its version and card."""

    version: str
    model: ThemeClassifier
    card: dict
    path: Path


def save_model(model: ThemeClassifier, card: dict, version: str, models_dir: Path = MODELS_DIR) -> Path:
    """Write the model and its card under ``models_dir/version`` and return that folder."""
    models_dir = config.writable_models_dir(models_dir)  # never into an installed package
    folder = models_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MODEL_FILE + ".tmp")
    # The default schema makes TF-IDF pipelines ~10x larger; deflate keeps them small (STACK-NOTES).
    import skops.io as sio

    sio.dump(model, tmp, compression=zipfile.ZIP_DEFLATED)
    tmp.replace(folder / MODEL_FILE)
    return write_card(folder, card, version)


def write_card(folder: Path, card: dict, version: str) -> Path:
    """Write ``card.json`` and ``card.md`` for the model already in ``folder``; returns the folder."""
    files = [MODEL_FILE] if model_kind(folder) == "skops" else [ONNX_FILE, ONNX_HEAD, "tokenizer.json"]
    size = sum((folder / f).stat().st_size for f in files if (folder / f).is_file())
    card = {**card, "version": version, "model_bytes": size}
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
    (folder / CARD_MD).write_text(render_card(card))
    return folder


def resolve(model: str | Path | None, models_dir: Path = MODELS_DIR) -> Path:
    """The folder of a model given as a path, a version name, or ``None`` for the default."""
    if model is None:
        pointer = models_dir / DEFAULT_POINTER
        if not pointer.exists():
            raise MissingFileError(Errors.E401.format(pointer=pointer))
        model = pointer.read_text().strip()
    path = Path(model)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        path = models_dir / str(model)
    if model_kind(path) is None:
        raise MissingFileError(Errors.E402.format(path=path, file=MODEL_FILE, onnx=ONNX_FILE, head=ONNX_HEAD))
    return path


def load_model(model: str | Path | None = None, models_dir: Path = MODELS_DIR) -> LoadedModel:
    """Load a saved model, refusing any skops file that holds a type outside :data:`MODEL_TYPES`."""
    folder = resolve(model, models_dir)
    card = json.loads((folder / CARD_JSON).read_text()) if (folder / CARD_JSON).exists() else {}
    if model_kind(folder) == "onnx":
        from themes.encoder import OnnxThemeClassifier

        estimator = OnnxThemeClassifier.load(folder, threads=config.CLASSIFY.resolved_threads())
        return LoadedModel(card.get("version", folder.name), estimator, card, folder)
    file = folder / MODEL_FILE
    try:
        types = model_file_types(file)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelError(Errors.E403.format(file=file, detail=one_sentence(exc))) from exc
    unknown = sorted(types - MODEL_TYPES)
    if unknown:
        raise ModelError(Errors.E404.format(file=file, types=", ".join(unknown)))
    import skops.io as sio

    import themes.classify  # noqa: F401 - registers the classes skops will rebuild

    estimator = sio.load(file, trusted=sorted(types))
    return LoadedModel(card.get("version", folder.name), estimator, card, folder)


def set_default(version: str, models_dir: Path = MODELS_DIR) -> None:
    """Point ``models/DEFAULT`` at ``version`` (atomically)."""
    models_dir = config.writable_models_dir(models_dir)  # never into an installed package
    resolve(version, models_dir)
    tmp = models_dir / (DEFAULT_POINTER + ".tmp")
    tmp.write_text(version + "\n")
    tmp.replace(models_dir / DEFAULT_POINTER)


def list_versions(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every saved version, oldest first by folder name."""
    return sorted(p.name for p in models_dir.iterdir() if p.is_dir() and model_kind(p) is not None)


def render_card(card: dict) -> str:
    """The model card as Markdown."""
    lines = [f"# Model card: {card.get('version', '?')}", ""]
    lines.append(card.get("summary", ""))
    lines.append("")
    facts = [
        ("Trained", card.get("trained_at")),
        ("Code version", card.get("code_version")),
        ("Codebook version", card.get("codebook_version")),
        ("Training data hash", card.get("training_data_hash")),
        ("Training passages / documents", f"{card.get('n_train_passages')} / {card.get('n_train_documents')}"),
        ("Held-out passages / documents", f"{card.get('n_heldout_passages')} / {card.get('n_heldout_documents')}"),
        ("Parameters", json.dumps(card.get("params", {}))),
        ("Libraries", json.dumps(card.get("libraries", {}))),
        ("Model file size (bytes)", card.get("model_bytes")),
    ]
    # An encoder's card also says what it was fine-tuned from, how, and which head it uses.
    facts += [(k, card[key]) for k, key in (("Base model", "base_model"), ("Recipe", "recipe"), ("Head", "head"))
              if card.get(key)]
    lines += [f"- **{k}**: {v}" for k, v in facts]
    if card.get("evaluation_sets") or card.get("training_documents"):
        lines += ["", "## Training data and evaluation sets", ""]
        real = card.get("real_training") or {}
        docs = card.get("training_documents") or []
        lines.append(f"- **Training documents**: {len(docs)} ({sum(d.startswith('ofsted:') for d in docs)} real "
                     f"Ofsted reports; the rest written by the team); real sets: {', '.join(real.get('sets', [])) or 'none'}")
        if card.get("never_trained_on"):
            lines.append(f"- **Never trained on**: {card['never_trained_on']}")
        lines += [f"- **Evaluation, {k}**: {v}" for k, v in (card.get("evaluation_sets") or {}).items()]
    lines += ["", "## Thresholds (chosen on out-of-fold predictions to maximise F1)", ""]
    lines += [f"- `{t}`: {v}" for t, v in card.get("thresholds", {}).items()]
    for key, title in (
        ("cv_scores_md", "Cross-validated scores (grouped by document), training split"),
        ("comparison_md", "Held-out evaluation with baselines"),
        ("learning_curve_md", "Learning curve (held-out macro-F1 over core themes)"),
    ):
        if card.get(key):
            lines += ["", f"## {title}", "", card[key]]
    if card.get("document_evaluation"):
        lines += ["", "## Document-level evaluation (held-out documents; the corrected shares' rates)", "",
                  document_evaluation_markdown(card["document_evaluation"])]
    lines += ["", "## Intended use and limits", "", card.get("limits", "")]
    return "\n".join(lines) + "\n"


HISTORY_FILE = "HISTORY.jsonl"


def default_version(models_dir: Path = MODELS_DIR) -> str | None:
    """The version ``models/DEFAULT`` points at, or ``None`` when there is none."""
    pointer = Path(models_dir) / DEFAULT_POINTER
    return (pointer.read_text().strip() or None) if pointer.exists() else None


def history(models_dir: Path = MODELS_DIR) -> list[dict]:
    """Every promotion and rollback, oldest first (``models/HISTORY.jsonl``)."""
    path = Path(models_dir) / HISTORY_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: the pointer file itself is authoritative
    return out


def _log(models_dir: Path, action: str, before: str | None, after: str, reason: str, chosen: bool = False) -> None:
    entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "action": action, "from": before,
             "to": after, "reason": reason}
    if chosen:
        entry["chosen"] = True  # a rollback to a named version: it adds to the chain like a promotion
    with open(Path(models_dir) / HISTORY_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()


def promote(version: str, models_dir: Path = MODELS_DIR, reason: str = "") -> str | None:
    """Make ``version`` the default and log it; returns the version it replaced."""
    before = default_version(models_dir)
    set_default(version, models_dir)
    _log(Path(models_dir), "promote", before, version, reason)
    return before


def _default_chain(models_dir: Path) -> list[str]:
    """The stack of defaults, replayed from the history: promotions push, rollbacks pop."""
    stack: list[str] = []
    for entry in history(models_dir):
        if stack and entry.get("from") and stack[-1] != entry["from"]:
            stack.append(entry["from"])  # DEFAULT was changed outside promote/rollback in between
        if entry.get("action") == "promote" or entry.get("chosen"):
            if not stack and entry.get("from"):
                stack.append(entry["from"])
            stack.append(entry["to"])
        elif entry.get("action") == "rollback" and len(stack) >= 2:
            stack.pop()
    current = default_version(models_dir)
    if current and (not stack or stack[-1] != current):
        stack.append(current)  # DEFAULT was set outside promote (e.g. `themes train --make-default`)
    return stack


def rollback(models_dir: Path = MODELS_DIR, to: str | None = None, reason: str = "") -> str:
    """Point the default back at the model it replaced (or at ``to``); returns the new default."""
    models_dir = Path(models_dir)
    current = default_version(models_dir)
    if to is None:
        stack = _default_chain(models_dir)
        if len(stack) < 2:
            raise ModelError(Errors.E405.format(models_dir=models_dir, history=HISTORY_FILE))
        to = stack[-2]
        set_default(to, models_dir)
        _log(models_dir, "rollback", current, to, reason)
        return to
    set_default(to, models_dir)
    _log(models_dir, "rollback", current, to, reason, chosen=True)
    return to


def compare_cards(a: str | Path | None, b: str | Path, models_dir: Path = MODELS_DIR) -> pd.DataFrame:
    """Two models' cards side by side: held-out core macro-F1 and per-theme F1, thresholds, data.

    The held-out figures are those each card recorded; they are comparable when both models were
    trained with the same held-out rule on the same team-written passages.
    """
    def facts(model: str | Path | None) -> tuple[str, dict]:
        if model is None:
            return "none", {}
        folder = resolve(model, models_dir)
        card = json.loads((folder / CARD_JSON).read_text()) if (folder / CARD_JSON).exists() else {}
        row = next((r for r in card.get("comparison", []) if r.get("system") == "model"
                    and r.get("split") == "heldout"), {})
        out: dict = {"macro_f1_core (held-out)": row.get("macro_f1_core")}
        out.update({f"f1 {k[3:]}": v for k, v in row.items() if k.startswith("f1_")})
        out.update({f"threshold {k}": v for k, v in card.get("thresholds", {}).items()})
        out.update({"training passages": card.get("n_train_passages"),
                    "training data hash": str(card.get("training_data_hash", ""))[:12],
                    "label decisions": card.get("n_label_decisions", 0),
                    "label decisions hash": str(card.get("label_decisions_hash") or "")[:12],
                    "trained at": card.get("trained_at")})
        return card.get("version", folder.name), out

    name_a, facts_a = facts(a)
    name_b, facts_b = facts(b)
    if name_a == name_b:
        name_a, name_b = f"{name_a} (a)", f"{name_b} (b)"
    order = list(dict.fromkeys([*facts_b, *facts_a]))
    table = pd.DataFrame({name_a: [facts_a.get(k) for k in order], name_b: [facts_b.get(k) for k in order]},
                         index=order, dtype=object)
    numeric = pd.to_numeric(table[name_b], errors="coerce") - pd.to_numeric(table[name_a], errors="coerce")
    table["change"] = numeric.round(3)
    table.index.name = "measure"
    return table.reset_index()


class LazyModel:
    """A model's version and card now, its fitted classifier only when first used.

    Loading the classifier takes seconds; a re-run whose predictions are all cached needs only the
    version, the card's theme list and its error counts.
    """

    def __init__(self, model: str | Path | None = None, models_dir: Path = MODELS_DIR) -> None:
        self.path = resolve(model, models_dir)
        card_file = self.path / CARD_JSON
        self.card: dict = json.loads(card_file.read_text()) if card_file.exists() else {}
        self.version: str = self.card.get("version", self.path.name)
        self._loaded: LoadedModel | None = None
        self._loading: threading.Thread | None = None
        self._error: BaseException | None = None

    def prefetch(self) -> None:
        """Start loading the classifier in a background thread (a run that reads new documents
        loads it while its reader processes work); :attr:`model` waits for it."""
        if self._loaded is not None or self._loading is not None:
            return

        def load() -> None:
            try:
                self._loaded = load_model(self.path)
            except BaseException as exc:  # noqa: BLE001 - raised again where the model is used
                self._error = exc

        self._loading = threading.Thread(target=load, name="themes-model-load", daemon=True)
        self._loading.start()

    def release(self) -> None:
        """Drop the loaded classifier (the encoder default and its keyword features hold about
        150 MB once they have run; loaded again if used again): the run's aggregation and report
        do not need it."""
        if self._loading is not None:
            self._loading.join()
            self._loading, self._error = None, None
        self._loaded = None

    @property
    def model(self) -> ThemeClassifier:
        if self._loading is not None:
            self._loading.join()
            self._loading = None
            if self._error is not None:
                error, self._error = self._error, None
                raise error
        if self._loaded is None:
            self._loaded = load_model(self.path)
        return self._loaded.model

    @property
    def themes(self) -> list[str]:
        return list(self.card["themes"]) if self.card.get("themes") else list(self.model.themes_)
