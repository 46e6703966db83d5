"""The three loop notebooks run headless (nbclient) against a pipeline run of the sample corpus.

A small model is trained into a temporary folder, the pipeline flow runs over ``corpus/sample``
with it, and each notebook executes with its parameters set through ``THEMES_*`` environment
variables: notebook 01 and 02 press the review buttons ten times each, notebook 03 retrains
through the Prefect flow and must leave a new model version with its card. Nothing is written to
the project's ``models/`` or ``corpus/labels/``.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import nbformat
import pytest

from themes import labels as L
from themes import registry
from themes.config import CORE_THEMES, LABELS_DIR, PROJECT_ROOT, SAMPLE_DIR
from themes.dataset import is_heldout, load_labels

NOTEBOOKS = PROJECT_ROOT / "notebooks"
NAMES = ("01-review-tagged-passages", "02-label-next", "03-retrain-and-compare")
FAST = {"params": {"use_chars": False}, "themes": list(CORE_THEMES), "n_splits": 3, "with_real": False}


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_import_only_from_themes(name):
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    modules = set()
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                modules.add((node.module or "").split(".")[0])
    assert modules == {"themes"}, modules
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), "commit notebooks without outputs"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A small model, a pipeline run of the sample corpus with it, and THEMES_* set for the kernels."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import run as run_pipeline
    from themes import retrain as retraining

    root = tmp_path_factory.mktemp("notebooks")
    labels_dir, models_dir, store, out = root / "labels", root / "models", root / "store", root / "out"
    labels_dir.mkdir()
    frame = load_labels(LABELS_DIR)
    docs = sorted(frame["doc"].unique())
    keep = [d for d in docs if not is_heldout(d)][::3][:12] + [d for d in docs if is_heldout(d)][:4]
    frame[frame["doc"].isin(keep)][["id", "text", "labels", "doc", "kind", "section"]].to_json(
        labels_dir / "passages-small.jsonl", orient="records", lines=True, force_ascii=False)
    first = retraining.retrain(labels_dir, store, models_dir, **FAST)  # no champion yet: becomes the default
    with prefect_test_harness(server_startup_timeout=180), pytest.MonkeyPatch.context() as env:
        run_pipeline(str(SAMPLE_DIR), str(out), str(models_dir / first.version), workers=2)
        for key, value in {"THEMES_OUT": out, "THEMES_MODELS_DIR": models_dir, "THEMES_LABELS_DIR": labels_dir,
                           "THEMES_DECISIONS_DIR": store, "THEMES_ANNOTATOR": "nb-tester",
                           "THEMES_DEMO_DECISIONS": 10, "THEMES_FAST": 1, "THEMES_USE_FLOW": 1,
                           "THEMES_MARGIN": 0.0, "PREFECT_API_URL": PREFECT_API_URL.value(),
                           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OMP_NUM_THREADS": 1}.items():
            env.setenv(key, str(value))
        yield {"out": out, "models": models_dir, "store": store, "first": first.version, "root": root}


def execute(name: str, root: Path) -> tuple[nbformat.NotebookNode, float]:
    """Run a notebook top to bottom in a fresh kernel; fail on the first cell that raises."""
    from nbclient import NotebookClient

    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    started = time.perf_counter()
    NotebookClient(book, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.1f} s")
    return book, seconds


def outputs(book: nbformat.NotebookNode) -> str:
    texts = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") + json.dumps(out.get("data", {})))
    return "\n".join(texts)


@pytest.mark.slow
def test_notebooks_01_review_writes_ten_decisions_to_the_store(workspace):
    before = len(L.load_decisions(workspace["store"]))
    book, _ = execute(NAMES[0], workspace["root"])
    decisions = L.load_decisions(workspace["store"])
    mine = decisions.iloc[before:]
    assert len(mine) == 10 and set(mine["annotator"]) == {"nb-tester"}
    assert set(mine["model_version"]) == {workspace["first"]} and mine["text"].str.len().gt(0).all()
    assert mine["page"].notna().all() and mine["score"].notna().all()
    text = outputs(book)
    assert "application/vnd.jupyter.widget-view+json" in text  # the review widget was displayed
    assert "10 decision(s) this session" in text


@pytest.mark.slow
def test_notebooks_02_label_next_queues_only_undecided_pairs(workspace):
    earlier = L.load_decisions(workspace["store"])
    book, _ = execute(NAMES[1], workspace["root"])
    decisions = L.load_decisions(workspace["store"])
    new = decisions.iloc[len(earlier):]
    assert len(new) == 10
    assert not set(zip(new["passage_id"], new["theme"])) & set(zip(earlier["passage_id"], earlier["theme"]))
    assert "uncertainty" in outputs(book)


@pytest.mark.slow
def test_notebooks_03_retrain_leaves_a_new_version_with_its_card(workspace):
    models = workspace["models"]
    versions = set(registry.list_versions(models))
    decisions = L.load_decisions(workspace["store"])
    book, _ = execute(NAMES[2], workspace["root"])
    new = set(registry.list_versions(models)) - versions
    assert len(new) == 1
    version = new.pop()
    card = json.loads((models / version / "card.json").read_text())
    assert card["label_decisions_hash"] == L.decisions_hash(decisions)
    assert card["n_label_decisions"] == len(decisions)
    assert card["challenge"]["champion"] == workspace["first"]
    assert (registry.default_version(models) == version) is card["challenge"]["promote"]
    assert (models / version / "card.md").is_file()
    text = outputs(book)
    assert "challenger" in text and "change" in text and version in text
