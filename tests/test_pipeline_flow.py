"""End to end: the Prefect flow over the shipped sample corpus, as `make run` does it."""

import json
import re

import pandas as pd
import pdfplumber
import pytest
from prefect.testing.utilities import prefect_test_harness

from themes.config import CORE_THEMES, MODELS_DIR, SAMPLE_DIR

pytestmark = pytest.mark.slow

CONTRACT = {
    "documents.csv": ["doc_id", "file", "status", "error_kind", "error", "pages", "title", "area", "year",
                      "review_type", "ocr", "bad_pages"],
    "document_themes.csv": ["doc_id", "theme", "present", "n_passages", "max_score"],
    "prevalence.csv": ["theme", "n_documents", "n_present", "share", "ci_low", "ci_high",
                       "adjusted_share", "adjusted_low", "adjusted_high", "adjusted_note"],
    "breakdowns.csv": ["by", "group", "theme", "n_documents", "n_present", "share", "ci_low", "ci_high"],
}


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    if not (MODELS_DIR / "DEFAULT").exists():
        pytest.fail("models/DEFAULT is missing: the project must ship a trained default model.")
    from flows.pipeline import run

    out = tmp_path_factory.mktemp("out")
    with prefect_test_harness():
        result = run(str(SAMPLE_DIR), str(out), workers=2)
    return out, result


def _squash(text: str) -> str:
    # Letters only: ingest drops superscript footnote markers ("checklist²") that the raw page text keeps.
    return re.sub(r"[^a-z]", "", text.lower())


def test_pipeline_flow_writes_the_output_contract(run_output):
    out, result = run_output
    for name, columns in CONTRACT.items():
        assert list(pd.read_csv(out / name).columns) == columns, name
    passages = pd.read_parquet(out / "passages.parquet")
    assert {"passage_id", "doc_id", "page", "char_start", "char_end", "bbox", "section", "text"} <= set(passages)
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["theme"]) >= set(CORE_THEMES)
    assert len(predictions) == len(passages) * predictions["theme"].nunique()
    assert {"theme_a", "theme_b"} <= set(pd.read_csv(out / "cooccurrence.csv").columns)
    assert "prevalence" in pd.ExcelFile(out / "tables.xlsx").sheet_names
    html = (out / "report.html").read_text()
    assert "<img" in html and "page" in html and "http://" not in html.replace("http://www.w3.org", "")
    assert result["documents"] == len(list(SAMPLE_DIR.glob("*.pdf")))
    assert result["documents_ok"] == result["documents"]


def test_pipeline_flow_every_passage_is_in_its_box_on_its_page(run_output):
    out, _ = run_output
    documents = pd.read_csv(out / "documents.csv")
    passages = pd.read_parquet(out / "passages.parquet").merge(documents[["doc_id", "file"]], on="doc_id")
    for file, group in passages.groupby("file"):
        with pdfplumber.open(SAMPLE_DIR / file) as pdf:
            for number, on_page in group.groupby("page"):
                page = pdf.pages[int(number) - 1]
                for row in on_page.itertuples():
                    # The words inside the passage's box: checks page and box. Compared as words,
                    # not as a string: a paragraph that runs on into the next column has a box
                    # spanning both, whose text pdfplumber interleaves line by line.
                    x0, top, x1, bottom = row.bbox
                    box = (max(0, x0 - 2), max(0, top - 2), min(page.width, x1 + 2), min(page.height, bottom + 2))
                    in_box = {_squash(w["text"]) for w in page.crop(box).extract_words()}
                    first_words = [w for w in map(_squash, row.text.split()) if len(w) > 3][:12]
                    missing = [w for w in first_words if w not in in_box and not any(w in b for b in in_box)]
                    # A word cut at the box edge may be lost; a wrong page or box loses most of them.
                    assert len(missing) <= 1, f"{file} p{row.page}: {row.text[:80]!r} lacks {missing}"
                page.close()


def test_pipeline_flow_finds_the_known_themes(run_output):
    out, _ = run_output
    documents = pd.read_csv(out / "documents.csv")
    found = pd.read_csv(out / "document_themes.csv").merge(documents[["doc_id", "file"]], on="doc_id")
    rows, misses = 0, []
    for expected_file in sorted((SAMPLE_DIR / "expected").glob("*.json")):
        expected = json.loads(expected_file.read_text())
        doc = found[found["file"] == expected["file"]].set_index("theme")
        for theme in CORE_THEMES:
            rows += 1
            truth = theme in expected["known_themes"]
            if bool(doc.loc[theme, "present"]) != truth:
                misses.append(f"{expected['file']}: {theme} expected {truth}")
    accuracy = 1 - len(misses) / rows
    # Document-level presence on our own sample reviews: most calls must be right; the misses are
    # printed so a regression shows which document and theme it hit.
    assert accuracy >= 0.8, "\n".join(misses)


def test_pipeline_flow_metadata_matches_the_covers(run_output):
    out, _ = run_output
    documents = pd.read_csv(out / "documents.csv").set_index("file")
    for expected_file in sorted((SAMPLE_DIR / "expected").glob("*.json")):
        expected = json.loads(expected_file.read_text())
        row = documents.loc[expected["file"]]
        assert (row["area"], int(row["year"]), row["review_type"]) == (
            expected["area"], expected["year"], expected["review_type"]), expected["file"]


def test_pipeline_flow_no_prefect_run_never_imports_prefect(tmp_path):
    """`themes run --no-prefect` runs without importing Prefect (its import costs about a second)."""
    import os
    import subprocess
    import sys

    code = (
        "import runpy, sys\n"
        f"sys.argv = ['themes', 'run', '--corpus', {str(SAMPLE_DIR)!r}, '--out', {str(tmp_path / 'out')!r},"
        " '--no-prefect', '--no-progress']\n"
        "try:\n    runpy.run_module('themes.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('PREFECT', sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')[:3])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=False,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PREFECT []" in done.stdout
    assert (tmp_path / "out" / "prevalence.csv").is_file()
