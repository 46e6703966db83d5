"""Label exchange: each export in its tool's real format, round trips, and the CLI commands."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from themes import exchange as X
from themes import labels as L


@pytest.mark.parametrize("fmt", X.FORMATS)
def test_exchange_export_import_round_trip_keeps_every_decision(tmp_path, mixed, fmt):
    path = tmp_path / f"out.{fmt}"
    assert X.export_decisions(mixed, path, fmt) == len(mixed)
    back = X.import_decisions(path, fmt)
    assert sorted(back, key=lambda d: d.decision_id) == sorted(mixed, key=lambda d: d.decision_id)


@pytest.mark.parametrize("fmt", X.FORMATS)
def test_exchange_importing_twice_adds_nothing(tmp_path, mixed, fmt):
    store = tmp_path / "store"
    X.export_decisions(mixed, tmp_path / "x", fmt)
    assert L.add_new(X.import_decisions(tmp_path / "x", fmt), store) == 5
    assert L.add_new(X.import_decisions(tmp_path / "x", fmt), store) == 0
    assert L.decisions_hash(L.load_decisions(store)) == L.decisions_hash(mixed)


def test_exchange_csv_opens_in_excel(tmp_path, mixed):
    X.export_decisions(mixed, tmp_path / "d.csv", "csv")
    raw = (tmp_path / "d.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfpassage_id,doc_id,page") and b"\r\n" in raw
    assert "Zoë" in raw.decode("utf-8-sig")


def test_exchange_prodigy_multichoice_accepts_chosen_and_rejects_offered(tmp_path):
    record = {"text": "The plan was signed and nobody told the school.", "answer": "accept",
              "options": [{"id": "written_agreements", "text": "Written agreements"},
                          {"id": "poor_information_sharing", "text": "Information sharing"},
                          {"id": "optimism_bias", "text": "Optimism"}],
              "accept": ["written_agreements", "poor_information_sharing"],
              "_annotator_id": "team-cara", "_timestamp": 1790000000}
    ignored = {**record, "answer": "ignore"}
    (tmp_path / "p.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(ignored) + "\n")
    got = {(d.theme, d.value, d.annotator) for d in X.import_decisions(tmp_path / "p.jsonl", "prodigy")}
    assert got == {("written_agreements", "accept", "team-cara"), ("poor_information_sharing", "accept", "team-cara"),
                   ("optimism_bias", "reject", "team-cara")}


def test_exchange_labelstudio_multichoice_uses_the_offered_themes(tmp_path):
    tasks = [{"id": 7, "data": {"text": "Nobody asked the school what it knew."},
              "annotations": [{"completed_by": {"email": "dee@example.org"}, "created_at": "2026-11-01T09:00:00Z",
                               "result": [{"from_name": "themes", "to_name": "text", "type": "choices",
                                           "value": {"choices": ["poor_information_sharing"]}}]},
                              {"completed_by": 3, "was_cancelled": True, "result": []}]}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    got = X.import_decisions(tmp_path / "ls.json", "labelstudio",
                             implicit_reject=["poor_information_sharing", "optimism_bias"])
    assert {(d.theme, d.value, d.annotator) for d in got} == {
        ("poor_information_sharing", "accept", "dee@example.org"), ("optimism_bias", "reject", "dee@example.org")}
    assert got[0].time == "2026-11-01T09:00:00+00:00"


def test_exchange_argilla_v1_and_v2_records_are_read(tmp_path):
    v1 = {"fields": {"text": "Each incident was treated as a fresh start."},
          "responses": [{"user_id": "eve", "status": "submitted", "values": {"optimism_bias": {"value": "accept"}},
                         "inserted_at": "2026-11-02T10:00:00"}]}
    v2 = {"fields": {"text": "A contract of expectations was signed."}, "metadata": {"doc_id": "d9"},
          "responses": {"themes": [{"user_id": "eve", "value": ["written_agreements"], "status": "submitted",
                                    "inserted_at": "2026-11-02T10:01:00"}]}}
    (tmp_path / "a.json").write_text(json.dumps([v1, v2]))
    got = X.import_decisions(tmp_path / "a.json", "argilla", implicit_reject=["written_agreements", "neglect"])
    assert {(d.theme, d.value, d.doc_id == "d9") for d in got} == {
        ("optimism_bias", "accept", False), ("written_agreements", "accept", True), ("neglect", "reject", True)}


def test_exchange_import_names_the_bad_record(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps({"text": "t", "label": "astrology", "answer": "accept",
                                                  "_annotator_id": "a", "_timestamp": 1}) + "\n")
    from themes.codebook import load_codebook

    with pytest.raises(ValueError, match="Prodigy record 1.*astrology"):
        X.import_decisions(tmp_path / "p.jsonl", "prodigy", known_themes=load_codebook().ids)


def test_exchange_cli_export_import_and_agreement(tmp_path, mixed):
    from themes.cli import app

    store, other = tmp_path / "store", tmp_path / "other"
    L.append_decisions(mixed, store)
    runner = CliRunner()
    out = runner.invoke(app, ["labels", "export", str(tmp_path / "x.json"), "--format", "labelstudio",
                              "--store", str(store)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["labels", "import", str(tmp_path / "x.json"), "-f", "labelstudio", "--store", str(other)])
    assert out.exit_code == 0 and "added 5 new" in out.output, out.output
    out = runner.invoke(app, ["labels", "agreement", "--store", str(other)])
    assert out.exit_code == 0 and "Krippendorff" in out.output and "optimism_bias" in out.output, out.output
    out = runner.invoke(app, ["labels", "import", str(tmp_path / "x.json"), "-f", "excel", "--store", str(other)])
    assert out.exit_code != 0 and "not a format" in out.output
