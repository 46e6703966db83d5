"""Predictions are cached per (document, model version, codebook): re-runs classify nothing.

These runs use ``prefect=False`` (the same stages without a flow) to stay quick; the flow's own
re-runs are covered in ``test_incremental.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_samples

from flows.pipeline import run
from themes.config import MODELS_DIR
from themes.registry import resolve

pytestmark = pytest.mark.slow

FILES = ("2019_northmere_scr_child-a.pdf", "2020_eastwold_lcspr_child-b.pdf",
         "2021_ashby-fen_rapid-review_child-c.pdf")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return copy_samples(tmp_path / "corpus", FILES)


def _renamed_default_model(tmp_path: Path, version: str) -> Path:
    """A copy of the default model under another version (what retraining produces)."""
    folder = tmp_path / "models" / version
    shutil.copytree(resolve(None, MODELS_DIR), folder)
    card = json.loads((folder / "card.json").read_text())
    card["version"] = version
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def test_prediction_cache_rerun_with_same_model_classifies_zero_passages(corpus, tmp_path):
    out = tmp_path / "out"
    first = run(str(corpus), str(out), workers=2, prefect=False)
    assert first["passages_classified"] == first["passages"] > 0
    before = pd.read_parquet(out / "predictions.parquet")
    again = run(str(corpus), str(out), workers=2, prefect=False)
    assert again["passages_classified"] == 0
    assert again["pages_read"] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions.parquet"), before)
    assert (out / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")


def test_prediction_cache_other_model_reclassifies_every_passage(corpus, tmp_path):
    out = tmp_path / "out"
    first = run(str(corpus), str(out), workers=2, prefect=False)
    other = _renamed_default_model(tmp_path, "2099-01-01-00000000")
    second = run(str(corpus), str(out), model=str(other), workers=2, prefect=False)
    assert second["passages_classified"] == second["passages"] == first["passages"]
    assert second["pages_read"] == 0  # the ingest cache does not depend on the model
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["model_version"]) == {"2099-01-01-00000000"}


def test_prediction_cache_new_scoring_revision_reclassifies_every_passage(corpus, tmp_path, monkeypatch):
    """Predictions cached before the model scored passages differently (batch scoring) are not reused."""
    from themes import store

    out = tmp_path / "out"
    current = store.SCORING_REVISION
    monkeypatch.setattr(store, "SCORING_REVISION", "scores-1")
    first = run(str(corpus), str(out), workers=2, prefect=False)
    monkeypatch.setattr(store, "SCORING_REVISION", current)
    second = run(str(corpus), str(out), workers=2, prefect=False)
    assert second["passages_classified"] == second["passages"] == first["passages"] > 0
    assert run(str(corpus), str(out), workers=2, prefect=False)["passages_classified"] == 0


_KILL_DURING_CLASSIFICATION = """
import os, signal, sys
from themes import store
from flows.pipeline import run
real, saved = store.save_cached_predictions, []
def save_then_die(*args, **kwargs):
    real(*args, **kwargs)
    saved.append(1)
    if len(saved) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 from outside, mid-classification
store.save_cached_predictions = save_then_die
run(sys.argv[1], sys.argv[2], workers=2, prefect=False)
"""


def test_prediction_cache_run_killed_during_classification_completes_without_duplicates(
        corpus, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", _KILL_DURING_CLASSIFICATION, str(corpus), str(out),
                             "1"], check=False, env=env, capture_output=True, timeout=600)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not (out / "predictions.parquet").exists()
    cached = list((out / "cache").glob("predictions-*/*/*.json"))
    assert len(cached) == 1

    result = run(str(corpus), str(out), workers=2, prefect=False)
    documents = pd.read_csv(out / "documents.csv")
    passages = pd.read_parquet(out / "passages.parquet")
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert sorted(documents["file"]) == sorted(FILES) and documents["doc_id"].is_unique
    assert passages["passage_id"].is_unique
    assert not predictions.duplicated(["passage_id", "theme"]).any()
    assert set(predictions["passage_id"]) == set(passages["passage_id"])
    # The document finished before the kill is not classified again.
    first_doc = json.loads(cached[0].read_text())["scores"]
    assert result["passages_classified"] == result["passages"] - len(first_doc)


def test_prediction_cache_unchanged_rerun_keeps_outputs_and_rebuilds_a_missing_one(corpus, tmp_path):
    out = tmp_path / "out"
    first = run(str(corpus), str(out), workers=2, prefect=False)
    again = run(str(corpus), str(out), workers=2, prefect=False)
    assert again["outputs_kept"]
    assert [(r["theme"], r["n_present"]) for r in again["prevalence"]] == \
        [(r["theme"], r["n_present"]) for r in first["prevalence"]]
    (out / "report.html").unlink()
    third = run(str(corpus), str(out), workers=2, prefect=False)
    assert not third["outputs_kept"] and third["passages_classified"] == 0
    assert (out / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
    (corpus / FILES[0]).rename(corpus / "renamed.pdf")
    fourth = run(str(corpus), str(out), workers=2, prefect=False)
    assert not fourth["outputs_kept"]
    assert "renamed.pdf" in set(pd.read_csv(out / "documents.csv")["file"])


def test_prediction_cache_a_copied_file_is_one_document_in_the_counts(corpus, tmp_path):
    shutil.copy2(corpus / FILES[0], corpus / "copy of the first.pdf")
    out = tmp_path / "out"
    result = run(str(corpus), str(out), workers=2, prefect=False)
    documents = pd.read_csv(out / "documents.csv")
    assert len(documents) == len(FILES) + 1  # every input file keeps its row
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert not predictions.duplicated(["passage_id", "theme"]).any()
    assert result["passages"] == predictions["passage_id"].nunique()
    for row in result["prevalence"]:
        assert row["n_documents"] == len(FILES)
        assert 0 <= row["ci_low"] <= row["share"] <= row["ci_high"] <= 1


def test_prediction_cache_changed_segment_settings_reclassify_the_new_passages(corpus, tmp_path, monkeypatch):
    import flows.local as pipeline_module
    from themes.config import SegmentSettings

    out = tmp_path / "out"
    first = run(str(corpus), str(out), workers=2, prefect=False)
    monkeypatch.setattr(pipeline_module, "SEGMENT", SegmentSettings(max_chars=200))
    second = run(str(corpus), str(out), workers=2, prefect=False)
    assert second["passages"] != first["passages"]  # shorter passages: other passages
    assert second["passages_classified"] == second["passages"]
    passages = pd.read_parquet(out / "passages.parquet")
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["passage_id"]) == set(passages["passage_id"])
