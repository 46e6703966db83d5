"""Retraining on the label store's decisions: merging, champion/challenger, promotion and rollback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from themes import labels as L
from themes import registry
from themes import retrain as retraining
from themes.classify import ThemeClassifier
from themes.config import CORE_THEMES
from themes.dataset import is_heldout, load_labels, with_decisions

FAST = {"params": {"use_chars": False}, "themes": list(CORE_THEMES), "n_splits": 3, "with_real": False}


def _decision(pid, doc, text, theme, value, annotator="alice", t=0):
    return L.Decision(passage_id=pid, doc_id=doc, page=1, char_start=0, char_end=len(text), text=text, theme=theme,
                      value=value, annotator=annotator, time=f"2026-11-23T10:00:{t:02d}+00:00")


def _doc(heldout: bool, n: int = 0) -> str:
    """A document id on the requested side of the fixed held-out rule."""
    i = 0
    while True:
        doc = f"run-doc-{n}-{i}"
        if is_heldout(doc) == heldout:
            return doc
        i += 1


def test_retrain_with_decisions_merges_latest_across_annotators():
    frame = pd.DataFrame([{"id": "w-1", "text": "Old passage.", "labels": ["neglect"], "doc": "w1-c01", "kind": "positive",
                           "section": "analysis", "file": "passages-w1.jsonl"}])
    train_doc, held_doc = _doc(False), _doc(True)
    decisions = L.to_frame([
        _decision("r:1", train_doc, "Her account was accepted.", "optimism_bias", "accept", "alice", 1),
        _decision("r:1", train_doc, "Her account was accepted.", "optimism_bias", "reject", "bo", 2),  # latest wins
        _decision("r:1", train_doc, "Her account was accepted.", "weak_risk_assessment", "accept", "bo", 3),
        _decision("r:2", train_doc, "No one told the GP.", "poor_information_sharing", "accept", "alice", 4),
        _decision("r:2b", train_doc, "No one told the GP!", "poor_information_sharing", "accept", "bo", 5),  # same text
        _decision("h:1", held_doc, "A safety plan was signed.", "written_agreements", "accept", "alice", 6),
        _decision("w-1", "w1-c01", "Old passage.", "neglect", "reject", "alice", 7),
        _decision("w-1", "w1-c01", "Old passage.", "optimism_bias", "accept", "alice", 8),
    ])
    merged = with_decisions(frame, decisions).set_index("id")
    assert merged.at["r:1", "labels"] == ["weak_risk_assessment"]
    assert merged.at["r:2", "labels"] == ["poor_information_sharing"] and "r:2b" not in merged.index
    assert "h:1" not in merged.index  # held-out documents stay the fixed team-written ones
    assert merged.at["w-1", "labels"] == ["optimism_bias"]  # a decision corrects a team-written passage
    assert merged.at["r:1", "doc"] == train_doc and merged.at["r:1", "source"] == "decisions"
    assert len(with_decisions(frame, decisions.iloc[:0])) == 1


def test_retrain_undecided_themes_take_the_fill_models_tags():
    class Stub:
        themes_ = ("optimism_bias", "weak_risk_assessment", "neglect")

        def predict(self, texts):
            return np.array([[1, 1, 0]] * len(texts))

    frame = pd.DataFrame(columns=["id", "text", "labels", "doc", "kind", "section", "file"])
    decisions = L.to_frame([_decision("r:1", _doc(False), "Text.", "optimism_bias", "reject")])
    merged = with_decisions(frame, decisions, fill_model=Stub()).set_index("id")
    # The reviewer rejected optimism_bias; weak_risk_assessment was not looked at, so the model's tag stays.
    assert merged.at["r:1", "labels"] == ["weak_risk_assessment"]


def _tiny_model(seed: int) -> ThemeClassifier:
    rng = np.random.default_rng(seed)
    texts = [f"mother account accepted face value case {k}" if k % 2 else f"school was not told about case {k}"
             for k in range(24)]
    y = np.array([[k % 2, 1 - k % 2] for k in range(24)])
    y[rng.integers(0, 24)] ^= 1
    return ThemeClassifier(themes=["optimism_bias", "poor_information_sharing"], use_chars=False,
                           calibrate=False).fit(texts, y)


@pytest.fixture
def three_models(tmp_path):
    for n in (1, 2, 3):
        registry.save_model(_tiny_model(n), {"trained_at": "2026-11-23T00:00:00"}, f"v{n}", tmp_path)
    return tmp_path


def test_retrain_promote_and_rollback_walk_the_history(three_models):
    models = three_models
    for n in (1, 2, 3):
        registry.promote(f"v{n}", models, reason=f"step {n}")
    assert registry.default_version(models) == "v3"
    assert registry.rollback(models) == "v2" and registry.default_version(models) == "v2"
    assert registry.rollback(models) == "v1"
    with pytest.raises(ValueError, match="Nothing to roll back to") as error:
        registry.rollback(models)
    assert error.value.code == "E405"
    assert registry.rollback(models, to="v3") == "v3"
    actions = [(h["action"], h["from"], h["to"]) for h in registry.history(models)]
    assert actions[-1] == ("rollback", "v1", "v3") and actions[0] == ("promote", None, "v1")
    registry.set_default("v1", models)  # set outside promote (themes train --make-default)
    assert registry.rollback(models) == "v3"  # back to the default it replaced


def test_retrain_models_cli_promote_rollback_history_compare(three_models):
    from themes.cli import app

    runner = CliRunner()
    models = str(three_models)
    for v in ("v1", "v2"):
        result = runner.invoke(app, ["models", "promote", v, "--models-dir", models])
        assert result.exit_code == 0, result.output
    assert "was v1" in result.output
    result = runner.invoke(app, ["models", "rollback", "--models-dir", models])
    assert result.exit_code == 0 and "now v1" in result.output
    result = runner.invoke(app, ["models", "history", "--models-dir", models])
    assert result.output.count("  promote  ") == 2 and "rollback  v2 -> v1" in result.output
    result = runner.invoke(app, ["models", "promote", "v9", "--models-dir", models])
    assert result.exit_code != 0 and "v9" in result.output and "[E402]" in result.output
    result = runner.invoke(app, ["models", "rollback", "--models-dir", str(three_models / "none")])
    assert result.exit_code != 0 and "[E405]" in result.output and "Nothing to roll back to" in result.output
    result = runner.invoke(app, ["models", "compare", "v1", "v2", "--models-dir", models])
    assert result.exit_code == 0 and "| measure | v1 | v2 | change |" in " ".join(result.output.split())


@pytest.mark.parametrize("champion, challenger, margin, promote", [
    (0.70, 0.70, 0.0, True),    # not lower: promoted
    (0.70, 0.69, 0.0, False),   # lower: kept, not promoted
    (0.70, 0.69, 0.02, True),   # lower but within the margin
    (0.70, 0.60, 0.02, False),
])
def test_retrain_gate_promotes_only_when_not_lower_than_champion_minus_margin(
        monkeypatch, three_models, champion, challenger, margin, promote):
    registry.promote("v1", three_models)
    table = pd.DataFrame({"measure": ["macro_f1_core"], "champion": [champion], "challenger": [challenger]})
    monkeypatch.setattr(retraining, "compare_on", lambda heldout, models: table)
    decision, _ = retraining.challenge(object(), three_models, pd.DataFrame(), margin)
    assert decision["promote"] is promote and decision["champion"] == "v1"


def test_retrain_gate_keeps_a_champion_that_reads_real_reports_better(monkeypatch, three_models):
    """Better on the written held-out passages is not enough: worse on the real held-out Ofsted
    reports keeps the champion (a TF-IDF challenger against the encoder default)."""
    registry.promote("v1", three_models)
    table = pd.DataFrame({"measure": ["macro_f1_core", "macro_f1_real"], "champion": [0.655, 0.630],
                          "challenger": [0.680, 0.400]})
    monkeypatch.setattr(retraining, "compare_on", lambda heldout, models: table)
    decision, _ = retraining.challenge(object(), three_models, pd.DataFrame(), 0.0)
    assert not decision["promote"] and "real held-out reports" in decision["reason"]
    table["challenger"] = [0.680, 0.640]
    decision, _ = retraining.challenge(object(), three_models, pd.DataFrame(), 0.0)
    assert decision["promote"]


def test_retrain_compare_on_scores_real_rows_on_present_core_themes_only():
    class Fixed:  # tags weak_risk_assessment on every passage
        themes_ = ("optimism_bias", "weak_risk_assessment", "poor_information_sharing", "written_agreements")

        def predict(self, texts):
            return np.array([[0, 1, 0, 0]] * len(texts))

    heldout = pd.DataFrame({
        "text": ["a", "b", "c", "d"], "core_only": [False, False, True, True],
        "labels": [["weak_risk_assessment"], [], ["weak_risk_assessment"], []],
    })
    table = retraining.compare_on(heldout, {"m": Fixed()}).set_index("measure")["m"]
    # real rows: one theme present, F1 2/3 for it; the absent themes do not drag the mean to 0
    assert table["macro_f1_real"] == pytest.approx(0.667, abs=1e-3)


def test_retrain_without_a_champion_promotes_the_first_model(monkeypatch, tmp_path):
    table = pd.DataFrame({"measure": ["macro_f1_core"], "challenger": [0.1]})
    monkeypatch.setattr(retraining, "compare_on", lambda heldout, models: table)
    decision, _ = retraining.challenge(object(), tmp_path, pd.DataFrame(), 0.0)
    assert decision["promote"] and decision["champion"] is None


# -- an honest retrain on a small label set ----------------------------------------------------------

@pytest.fixture(scope="module")
def small_setup(tmp_path_factory):
    """A few team-written documents, a champion trained on them, and decisions on other passages."""
    root = tmp_path_factory.mktemp("retrain")
    labels_dir, models_dir, store = root / "labels", root / "models", root / "store"
    labels_dir.mkdir()
    frame = load_labels()
    docs = sorted(frame["doc"].unique())
    train_docs = [d for d in docs if not is_heldout(d)]
    keep = train_docs[::4][:9] + [d for d in docs if is_heldout(d)][:3]
    rows = frame[frame["doc"].isin(keep)][["id", "text", "labels", "doc", "kind", "section"]]
    rows.to_json(labels_dir / "passages-small.jsonl", orient="records", lines=True, force_ascii=False)
    champion = retraining.retrain(labels_dir, store, models_dir, **FAST)  # no decisions yet: the first default
    # Decisions: passages of other written documents, as two reviewers of a run would decide them.
    others = frame[~frame["doc"].isin(keep) & frame["labels"].map(bool)].head(40)
    decisions = []
    for k, row in enumerate(others.itertuples()):
        doc = _doc(False, k % 5)
        for theme in CORE_THEMES:
            value = "accept" if theme in row.labels else "reject"
            decisions.append(_decision(f"run:{row.id}", doc, row.text, theme, value, "alice" if k % 2 else "bo", k % 60))
    L.append_decisions(decisions, store)
    return labels_dir, models_dir, store, champion


def test_retrain_trains_on_the_real_sentences_that_themes_train_uses(small_setup, monkeypatch):
    # The champion from `themes train` learned from real report sentences; a challenger trained
    # without them would be compared on unequal terms. The real loader is replaced by a small frame
    # so the test does not rebuild text from ../shared (minutes); what is checked is that they flow in.
    labels_dir, _, store, _ = small_setup
    written, _ = retraining.training_frame(labels_dir, store, with_real=False)
    docs = [d for d in (f"real-report-{i}.pdf" for i in range(40)) if not is_heldout(d)][:6]
    real = pd.DataFrame([
        {"id": f"real:{d}:{k}", "text": f"Sentence {k} of {d}: the plan was not reviewed.", "labels": [],
         "doc": d, "section": None, "kind": "hard_negative", "source": "real:ofsted_dev.a",
         "annotator": "a", "file": "real/ofsted_dev.a.jsonl"} for d in docs for k in range(3)
    ])
    monkeypatch.setattr(retraining, "load_real_training", lambda: real)
    frame, decisions = retraining.training_frame(labels_dir, store, with_real=True)
    assert len(frame) == len(written) + len(real)
    result = retraining.fit_candidate(frame, decisions, **{k: v for k, v in FAST.items() if k != "with_real"})
    assert result.card["real_training"] == {"train_sentences": len(real), "sets": ["real:ofsted_dev.a"]}


def test_retrain_first_model_becomes_default_without_a_champion(small_setup):
    _, models_dir, _, champion = small_setup
    assert champion.promoted and champion.champion is None
    assert registry.history(models_dir)[0]["to"] == champion.version
    assert champion.card["n_label_decisions"] == 0


def test_retrain_end_to_end_trains_on_decisions_and_records_their_hash(small_setup):
    labels_dir, models_dir, store, champion = small_setup
    before = registry.default_version(models_dir)
    result = retraining.retrain(labels_dir, store, models_dir, margin=0.05, **FAST)
    card = json.loads((result.folder / "card.json").read_text())
    assert card["label_decisions_hash"] == L.decisions_hash(L.load_decisions(store))
    assert card["n_label_decisions"] == 160 and card["n_label_decision_passages_trained"] == 40
    assert card["n_train_passages"] == champion.card["n_train_passages"] + 40
    assert card["undecided_themes_filled_by"] == before
    assert card["challenge"]["champion"] == before
    table = result.table.set_index("measure")
    assert {"champion", "challenger"} <= set(table.columns) and set(CORE_THEMES) <= set(table.index)
    expected = result.challenger_f1 >= result.champion_f1 - 0.05 - 1e-9
    assert result.promoted is expected
    assert registry.default_version(models_dir) == (result.version if expected else before)
    assert (result.folder / "card.md").read_text().startswith(f"# Model card: {result.version}")
    print(f"champion {result.champion_f1:.3f} challenger {result.challenger_f1:.3f} promoted {result.promoted}")


def test_retrain_a_worse_candidate_is_kept_but_not_promoted(small_setup):
    labels_dir, models_dir, store, _ = small_setup
    before = registry.default_version(models_dir)
    result = retraining.retrain(labels_dir, store, models_dir, margin=-1.0, **FAST)  # no model can clear +1.0
    assert not result.promoted and registry.default_version(models_dir) == before
    assert result.version in registry.list_versions(models_dir) and result.version != before
    assert "not promoted" in result.card["challenge"]["reason"]


@pytest.mark.slow
def test_retrain_flow_runs_under_prefect(small_setup, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from flows.retrain import retrain as retrain_flow

    labels_dir, models_dir, store, _ = small_setup
    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    before = registry.default_version(models)
    with prefect_test_harness(server_startup_timeout=180):
        result = retrain_flow(str(labels_dir), str(store), str(models), margin=1.0, **FAST)
        assert result.promoted and registry.default_version(models) == result.version != before
        assert registry.history(models)[-1]["reason"] == result.reason
        from themes.cli import app

        cli = CliRunner().invoke(app, ["retrain", "--labels", str(labels_dir), "--store", str(store),
                                       "--models-dir", str(models), "--fast", "--no-promote"])
    assert cli.exit_code == 0, cli.output
    assert "| measure | champion | challenger |" in " ".join(cli.output.split()) and "the default is unchanged" in cli.output
    assert registry.default_version(models) == result.version and len(registry.list_versions(models)) == \
        len(registry.list_versions(models_dir)) + 2
