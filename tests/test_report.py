"""The report opens offline, shows every theme's evidence, and links every number to it."""

import re
import subprocess

import pandas as pd
import pytest
from conftest import require_program

from themes.aggregate import aggregate
from themes.correction import ClassifierError
from themes.dedup import find_boilerplate
from themes.report import render_report, summary_markdown, write_workbook

THEMES = ["optimism_bias", "weak_risk_assessment", "poor_information_sharing", "written_agreements"]
LABELS = {"optimism_bias": "Optimism bias", "weak_risk_assessment": "Weak risk assessment",
          "poor_information_sharing": "Poor information sharing", "written_agreements": "Written agreements"}
TEMPLATE = ("This review was commissioned by the safeguarding partnership under Working Together to Safeguard "
            "Children and considers agency involvement with Child X from birth until the incident.")


@pytest.fixture(scope="module")
def run():
    """Six documents over three years; a planted template paragraph in four of them."""
    documents = pd.DataFrame({
        "doc_id": [f"doc{i}" for i in range(6)] + ["bad"],
        "file": [f"20{19 + i // 2}_area{i}_lcspr.pdf" for i in range(6)] + ["broken.pdf"],
        "status": ["ok"] * 6 + ["error"], "error_kind": [None] * 6 + ["corrupt"],
        "error": [None] * 6 + ["The file ends before its cross-reference table."],
        "pages": [20] * 6 + [0], "title": [f"Review of Child {c}" for c in "ABCDEF"] + [None],
        "area": [f"Area <{i}>" for i in range(6)] + [None],  # markup in metadata must be escaped
        "year": [2019, 2019, 2020, 2020, 2021, 2021, None], "review_type": ["LCSPR"] * 6 + [None],
        "ocr": [False] * 5 + [True, False], "bad_pages": ["", "4;9", "", "", "", "", ""],
    })
    rows, predictions = [], []
    for i in range(6):
        rows.append((f"doc{i}-t", f"doc{i}", 2, "background", TEMPLATE.replace("X", "ABCDEF"[i])))
        for j in range(3):
            rows.append((f"doc{i}-p{j}", f"doc{i}", 5 + j, "analysis",
                         f"Passage {j} of review {i}: professionals <b>accepted</b> the account at face value."))
    passages = pd.DataFrame(rows, columns=["passage_id", "doc_id", "page", "section", "text"])
    for pid, doc in zip(passages["passage_id"], passages["doc_id"]):
        i = int(doc[3:])
        for k, theme in enumerate(THEMES):
            tagged = (pid.endswith("p0") and k <= i % 3) or (pid.endswith("p1") and theme == "optimism_bias" and i > 2)
            tagged = tagged or pid.endswith("-t")  # the template is tagged everywhere: dedup must drop it
            predictions.append({"passage_id": pid, "theme": theme, "score": 0.91 if tagged else 0.05,
                                "tagged": tagged, "model_version": "test"})
    predictions = pd.DataFrame(predictions)
    dup = find_boilerplate(passages)
    errors = [ClassifierError(t, 8, 2, 9, 1) for t in THEMES[:3]]  # written_agreements: none measured
    result = aggregate(documents, passages, predictions, THEMES, errors=errors, boilerplate=dup.dropped,
                       min_passages=1)
    explanations = {("doc0-p0", "optimism_bias"): ["face value", "accepted"]}
    page = render_report(result, documents, passages, predictions, THEMES, "test-1", LABELS, explanations)
    return result, page


def test_report_boilerplate_is_dropped_before_counting(run):
    result, page = run
    assert result.settings["passages_dropped_boilerplate"] == 6
    optimism = result.prevalence.set_index("theme").loc["optimism_bias"]
    # Without the template every document would have every theme; with it dropped, each has p0.
    assert (optimism.n_present, optimism.n_documents) == (6, 6)
    assert result.prevalence.set_index("theme").loc["written_agreements", "n_present"] == 0
    assert "Passages left out as boilerplate" in page and "Working Together" in page


def test_report_is_self_contained(run):
    _, page = run
    external = re.findall(r'(?:src|href)\s*=\s*"(?!#|data:)([^"]*)"', page)
    assert external == []
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == 3  # prevalence, trends, heat map


def test_report_every_theme_has_evidence_and_every_link_resolves(run):
    _, page = run
    ids = set(re.findall(r'id="([^"]+)"', page))
    for theme in THEMES:
        assert f"ev-{theme}" in ids
    links = re.findall(r'href="#([^"]*)"', page)
    assert links and set(links) <= ids, sorted(set(links) - ids)
    # The prevalence table links the optimism numbers to its evidence; the passage shows page and score.
    assert 'href="#ev-optimism_bias"' in page
    assert "page 5 — analysis — score 0.91" in page and "why: face value, accepted" in page


def test_report_states_the_counting_rules_and_escapes_text(run):
    _, page = run
    assert "Sections counted: <b>all sections</b>" in page
    assert "Headline number: the <b>raw share</b>" in page
    assert "a different corpus" in page and "41%" in page
    assert "<b>accepted</b>" not in page and "&lt;b&gt;accepted&lt;/b&gt;" in page
    assert "Area &lt;0&gt;" in page
    assert "broken.pdf" in page and "not corrected: no error counts for this theme" in page  # written_agreements has none


def test_report_says_which_counted_documents_were_read_imperfectly(run):
    # OCRed text and missing pages both lower what the classifier can find: the reader must know.
    _, page = run
    assert "Read through OCR, so with recognition errors in their text: 2021_area5_lcspr.pdf." in page
    assert "2019_area1_lcspr.pdf (pages 4;9)" in page


def test_report_workbook_has_one_sheet_per_table(run, tmp_path):
    result, _ = run
    path = tmp_path / "tables.xlsx"
    write_workbook(path, result)
    sheets = pd.read_excel(path, sheet_name=None)
    assert set(result.all_tables()) == set(sheets)
    prevalence = sheets["prevalence"].set_index("theme")
    assert prevalence.loc["optimism_bias", "n_present"] == 6
    assert {"adjusted_share", "adjusted_low", "adjusted_high"} <= set(prevalence.columns)
    assert len(sheets["boilerplate_dropped"]) == 6


def test_report_summary_markdown_lists_every_theme(run):
    result, _ = run
    text = summary_markdown(result, LABELS, "test-1")
    assert "**Practice themes in 6 documents** (model `test-1`)" in text
    for label in LABELS.values():
        assert f"| {label} |" in text
    assert "| Optimism bias | 6/6 | 100% (61%–100%) |" in text
    assert "Boilerplate left out: 6 passage(s) in 1 cluster(s)" in text


def test_report_renders_in_headless_chromium(run, tmp_path):
    chromium = require_program("chromium")["chromium"]  # Debian's chromium; .ci/run installs it
    _, page = run
    html_path = tmp_path / "report.html"
    html_path.write_text(page, encoding="utf-8")
    png = tmp_path / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={png}", "--window-size=1200,2000", html_path.as_uri()],
        check=False, capture_output=True, timeout=120,
    )
    assert png.is_file() and png.stat().st_size > 10_000
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (1200, 2000)
        grey = image.convert("L")
        histogram = grey.histogram()
    # Text, tables and the chart: many grey levels and a fair share of non-white pixels;
    # a blank page or a browser error page has neither.
    non_white = 1 - histogram[255] / sum(histogram)
    assert sum(1 for n in histogram if n) > 50 and non_white > 0.03


def test_report_breakdown_numbers_link_to_the_documents_behind_them(run):
    _, page = run
    sets = dict(re.findall(r'<div class="set" id="(set-\d+)"><b>([^<]*)</b>', page))
    year_2019 = next(sid for sid, title in sets.items() if title == "Optimism bias — year 2019")
    block = re.search(rf'id="{year_2019}">(.*?)</div>', page).group(1)
    # doc0 and doc1 are the 2019 reviews; both have optimism_bias in a counted passage.
    assert re.findall(r">([^<]+\.pdf)<", block) == ["2019_area0_lcspr.pdf", "2019_area1_lcspr.pdf"]
    assert f'href="#{year_2019}"' in page
