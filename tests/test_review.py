"""The functions behind the notebooks: filtering a run, showing a passage, the review widget (themes.review),
label-next (themes.active) and the notebook parameters (themes.notebook)."""

from __future__ import annotations

import pandas as pd
import pytest

from themes import active, notebook, review
from themes import labels as L

THEMES = ["optimism_bias", "weak_risk_assessment"]
DOCS = [  # doc_id, file, title, area, year, review type
    ("a" * 64, "2019_north_scr_child-a.pdf", "Serious Case Review: Child A", "Northmere", 2019, "SCR"),
    ("b" * 64, "2021_east_lcspr_child-b.pdf", "LCSPR: Child B", "Eastwold", 2021, "LCSPR"),
    ("c" * 64, "2021_west_rapid-review_child-c.pdf", "Rapid review: Child C", "Westby", 2021, "rapid review"),
]


@pytest.fixture
def run_dir(tmp_path):
    """A small run folder in the pipeline's out/ contract: 3 documents x 6 passages, 2 themes."""
    documents, passages, predictions = [], [], []
    for d, (doc_id, file, title, area, year, kind) in enumerate(DOCS):
        documents.append({"doc_id": doc_id, "file": file, "status": "ok", "error_kind": None, "error": None,
                          "pages": 4, "title": title, "area": area, "year": year, "review_type": kind})
        for i in range(6):
            pid = f"{doc_id[:16]}:{i * 100}"
            text = f"Paragraph {i} of {title}: Mother's account was accepted at face value <b>."
            passages.append({"passage_id": pid, "doc_id": doc_id, "page": 1 + i // 2, "char_start": i * 100,
                             "char_end": i * 100 + 80, "bbox": [0.0, 0.0, 1.0, 1.0], "section": "analysis",
                             "kind": "body", "text": text})
            for j, theme in enumerate(THEMES):
                score = round(0.05 + 0.15 * i + 0.02 * d + 0.01 * j, 4)  # i=2 -> ~0.35..0.40
                predictions.append({"passage_id": pid, "theme": theme, "score": score, "tagged": score >= 0.5,
                                    "model_version": "test-model"})
    out = tmp_path / "out"
    out.mkdir()
    pd.DataFrame(documents).to_csv(out / "documents.csv", index=False, encoding="utf-8-sig")
    pd.DataFrame(passages).to_parquet(out / "passages.parquet", index=False)
    pd.DataFrame(predictions).to_parquet(out / "predictions.parquet", index=False)
    return out


@pytest.fixture
def run(run_dir):
    return review.load_run(run_dir)


def test_review_load_run_names_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="passages.parquet") as error:
        (tmp_path / "documents.csv").write_text("doc_id\n")
        review.load_run(tmp_path)
    assert error.value.code == "E422"


def test_review_filter_by_theme_score_band_document_year_and_area(run):
    band = review.filter_passages(run, "optimism_bias", min_score=0.3, max_score=0.6)
    assert band["score"].between(0.3, 0.6).all() and len(band) == 6
    assert list(band["score"]) == sorted(band["score"], reverse=True)
    assert set(review.filter_passages(run, "optimism_bias", year=2021)["area"]) == {"Eastwold", "Westby"}
    assert set(review.filter_passages(run, "optimism_bias", area="eastwold")["file"]) == {DOCS[1][1]}
    assert set(review.filter_passages(run, "optimism_bias", document="child c")["doc_id"]) == {DOCS[2][0]}
    assert set(review.filter_passages(run, "optimism_bias", review_type="SCR")["year"]) == {2019}
    assert review.filter_passages(run, "optimism_bias", tagged=True)["score"].min() >= 0.5
    with pytest.raises(ValueError, match="no scores") as error:
        review.filter_passages(run, "neglect")
    assert error.value.code == "E423"


def test_review_filter_shows_current_labels_and_hides_decided(run, tmp_path):
    rows = review.filter_passages(run, "optimism_bias")
    L.append_decision(L.make_decision(rows.iloc[0], "optimism_bias", "reject", "alice"), tmp_path)
    decisions = L.load_decisions(tmp_path)
    shown = review.filter_passages(run, "optimism_bias", decisions=decisions)
    assert shown.set_index("passage_id").at[rows.iloc[0]["passage_id"], "label"] == "reject"
    assert len(review.filter_passages(run, "optimism_bias", decisions=decisions, undecided_only=True)) == len(rows) - 1


def test_review_neighbours_are_the_paragraphs_around_in_the_same_document(run):
    pid = f"{'b' * 16}:0"
    before, after = review.neighbours(run, pid, 1, 2)
    assert before.empty  # first passage of its document: nothing from document a
    assert list(after["char_start"]) == [100, 200] and set(after["doc_id"]) == {"b" * 64}


def test_review_unknown_passage_blank_annotator_and_finished_queue_are_coded(run, tmp_path):
    with pytest.raises(KeyError, match="'nope' is not in the run") as error:
        review.neighbours(run, "nope")
    assert error.value.code == "E424"
    queue = review.filter_passages(run, "optimism_bias", limit=1)
    with pytest.raises(ValueError, match="needs an annotator name") as error:
        review.ReviewSession(run, queue, " ", tmp_path)
    assert error.value.code == "E425"
    with pytest.raises(IndexError, match="queue is finished") as error:
        review.ReviewSession(run, queue.head(0), "alice", tmp_path).decide("accept")
    assert error.value.code == "E426"


def test_review_highlight_marks_driving_terms_and_escapes_html():
    text = "The plan was not shared with the school <script>. Nobody shared it."
    out = review.highlight_html(text, ["not shared", "the school", "would ensure"])
    assert "<mark>shared</mark> with <mark>the school</mark>" in out
    assert "&lt;script&gt;" in out and "<script>" not in out
    assert out.count("<mark>") == 3  # "shared" twice, "the school" once; "ensure" is absent


def test_review_passage_html_shows_title_page_neighbours_and_marks(run):
    row = review.filter_passages(run, "optimism_bias", document="child a").iloc[2]
    page = review.passage_html(run, row, ["face value"])
    assert "Serious Case Review: Child A" in page and f"page {row['page']}" in page
    assert "<mark>face value</mark>" in page and page.count("Paragraph") == 3  # the passage and 2 neighbours
    assert "&lt;b&gt;" in page


def test_review_review_session_writes_each_button_to_the_store(run, tmp_path):
    queue = review.filter_passages(run, "optimism_bias", limit=4)
    session = review.ReviewSession(run, queue, "alice", tmp_path)
    ui = session.widget()
    assert ui is not None and "1 of 4" in session.html()
    session.click("accept")
    session.click("reject")
    session._ui["picker"].value = "neglect"
    session.click("add")
    session.click("skip")
    decisions = L.load_decisions(tmp_path)
    assert list(zip(decisions["passage_id"], decisions["theme"], decisions["value"])) == [
        (queue.at[0, "passage_id"], "optimism_bias", "accept"),
        (queue.at[1, "passage_id"], "optimism_bias", "reject"),
        (queue.at[2, "passage_id"], "neglect", "accept"),
    ]
    first = decisions.iloc[0]
    assert (first["score"], first["model_version"], first["page"]) == (queue.at[0, "score"], "test-model",
                                                                       queue.at[0, "page"])
    assert first["text"] == queue.at[0, "text"] and first["annotator"] == "alice"
    assert session.counts() == {"accept": 2, "reject": 1, "session": 3, "store": 3, "left": 1}
    assert "3 decision(s) this session" in session._ui["count"].value


def test_review_review_session_direct_calls_equal_button_clicks(run, tmp_path):
    queue = review.filter_passages(run, "weak_risk_assessment", limit=2)
    by_call = review.ReviewSession(run, queue, "alice", tmp_path / "a")
    by_call.accept()
    by_call.reject()
    by_click = review.ReviewSession(run, queue, "alice", tmp_path / "b")
    by_click.click("accept")
    by_click.click("reject")
    strip = ["time", "decision_id", "seq"]
    assert L.load_decisions(tmp_path / "a").drop(columns=strip).equals(L.load_decisions(tmp_path / "b").drop(columns=strip))
    by_click.click("accept")  # queue finished: the widget says so instead of failing
    assert "finished" in by_click._ui["status"].value and by_click.counts()["session"] == 2


def test_active_label_next_prefers_uncertain_undecided_and_spreads_documents(run, tmp_path):
    thresholds = {t: 0.4 for t in THEMES}
    closest = review.filter_passages(run, "optimism_bias", min_score=0.385, max_score=0.395)
    assert len(closest) == 1  # 0.39: the pair nearest the threshold
    L.append_decision(L.make_decision(closest.iloc[0], "optimism_bias", "accept", "alice"), tmp_path)
    queue = active.label_next(run, thresholds, L.load_decisions(tmp_path), n=6, max_per_document=2)
    assert len(queue) == 6
    assert queue["doc_id"].value_counts().max() <= 2 and queue["passage_id"].is_unique
    assert (closest.iloc[0]["passage_id"], "optimism_bias") not in set(zip(queue["passage_id"], queue["theme"]))
    assert list(queue["uncertainty"]) == sorted(queue["uncertainty"], reverse=True)
    distances = (run.scores - 0.4).abs().stack().drop((closest.iloc[0]["passage_id"], "optimism_bias"))
    assert abs(queue.at[0, "score"] - 0.4) == pytest.approx(distances.min())


def test_active_label_next_relaxes_caps_rather_than_return_too_few(run):
    queue = active.label_next(run, {t: 0.5 for t in THEMES}, None, n=10, max_per_document=1)
    assert len(queue) == 10  # only 3 documents, so the per-document cap had to give way


def test_active_thresholds_fall_back_to_the_runs_own_tags(run, tmp_path):
    thresholds = active.run_thresholds(run, tmp_path)  # no model card there
    for theme in THEMES:
        tagged = review.filter_passages(run, theme, tagged=True)["score"].min()
        untagged = review.filter_passages(run, theme, tagged=False)["score"].max()
        assert untagged < thresholds[theme] <= tagged


def test_notebook_params_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("THEMES_OUT", str(tmp_path / "o"))
    monkeypatch.setenv("THEMES_DEMO_DECISIONS", "7")
    monkeypatch.setenv("THEMES_FAST", "1")
    params = notebook.NotebookParams.from_env(annotator="jo")
    assert (params.out, params.demo_decisions, params.fast, params.annotator) == (tmp_path / "o", 7, True, "jo")
    assert params.retrain_params()["params"] == {"use_chars": False}
    with pytest.raises(ValueError, match="NotebookParams has no parameter 'colour'") as error:
        notebook.NotebookParams.from_env(colour="red")
    assert error.value.code == "E013"


def test_review_filter_widget_refills_the_queue_as_filter_passages_would(run, tmp_path):
    session = review.ReviewSession(run, review.filter_passages(run, "optimism_bias"), "alice", tmp_path)
    session.widget()
    review.filter_widget(run, session)
    f = session._ui_filters
    f["theme"].value, f["score"].value, f["year"].value = "weak_risk_assessment", (0.2, 0.6), 2021
    f["apply"].click()
    expected = review.filter_passages(run, "weak_risk_assessment", 0.2, 0.6, year=2021)
    assert list(session.queue["passage_id"]) == list(expected["passage_id"]) and session.position == 0
    assert f"{len(expected)} passage(s) to review" in session._ui["status"].value


def test_review_explain_terms_are_the_models_own_and_none_without_an_explainer():
    class Explains:
        themes_ = ("optimism_bias",)

        def explain(self, text, theme, k=5):
            return ["face value", "accepted"][:k]

    class CannotExplain:
        themes_ = ("optimism_bias",)

    assert review.explain_terms(Explains(), "text", "optimism_bias", k=1) == ["face value"]
    assert review.explain_terms(Explains(), "text", "weak_risk_assessment") == []
    assert review.explain_terms(CannotExplain(), "text", "optimism_bias") == []
