"""Shared fixtures. Prefect runs locally, quietly, with its database in a temporary folder."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Before anything imports prefect: a private home for the tests' Prefect database; the other
# defaults (no telemetry, which can lock SQLite under pytest; start-up timeout) are the project's.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="themes-prefect-"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from themes.config import apply_prefect_environment, shared_dir
from themes.labels import Decision

apply_prefect_environment()  # importing themes did it already; said here so no test relies on luck


@pytest.fixture(scope="session")
def shared():
    """The ../shared folder; skips the test when it is absent (a user's fresh clone)."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is absent: real-corpus checks run in CI only.")
    return path


#: Stands in for OCRmyPDF: checks it was asked to OCR and writes a PDF that has text, or fails.
_FAKE_OCRMYPDF = """#!{python}
import os, shutil, sys
args = sys.argv[1:]
if os.environ.get("FAKE_OCR_FAIL"):
    sys.stderr.write("ERROR - tesseract: language 'eng' not installed\\n")
    sys.exit(3)
assert "--force-ocr" in args and args[-2].endswith(".pdf"), args
shutil.copyfile(os.environ["FAKE_OCR_RESULT"], args[-1])
"""


@pytest.fixture
def fake_ocrmypdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ocrmypdf`` first on PATH that turns any scan into tests/data/numbered.pdf."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ocrmypdf"
    exe.write_text(_FAKE_OCRMYPDF.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_OCR_RESULT", str(Path(__file__).parent / "data" / "numbered.pdf"))
    return exe


def copy_samples(folder: Path, names: tuple[str, ...]) -> Path:
    """A corpus folder holding copies of the named sample PDFs (tests must not touch the originals)."""
    import shutil

    from themes.config import SAMPLE_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(SAMPLE_DIR / name, folder / name)
    return folder


#: Toy vocabulary for the ONNX encoder fixture: risk words point one way, agreement words the other.
TOY_VOCAB = ["[PAD]", "[UNK]", "risk", "assessment", "written", "agreement", "signed", "the", "was", "a", "baby"]
TOY_VECTORS = {"risk": (1.0, 0.0), "assessment": (1.0, 0.0), "written": (0.0, 1.0), "agreement": (0.0, 1.0),
               "signed": (0.0, 1.0)}


@pytest.fixture
def toy_onnx_model(tmp_path: Path) -> Path:
    """A themes.encoder model folder: a 2-d bag-of-words ONNX encoder, a word-level tokenizer, a JSON head.

    Skips unless onnx, onnxruntime and tokenizers are installed (the ``train`` extra).
    """
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    tokenizers = pytest.importorskip("tokenizers")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from themes.encoder import save_head

    table = np.array([TOY_VECTORS.get(w, (0.0, 0.0)) for w in TOY_VOCAB], dtype=np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["vectors"]),  # (b, s, 2)
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
        helper.make_node("Mul", ["vectors", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "tokens_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "tokens_axis"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "toy_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([-1], dtype=np.int64), "last"),
         numpy_helper.from_array(np.array([1], dtype=np.int64), "tokens_axis")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = tmp_path / "toy-encoder"
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))

    tokenizer = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(TOY_VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = tokenizers.normalizers.Lowercase()
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    # Logit = share of the passage's words pointing at the theme; Platt a=20, b=-4: over 0.2 tags it.
    save_head(folder, ["weak_risk_assessment", "written_agreements"], weight=np.eye(2), bias=np.zeros(2),
              calibration_a=np.full(2, 20.0), calibration_b=np.full(2, -4.0), thresholds=np.full(2, 0.5),
              max_length=16, card={"summary": "toy model for tests"})
    return folder


#: Set by .ci/run: tests of features that need a system program (a browser, Tesseract) must run in CI.
REQUIRE_PROGRAMS = os.environ.get("THEMES_REQUIRE_PROGRAMS", "") not in ("", "0")


def require_program(*names: str) -> dict[str, str]:
    """The paths of the named programs (found on PATH or beside this Python); skips when one is missing.

    Under ``THEMES_REQUIRE_PROGRAMS=1`` (set by .ci/run, which installs them) a missing program fails
    the test instead, so the feature it covers cannot go untested in CI without anyone noticing.
    """
    import shutil

    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    found = {name: shutil.which(name, path=search) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        message = f"{', '.join(missing)} not installed (.ci/run installs them)"
        if REQUIRE_PROGRAMS:
            pytest.fail(f"{message}, but THEMES_REQUIRE_PROGRAMS is set: the test must run here.")
        pytest.skip(message)
    return {name: str(path) for name, path in found.items()}


# -- label decisions (test_labels, test_exchange, test_agreement) --------------------------------

def decision(passage="p1", theme="optimism_bias", value="accept", annotator="alice", t=0, **kw) -> Decision:
    """A decision at second ``t`` of a fixed day (so ordering is explicit)."""
    return Decision(
        passage_id=passage, doc_id=kw.pop("doc_id", "doc-a"), page=kw.pop("page", 3), char_start=kw.pop("char_start", 10),
        char_end=kw.pop("char_end", 60), text=kw.pop("text", f"Mother's account of {passage} was accepted at face value."),
        theme=theme, value=value, annotator=annotator, time=f"2026-11-23T10:00:{t:02d}.000000+00:00",
        model_version=kw.pop("model_version", "2026-11-23-abc"), score=kw.pop("score", 0.61), **kw,
    )


@pytest.fixture
def mixed() -> list[Decision]:
    """Two annotators, a changed mind, an accented name, a note, a missing page, and a second theme."""
    return [
        decision("p1", value="reject", t=1),
        decision("p1", value="accept", t=5),  # alice changes her mind: latest wins
        decision("p1", annotator="bo", value="reject", t=3),
        decision("p2", "written_agreements", annotator="bo", t=2, text="A “safety plan” was signed by Zoë's mother.",
                 note="clear case", page=None, char_start=None, char_end=None, score=None, model_version=None),
        decision("p2", "weak_risk_assessment", value="reject", t=4, score=0.123456789012),
    ]
