"""Document-level evaluation: the held-out document set (corpus/doc-eval) is complete, separate and
not copied; the presence rule is chosen on it by cross-validation (themes.doceval) and recorded in the card."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from themes.aggregate import aggregate
from themes.config import (
    CORE_THEMES,
    DOC_EVAL_DIR,
    LABELS_DIR,
    MODELS_DIR,
    PROJECT_ROOT,
    SAMPLE_DIR,
)
from themes.correction import correction_from_card
from themes.doceval import (
    DocumentSet,
    choose_presence_rule,
    document_evaluation,
    evaluate_documents,
    write_card_evaluation,
)
from themes.ingest import doc_id_of
from themes.presence import FEATURE_COLUMNS

DOC_EVAL = PROJECT_ROOT / "corpus" / "doc-eval"
LABELS = PROJECT_ROOT / "corpus" / "labels"
SAMPLE = PROJECT_ROOT / "corpus" / "sample"


def _specs() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((DOC_EVAL / "src").glob("*.yaml"))}


def _block_texts(spec: dict) -> list[str]:
    out = []
    for sec in spec["sections"]:
        for block in sec["blocks"]:
            kind, value = next(iter(block.items()))
            if kind in ("p", "h"):
                out.append(str(value))
            elif kind == "bullets":
                out += [str(v) for v in value]
            elif kind == "box":
                out.append(str(value["text"]))
    return out


def _sentences(text: str) -> set[str]:
    flat = re.sub(r"\s+", " ", text.lower())
    return {s.strip() for s in re.split(r"(?<=[.!?])\s+", flat) if len(s.split()) >= 8}


def test_doceval_has_forty_documents_each_with_its_pdf_and_truth() -> None:
    specs = _specs()
    assert len(specs) >= 40
    for stem, spec in specs.items():
        assert (DOC_EVAL / f"{stem}.pdf").is_file(), f"{stem}.pdf not built"
        expected = json.loads((DOC_EVAL / "expected" / f"{stem}.json").read_text(encoding="utf-8"))
        assert sorted(expected["known_themes"]) == sorted(spec["known_themes"]), stem


def test_doceval_each_core_theme_is_absent_from_about_a_third() -> None:
    specs = _specs().values()
    for theme in CORE_THEMES:
        absent = sum(theme not in s["known_themes"] for s in specs)
        assert 0.25 * len(specs) <= absent <= 0.45 * len(specs), (theme, absent)


def test_doceval_is_not_the_sample_corpus_and_reuses_no_labelled_sentence() -> None:
    specs = _specs()
    assert not set(specs) & {p.stem for p in SAMPLE.glob("*.pdf")}
    labelled: set[str] = set()
    for path in LABELS.glob("passages-*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                labelled |= _sentences(json.loads(line)["text"])
    shared = [(stem, s) for stem, spec in specs.items() for t in _block_texts(spec)
              for s in _sentences(t) & labelled]  # fmt: skip
    assert not shared, f"sentences copied from corpus/labels: {shared[:3]}"


# -- themes.doceval --------------------------------------------------------------------------------


def _features(kind: str, n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Documents where exactly one feature tells present from absent; the others are noise."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 3 != 0
    frame = pd.DataFrame({
        "doc_id": [f"d{i}" for i in range(n)], "theme": "t",
        "n_over": rng.integers(0, 6, n).astype(float), "max": rng.uniform(0.2, 0.99, n),
        "noisy_or": rng.uniform(0.0, 6.0, n), "top3_mean": rng.uniform(0.1, 0.9, n),
        "n_passages": rng.integers(20, 200, n).astype(float), "truth": truth,
    })
    if kind == "count":  # three or more passages over threshold, and only then
        frame["n_over"] = np.where(truth, rng.integers(3, 7, n), rng.integers(0, 3, n)).astype(float)
    else:  # the best passage score alone separates them
        frame["max"] = np.where(truth, rng.uniform(0.75, 0.99, n), rng.uniform(0.2, 0.6, n))
    return frame


@pytest.mark.parametrize("kind", ["count", "max"])
def test_doceval_choose_presence_rule_picks_the_rule_that_is_best(kind):
    choice = choose_presence_rule(_features(kind), kinds=["count", "max", "noisy_or"])
    scores = {k: v["mean_accuracy"] for k, v in choice.cv["candidates"].items()}
    assert choice.rule.kind == kind and scores[kind] == max(scores.values())
    assert scores[kind] > max(v for k, v in scores.items() if k != kind) + 0.1
    if kind == "count":
        assert choice.rule.k == {"t": 3}
    else:
        assert 0.6 <= choice.rule.cut["t"] <= 0.75
    # Every document is judged once, out of fold.
    assert sorted(choice.oof["doc_id"]) == sorted(f"d{i}" for i in range(40))


def test_doceval_cut_is_fitted_on_training_folds_only():
    # A theme whose truth is noise: a rule fitted on all documents looks good, out of fold it cannot.
    frame = _features("max")
    frame["truth"] = np.random.default_rng(5).random(len(frame)) < 0.5
    choice = choose_presence_rule(frame, kinds=["max"])
    assert choice.cv["candidates"]["max"]["mean_accuracy"] < 0.75


def _document_set(tmp_path: Path) -> DocumentSet:
    themes = ["t", "u"]
    rows = []
    for theme in themes:
        part = _features("max" if theme == "t" else "count", seed=len(theme))
        rows.append(part.assign(theme=theme))
    features = pd.concat(rows, ignore_index=True)
    documents = pd.DataFrame({"doc_id": [f"{i:064x}" for i in range(40)], "file": [f"d{i}.pdf" for i in range(40)]})
    features["doc_id"] = features["doc_id"].str[1:].astype(int).map(lambda i: f"{i:064x}")
    keyword = features.assign(n_over=(features["n_over"] > 2).astype(float))
    return DocumentSet(tmp_path, documents, themes, "m-1", {"t": 0.5, "u": 0.5}, features, keyword, pd.DataFrame())


def test_doceval_document_evaluation_is_json_ready_and_goes_into_the_card_alone(tmp_path):
    evaluation = document_evaluation(documents=_document_set(tmp_path))
    evaluation = json.loads(json.dumps(evaluation))  # plain JSON: no pickles, no numpy scalars
    assert evaluation["n_documents"] == 40 and len(evaluation["documents"]) == 40
    assert set(evaluation["rule"]["cv"]["candidates"]) == {"count", "max", "noisy_or", "logistic"}
    for block in (evaluation["themes"]["t"], evaluation["keyword_search"]["themes"]["u"]):
        assert block["tp"] + block["fp"] + block["tn"] + block["fn"] == 40
        for key in ("sensitivity", "specificity", "accuracy", "true_share", "predicted_share", "share_error"):
            assert key in block
    folder = tmp_path / "models" / "m-1"
    folder.mkdir(parents=True)
    card = {"version": "m-1", "summary": "s", "thresholds": {"t": 0.5}, "themes": ["t", "u"]}
    (folder / "card.json").write_text(json.dumps(card))
    (folder / "model.skops").write_bytes(b"")
    write_card_evaluation("m-1", evaluation, tmp_path / "models")
    saved = json.loads((folder / "card.json").read_text())
    assert {k: v for k, v in saved.items() if k != "document_evaluation"} == card
    correction = correction_from_card(saved)
    assert correction is not None and correction.rule.kind == evaluation["rule"]["kind"]
    assert "Document-level evaluation" in (folder / "card.md").read_text()


def test_doceval_folder_and_card_problems_are_coded(tmp_path):
    with pytest.raises(FileNotFoundError, match="No PDFs in") as error:
        evaluate_documents(tmp_path)
    assert error.value.code == "E419"
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(FileNotFoundError, match="a.pdf has no expected/a.json") as error:
        evaluate_documents(tmp_path)
    assert error.value.code == "E417"
    folder = tmp_path / "models" / "m-1"
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has no card.json") as error:
        write_card_evaluation("m-1", {"model_version": "m-1"}, tmp_path / "models")
    assert error.value.code == "E421"
    (folder / "card.json").write_text(json.dumps({"version": "m-1"}))
    with pytest.raises(ValueError, match="of model m-0, not m-1") as error:
        write_card_evaluation("m-1", {"model_version": "m-0"}, tmp_path / "models")
    assert error.value.code == "E420"


# -- the shipped default model's card -----------------------------------------------------------

@pytest.fixture(scope="module")
def default_card() -> dict:
    version = (MODELS_DIR / "DEFAULT").read_text().strip()
    card = json.loads((MODELS_DIR / version / "card.json").read_text())
    if "document_evaluation" not in card:
        pytest.fail(f"The default model {version}'s card has no document_evaluation: run "
                    "`themes evaluate --documents corpus/doc-eval --write-card`.")
    return card


def _label_documents() -> set[str]:
    names: set[str] = set()
    for path in list(LABELS_DIR.glob("passages-*.jsonl")) + list((LABELS_DIR / "real").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                names |= {str(row[k]) for k in ("doc", "doc_id", "file") if row.get(k)}
    return names


def test_doceval_card_documents_are_the_doc_eval_set_and_never_sample_or_labelled(default_card):
    evaluation = default_card["document_evaluation"]
    ids, files = set(evaluation["documents"]), set(evaluation["files"])
    doc_eval = {doc_id_of(p) for p in DOC_EVAL_DIR.glob("*.pdf")}
    assert len(ids) == evaluation["n_documents"] >= 40 and ids == doc_eval
    assert not ids & {doc_id_of(p) for p in SAMPLE_DIR.glob("*.pdf")}
    assert not files & {p.name for p in SAMPLE_DIR.glob("*.pdf")}
    labelled = _label_documents() | set(default_card.get("training_documents", []))
    assert not (ids | files | {Path(f).stem for f in files}) & labelled
    for theme in CORE_THEMES:
        block = evaluation["themes"][theme]
        assert block["tp"] + block["fp"] + block["tn"] + block["fn"] == evaluation["n_documents"]


def test_doceval_report_names_the_cards_documents_and_rule(default_card):
    from themes.report import render_report

    correction = correction_from_card(default_card)
    documents = pd.DataFrame({"doc_id": ["a", "b"], "file": ["a.pdf", "b.pdf"], "status": ["ok", "ok"],
                              "error_kind": [None, None], "error": [None, None], "pages": [10, 10],
                              "title": ["A", "B"], "area": ["X", "Y"], "year": [2020, 2021],
                              "review_type": ["LCSPR", "LCSPR"], "ocr": [False, False], "bad_pages": ["", ""]})
    passages = pd.DataFrame({"passage_id": ["a1", "b1"], "doc_id": ["a", "b"], "page": [1, 1],
                             "section": ["analysis", "analysis"], "text": ["One.", "Two."]})
    themes = list(CORE_THEMES)
    predictions = pd.DataFrame([{"passage_id": p, "theme": t, "score": 0.99 if p == "a1" else 0.01,
                                 "tagged": p == "a1", "model_version": default_card["version"]}
                                for p in ("a1", "b1") for t in themes])
    result = aggregate(documents, passages, predictions, themes, correction=correction)
    page = render_report(result, documents, passages, predictions, themes, default_card["version"], None, {})
    n = default_card["document_evaluation"]["n_documents"]
    assert f"measured on {n} held-out documents ({default_card['document_evaluation']['set']}" in page
    assert f"card of model {default_card['version']}" in page
    assert correction.rule.describe() in html.unescape(page)  # the card's rule, in "How this was counted"
    assert default_card["document_evaluation"]["rule"]["description"] == correction.rule.describe()


@pytest.mark.slow
def test_doceval_documents_runs_the_pipeline_path_on_doc_eval_pdfs(tmp_path):
    from themes.doceval import evaluate_documents

    folder = tmp_path / "docs"
    (folder / "expected").mkdir(parents=True)
    for pdf in sorted(DOC_EVAL_DIR.glob("*.pdf"))[:3]:
        shutil.copy2(pdf, folder / pdf.name)
        shutil.copy2(DOC_EVAL_DIR / "expected" / f"{pdf.stem}.json", folder / "expected" / f"{pdf.stem}.json")
    docs = evaluate_documents(folder, None)
    assert list(docs.documents["doc_id"]) == [doc_id_of(p) for p in sorted(folder.glob("*.pdf"))]
    for frame in (docs.model_features, docs.keyword_features):
        assert len(frame) == 3 * len(docs.themes) and set(FEATURE_COLUMNS) <= set(frame.columns)
        assert (frame["n_passages"] > 0).all()
    truth = json.loads((folder / "expected" / f"{min(folder.glob('*.pdf')).stem}.json").read_text())
    first = docs.model_features[docs.model_features["doc_id"] == docs.documents["doc_id"][0]]
    assert set(first.loc[first["truth"], "theme"]) == set(truth["known_themes"]) & set(docs.themes)
