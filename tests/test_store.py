
import pandas as pd
import pytest

from themes import store
from themes.types import Document, Paragraph, Passage


def _doc_and_passages(doc_id="a" * 64):
    para = Paragraph(doc_id, 2, "The plan was not reviewed.", (1.0, 2.0, 3.0, 4.0), 0, 26)
    doc = Document(doc_id=doc_id, file="old-name.pdf", pages=3, title="T", area="Northmere", year=2021,
                   review_type="LCSPR", paragraphs=[para])
    passages = [Passage(f"{doc_id[:16]}:0", doc_id, 2, 0, 26, (1.0, 2.0, 3.0, 4.0), para.text, "analysis")]
    return doc, passages


def test_store_cache_round_trip_relabels_renamed_file(tmp_path):
    doc, passages = _doc_and_passages()
    store.save_cached(tmp_path, doc, passages)
    cached_doc, cached_passages = store.load_cached(tmp_path, doc.doc_id, "new-name.pdf")
    assert cached_doc.file == "new-name.pdf"
    assert (cached_doc.area, cached_doc.year, cached_doc.pages) == ("Northmere", 2021, 3)
    assert cached_passages == passages


def test_store_documents_csv_lists_bad_pages_for_excel(tmp_path):
    # A partly readable file says which pages are missing from its counts, in a cell Excel shows as text.
    doc, _ = _doc_and_passages()
    doc.bad_pages = [3, 7]
    whole, _ = _doc_and_passages("c" * 64)
    frame = store.documents_frame([doc, whole])
    frame.to_csv(tmp_path / "documents.csv", index=False)
    back = pd.read_csv(tmp_path / "documents.csv", dtype={"bad_pages": str}, keep_default_na=False)
    assert list(back["bad_pages"]) == ["3;7", ""]
    assert list(back["ocr"]) == [False, False]


def test_store_timeouts_are_not_cached(tmp_path):
    doc = Document(doc_id="b" * 64, file="slow.pdf", status="error", error_kind="timeout", error="slow")
    store.save_cached(tmp_path, doc, [])
    assert store.load_cached(tmp_path, doc.doc_id, "slow.pdf") is None


def test_store_corrupt_cache_entry_is_rebuilt_not_fatal(tmp_path):
    doc, passages = _doc_and_passages()
    store.save_cached(tmp_path, doc, passages)
    store.cache_path(tmp_path, doc.doc_id).write_text("{half a file")
    assert store.load_cached(tmp_path, doc.doc_id, "x.pdf") is None


def test_store_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "prevalence.csv"
    store.write_csv(pd.DataFrame({"theme": ["t"], "share": [0.5]}), target)

    def crash(tmp):
        tmp.write_text("partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        store.atomic_write(target, crash)
    assert pd.read_csv(target)["share"].tolist() == [0.5]
    assert [p.name for p in tmp_path.iterdir()] == ["prevalence.csv"]  # no temp file left behind


def test_store_prediction_rows_per_theme():
    from themes.types import PassageScores

    frame = store.predictions_frame([PassageScores("p1", {"a": 0.9, "b": 0.1}, ["a"], "v1")])
    assert frame.to_dict(orient="records") == [
        {"passage_id": "p1", "theme": "a", "score": 0.9, "tagged": True, "model_version": "v1"},
        {"passage_id": "p1", "theme": "b", "score": 0.1, "tagged": False, "model_version": "v1"},
    ]


def test_store_outputs_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    store.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    # Not mkstemp's private 0600: the same mode as a file opened for writing under this umask.
    (tmp_path / "plain.txt").write_text("x")
    assert stat.S_IMODE(os.stat(tmp_path / "t.csv").st_mode) == stat.S_IMODE(
        os.stat(tmp_path / "plain.txt").st_mode
    )


def test_store_reader_crashes_are_typed_and_not_cached(tmp_path):
    doc = Document(doc_id="d" * 64, file="x.pdf", status="error", error_kind="reader_crashed",
                   error="x.pdf crashed the reader process (exit code -9).")
    store.save_cached(tmp_path, doc, [])
    assert store.load_cached(tmp_path, doc.doc_id, "x.pdf") is None
    # The same words in a lasting error do not make it transient: kinds are typed, not matched.
    doc.error_kind = "corrupt"
    assert not store.is_transient_failure(doc)


@pytest.mark.parametrize("change", [{"margin_band": 0.12}, {"max_pages": 10}, {"max_memory_mb": 512}])
def test_store_cache_key_changes_with_ingest_settings(change):
    from dataclasses import replace

    from themes.config import INGEST

    assert store.cache_key(replace(INGEST, **change)) != store.cache_key(INGEST)
    # Time limits and the OCR switch change how a run goes, not what a read file yields.
    assert store.cache_key(replace(INGEST, timeout_s=5.0, ocr=True)) == store.cache_key(INGEST)


def test_store_cache_key_changes_with_segment_settings():
    from dataclasses import replace

    from themes.config import SEGMENT

    assert store.cache_key(segment=replace(SEGMENT, max_chars=400)) != store.cache_key()


def test_store_changing_an_ingest_setting_rereads_cached_documents(tmp_path):
    from dataclasses import replace
    from pathlib import Path

    from flows.pipeline import read_document
    from themes.config import INGEST

    corpus = Path(__file__).resolve().parent / "data"
    pdf = corpus / "numbered.pdf"
    first = read_document.fn(pdf, corpus, tmp_path, INGEST)
    again = read_document.fn(pdf, corpus, tmp_path, INGEST)
    changed = read_document.fn(pdf, corpus, tmp_path, replace(INGEST, margin_band=0.12))
    assert (first[2], again[2], changed[2]) == (False, True, False)


def test_store_writes_without_changing_the_process_umask(tmp_path):
    import os
    import stat

    before = os.umask(0o027)
    try:
        store.atomic_write_text(tmp_path / "a.txt", "x")
        mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
        assert mode == 0o640
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(before)


def test_store_outputs_are_kept_only_for_the_same_digest_and_every_file(tmp_path):
    doc, _ = _doc_and_passages()
    flow_source = tmp_path / "flow.py"
    flow_source.write_text("# wiring v1\n")
    digest = store.outputs_digest([doc], "model--codebook--key", "all", sources=[flow_source])
    assert digest == store.outputs_digest([doc], "model--codebook--key", "all", sources=[flow_source])
    assert digest != store.outputs_digest([doc], "model--codebook--key", "findings", sources=[flow_source])
    out = tmp_path / "out"
    store.write_csv(pd.DataFrame({"theme": ["t"], "share": [0.5]}), out / "prevalence.csv")
    store.atomic_write_text(out / "report.html", "<html></html>")
    store.save_outputs_digest(out, digest, [out / "prevalence.csv", out / "report.html"])
    files, prevalence = store.kept_outputs(out, digest)
    assert [f.name for f in files] == ["prevalence.csv", "report.html"] and prevalence == [{"theme": "t", "share": 0.5}]
    flow_source.write_text("# wiring v2\n")  # the flow's code changed: outputs are rebuilt
    assert store.kept_outputs(out, store.outputs_digest([doc], "model--codebook--key", "all", sources=[flow_source])) is None
    (out / "report.html").unlink()
    assert store.kept_outputs(out, digest) is None
