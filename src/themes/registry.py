"""Versioned models on disk: ``models/<version>/model.skops`` plus ``card.json`` and ``card.md``.

``models/DEFAULT`` names the version used when no model is given. Models are saved with skops
(never pickle) and loaded only when every type in the file is one we trust: scikit-learn, numpy,
scipy, or this package's own classes.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import skops.io as sio

from themes.classify import ThemeClassifier
from themes.config import MODELS_DIR

MODEL_FILE = "model.skops"
CARD_JSON = "card.json"
CARD_MD = "card.md"
DEFAULT_POINTER = "DEFAULT"

_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "themes.", "builtins.", "collections.")


@dataclass(frozen=True)
class LoadedModel:
    """A fitted classifier with its version and card."""

    version: str
    model: ThemeClassifier
    card: dict
    path: Path


def save_model(model: ThemeClassifier, card: dict, version: str, models_dir: Path = MODELS_DIR) -> Path:
    """Write the model and its card under ``models_dir/version`` and return that folder."""
    folder = models_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MODEL_FILE + ".tmp")
    # The default schema makes TF-IDF pipelines ~10x larger; deflate keeps them small (STACK-NOTES).
    sio.dump(model, tmp, compression=zipfile.ZIP_DEFLATED)
    tmp.replace(folder / MODEL_FILE)
    card = {**card, "version": version, "model_bytes": (folder / MODEL_FILE).stat().st_size}
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
    (folder / CARD_MD).write_text(render_card(card))
    return folder


def resolve(model: str | Path | None, models_dir: Path = MODELS_DIR) -> Path:
    """The folder of a model given as a path, a version name, or ``None`` for the default."""
    if model is None:
        pointer = models_dir / DEFAULT_POINTER
        if not pointer.exists():
            raise FileNotFoundError(
                f"No default model: {pointer} is missing; train one with `themes train`."
            )
        model = pointer.read_text().strip()
    path = Path(model)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        path = models_dir / str(model)
    if not (path / MODEL_FILE).is_file():
        raise FileNotFoundError(f"No model at {path}: expected {MODEL_FILE} there.")
    return path


def load_model(model: str | Path | None = None, models_dir: Path = MODELS_DIR) -> LoadedModel:
    """Load a saved model, refusing any type outside scikit-learn, numpy, scipy and ``themes``."""
    folder = resolve(model, models_dir)
    file = folder / MODEL_FILE
    untrusted = sio.get_untrusted_types(file=file)
    unknown = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if unknown:
        raise ValueError(f"Refusing to load {file}: it holds types we did not write: {unknown}.")
    estimator = sio.load(file, trusted=untrusted)
    card = json.loads((folder / CARD_JSON).read_text()) if (folder / CARD_JSON).exists() else {}
    return LoadedModel(card.get("version", folder.name), estimator, card, folder)


def set_default(version: str, models_dir: Path = MODELS_DIR) -> None:
    """Point ``models/DEFAULT`` at ``version`` (atomically)."""
    resolve(version, models_dir)
    tmp = models_dir / (DEFAULT_POINTER + ".tmp")
    tmp.write_text(version + "\n")
    tmp.replace(models_dir / DEFAULT_POINTER)


def list_versions(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every saved version, oldest first by folder name."""
    return sorted(p.name for p in models_dir.iterdir() if (p / MODEL_FILE).is_file())


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
    lines += [f"- **{k}**: {v}" for k, v in facts]
    lines += ["", "## Thresholds (chosen on out-of-fold predictions to maximise F1)", ""]
    lines += [f"- `{t}`: {v}" for t, v in card.get("thresholds", {}).items()]
    for key, title in (
        ("cv_scores_md", "Cross-validated scores (grouped by document), training split"),
        ("comparison_md", "Held-out evaluation with baselines"),
        ("learning_curve_md", "Learning curve (held-out macro-F1 over core themes)"),
    ):
        if card.get(key):
            lines += ["", f"## {title}", "", card[key]]
    lines += ["", "## Intended use and limits", "", card.get("limits", "")]
    return "\n".join(lines) + "\n"
