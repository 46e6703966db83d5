"""What every notebook starts from: where it reads and writes, and a way to show HTML.

The notebooks in ``notebooks/`` import only from ``themes``: :class:`NotebookParams` for their
folders and settings, :mod:`themes.review`, :mod:`themes.active` and :mod:`themes.retrain` for the
work, and :func:`show` to display a table or an HTML card.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from getpass import getuser
from pathlib import Path
from typing import Any

from themes.config import CORE_THEMES, DEFAULT_OUT_DIR, LABELS_DIR, MODELS_DIR
from themes.errors import ArgumentError, Errors
from themes.labels import DECISIONS_DIR


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
                raise ArgumentError(Errors.E013.format(name="NotebookParams", key=key, allowed=sorted(values)))
            values[key] = Path(value).expanduser() if key.endswith(("_dir", "out")) else value
        return cls(**values)

    def retrain_params(self) -> dict:
        """Keyword arguments for :func:`themes.retrain.retrain`: a small model when ``fast`` is set."""
        if self.fast:
            return {"params": {"use_chars": False}, "themes": list(CORE_THEMES), "n_splits": 3,
                    "with_real": False}
        return {}


def _login() -> str:
    try:
        return getuser()
    except (KeyError, OSError):
        return "reviewer"


def show(obj: Any) -> None:
    """Display HTML text or any object in a notebook (plain print outside one)."""
    try:
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        print(obj)
        return
    display(HTML(obj) if isinstance(obj, str) else obj)
