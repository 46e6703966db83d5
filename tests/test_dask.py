"""Scale-out: the pipeline on a local Dask cluster (2 worker processes, loopback) gives the same
documents, passages and predictions as the default thread runner on the same corpus."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.testing.utilities import prefect_test_harness
from prefect_dask import DaskTaskRunner

from flows.pipeline import run, task_runner_for
from themes import store
from themes.config import MODELS_DIR, SAMPLE_DIR


def test_dask_runner_choice_follows_the_options():
    assert isinstance(task_runner_for(3), ThreadPoolTaskRunner)
    local = task_runner_for(2, dask=True)
    assert isinstance(local, DaskTaskRunner)
    assert local.cluster_kwargs["n_workers"] == 2 and local.cluster_kwargs["host"] == "127.0.0.1"
    remote = task_runner_for(2, dask=True, dask_address="tcp://127.0.0.1:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"


@pytest.mark.slow
def test_dask_results_equal_the_thread_runner(tmp_path):
    if not (MODELS_DIR / "DEFAULT").exists():
        pytest.fail("models/DEFAULT is missing: the project must ship a trained default model.")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pdfs = sorted(SAMPLE_DIR.glob("*.pdf"))[:3]
    for pdf in pdfs:
        shutil.copy(pdf, corpus)
    # Separate outputs, so each has its own cache and the Dask workers really read every PDF.
    threads_out, dask_out = tmp_path / "threads", tmp_path / "dask"
    # The default 30 s start-up limit is too short on a busy 2-core machine (conftest sets 120 s).
    with prefect_test_harness(server_startup_timeout=None):
        threads = run(str(corpus), str(threads_out), workers=2)
        on_dask = run(str(corpus), str(dask_out), workers=2, dask=True)

    assert on_dask["documents_ok"] == threads["documents_ok"] == len(pdfs)
    for name in ("documents.csv", "prevalence.csv"):
        assert_frame_equal(pd.read_csv(dask_out / name), pd.read_csv(threads_out / name), obj=name)
    for name in ("passages.parquet", "predictions.parquet"):
        assert_frame_equal(pd.read_parquet(dask_out / name), pd.read_parquet(threads_out / name), obj=name)
    ingest_cache = dask_out / "cache" / store.cache_key()
    assert len(list(ingest_cache.glob("*.json"))) == len(pdfs), "the Dask workers fill the cache"
