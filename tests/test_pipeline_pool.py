"""The flow reads through ``ingest.ingest_many``'s reader pool: its timeout, recycling and workers.

The pool's own tests are in ``test_ingest_pool.py``; these check that the pipeline (the path users
take) gets the same behaviour. Runs use ``prefect=False``: the flow calls the same ``run_pipeline``.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_samples
from test_ingest_pool import _slow_ingest

from flows import local, pipeline
from themes import ingest
from themes.config import INGEST, SAMPLE_DIR
from themes.ingest import pool

pytestmark = pytest.mark.slow

FILES = ("2019_northmere_scr_child-a.pdf", "2020_eastwold_lcspr_child-b.pdf")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return copy_samples(tmp_path / "corpus", FILES)


@pytest.fixture
def pool_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The flow's calls to the reader pool: the files and worker count of each."""
    calls: list[dict] = []
    real = ingest.ingest_many

    def spy(paths, workers=1, settings=INGEST, func=ingest.ingest_pdf):
        paths = list(paths)
        calls.append({"files": [Path(p).name for p in paths], "workers": workers})
        return real(paths, workers=workers, settings=settings, func=func)

    monkeypatch.setattr(ingest, "ingest_many", spy)
    return calls


def test_pipeline_pool_reads_with_the_requested_workers_default_cores(corpus, tmp_path, pool_calls):
    pipeline.run(str(corpus), str(tmp_path / "a"), workers=2, prefect=False)
    pipeline.run(str(corpus), str(tmp_path / "b"), prefect=False)
    assert [c["workers"] for c in pool_calls] == [2, os.cpu_count()]
    assert all(sorted(c["files"]) == sorted(FILES) for c in pool_calls)


def test_pipeline_pool_hung_file_times_out_and_is_read_again_next_run(corpus, tmp_path, monkeypatch):
    shutil.copy2(SAMPLE_DIR / "2021_ashby-fen_rapid-review_child-c.pdf", corpus / "slow.pdf")
    monkeypatch.setattr(local, "INGEST", replace(INGEST, timeout_s=3.0))  # where the run reads its settings
    monkeypatch.setattr(ingest, "ingest_many", functools.partial(ingest.ingest_many, func=_slow_ingest))
    out = tmp_path / "out"
    pipeline.run(str(corpus), str(out), workers=2, prefect=False)
    documents = pd.read_csv(out / "documents.csv").set_index("file")
    assert documents.loc["slow.pdf", "error_kind"] == "timeout"
    assert (documents.drop(index="slow.pdf")["status"] == "ok").all()
    again = pipeline.run(str(corpus), str(out), workers=2, prefect=False)
    assert again["pages_read"] == 0  # the hung file is tried again; the others come from the cache
    assert pd.read_csv(out / "documents.csv").set_index("file").loc["slow.pdf", "error_kind"] == "timeout"


def test_pipeline_pool_recycles_readers_after_their_quota(corpus, tmp_path, monkeypatch):
    started: list[int] = []
    real_init = pool._Worker.__init__

    def counting_init(self):
        real_init(self)
        started.append(self.proc.pid)

    monkeypatch.setattr(pool._Worker, "__init__", counting_init)
    monkeypatch.setattr(pool, "_FILES_PER_WORKER", 1)
    result = pipeline.run(str(corpus), str(tmp_path / "out"), workers=1, prefect=False)
    assert result["documents_ok"] == len(FILES)
    assert len(set(started)) == len(FILES), "each reader is replaced after its one file"
