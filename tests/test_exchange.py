"""Label exchange: each export in its tool's real format, round trips, and the CLI commands."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET

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

    with pytest.raises(ValueError, match=r"^\[E502\] Prodigy record 1: Decision .*astrology"):
        X.import_decisions(tmp_path / "p.jsonl", "prodigy", known_themes=load_codebook().ids)


@pytest.mark.parametrize("text, code", [("{not json\n", "E513"),
                                        (json.dumps({"text": "t", "answer": "accept"}) + "\n", "E510")])
def test_exchange_import_refuses_a_broken_export_with_its_code(tmp_path, text, code):
    (tmp_path / "p.jsonl").write_text(text)
    with pytest.raises(ValueError, match="p.jsonl|Prodigy record 1") as info:
        X.import_decisions(tmp_path / "p.jsonl", "prodigy", annotator="a")
    assert info.value.code == code


def test_exchange_unknown_format_is_e506(tmp_path):
    with pytest.raises(ValueError, match="'excel'.*prodigy") as info:
        X.import_decisions(tmp_path / "x", "excel")
    assert info.value.code == "E506"


def test_exchange_cli_export_import_and_agreement(tmp_path, mixed):
    from themes.cli import app

    store, other = tmp_path / "store", tmp_path / "other"
    L.append_decisions(mixed, store)
    runner = CliRunner()
    out = runner.invoke(app, ["labels", "export", "-o", str(tmp_path / "x.json"), "--format", "labelstudio",
                              "--store", str(store)])
    assert out.exit_code == 0 and "Deprecated" not in out.output, out.output
    out = runner.invoke(app, ["labels", "import", str(tmp_path / "x.json"), "-f", "labelstudio", "--store", str(other)])
    assert out.exit_code == 0 and "added 5 new" in out.output, out.output
    out = runner.invoke(app, ["labels", "agreement", "--store", str(other)])
    assert out.exit_code == 0 and "Krippendorff" in out.output and "optimism_bias" in out.output, out.output
    out = runner.invoke(app, ["labels", "import", str(tmp_path / "x.json"), "-f", "excel", "--store", str(other)])
    assert out.exit_code != 0 and "not a format" in out.output


# -- each export against its tool's real format ----------------------------------------------------


def test_exchange_labelstudio_export_matches_its_labelling_config(tmp_path, mixed):
    """Every result names a Choices control of the config (from_name), its Text tag (to_name) and a choice
    the control offers; the task data holds the key the Text tag reads; completed_by is an e-mail object."""
    X.export_decisions(mixed, tmp_path / "ls.json", "labelstudio")
    tasks = json.loads((tmp_path / "ls.json").read_text(encoding="utf-8"))
    view = ET.fromstring(X.labelstudio_config(sorted({d.theme for d in mixed})))
    text_tag = view.find("Text")
    data_key = text_tag.get("value").removeprefix("$")
    controls = {c.get("name"): c for c in view.iter("Choices")}
    assert len(tasks) == 2 and sum(len(t["annotations"]) for t in tasks) == len(mixed)
    for task in tasks:
        assert isinstance(task["data"][data_key], str) and task["data"][data_key]
        for annotation in task["annotations"]:
            assert set(annotation["completed_by"]) == {"email"}  # Label Studio refuses a bare string
            (result,) = annotation["result"]
            assert result["type"] == "choices"
            control = controls[result["from_name"]]
            assert result["to_name"] == control.get("toName") == text_tag.get("name")
            assert set(result["value"]["choices"]) <= {c.get("value") for c in control.iter("Choice")}


def test_exchange_labelstudio_multichoice_config_names_one_control_of_theme_choices():
    view = ET.fromstring(X.labelstudio_config(["optimism_bias", "neglect"], {"neglect": "Neglect"}, multi=True))
    (control,) = view.iter("Choices")
    assert (control.get("name"), control.get("toName"), control.get("choice")) == ("themes", "text", "multiple")
    assert [c.get("value") for c in control.iter("Choice")] == ["optimism_bias", "neglect"]


def test_exchange_prodigy_export_has_the_hashes_and_fields_prodigy_keeps(tmp_path, mixed):
    X.export_decisions(mixed, tmp_path / "p.jsonl", "prodigy")
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(mixed)
    for record, d in zip(records, mixed, strict=True):
        for key in ("_input_hash", "_task_hash", "_timestamp"):
            assert isinstance(record[key], int) and not isinstance(record[key], bool), key
        assert -(2**31) <= record["_input_hash"] < 2**31 and -(2**31) <= record["_task_hash"] < 2**31
        assert record["_annotator_id"] == d.annotator and record["answer"] == d.value
        assert (record["text"], record["label"], record["_view_id"]) == (d.text, d.theme, "classification")
    same_text = [r for r in records if r["text"] == records[0]["text"]]
    assert len({r["_input_hash"] for r in same_text}) == 1  # one input, however many questions
    by_task = {(r["text"], r["label"]): r["_task_hash"] for r in records}
    assert len(set(by_task.values())) == len(by_task)  # a theme asked of a text is its own task


@pytest.mark.parametrize("name", ["dataset", "records.json"])
def test_exchange_argilla_export_writes_records_and_dataset_settings(tmp_path, mixed, name):
    target = tmp_path / name
    X.export_decisions(mixed, target, "argilla", themes=["optimism_bias", "written_agreements",
                                                         "weak_risk_assessment", "neglect"])
    records_path, settings_path, dataset_path = X.argilla_paths(target)
    if name == "dataset":  # the folder Argilla's Dataset.to_disk writes and from_disk reads
        assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == {
            "records.json", ".argilla/settings.json", ".argilla/dataset.json"}
        assert json.loads(dataset_path.read_text())["name"]
    else:
        assert settings_path == tmp_path / "records.settings.json" and dataset_path is None
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    records = json.loads(records_path.read_text(encoding="utf-8"))
    assert [f["name"] for f in settings["fields"]] == ["text"] and settings["fields"][0]["settings"]["type"] == "text"
    questions = {q["name"]: q for q in settings["questions"]}
    assert set(questions) == {"optimism_bias", "written_agreements", "weak_risk_assessment", "neglect"}
    assert settings["allow_extra_metadata"] is True  # provenance rides as metadata
    for record in records:
        assert set(record) <= {"id", "fields", "metadata", "suggestions", "responses", "vectors"}
        assert set(record["fields"]) <= {f["name"] for f in settings["fields"]}
        assert None not in record["metadata"].values()
        for question, answers in record["responses"].items():
            q = questions[question]
            assert q["settings"]["type"] == "label_selection"
            offered = {o["value"] for o in q["settings"]["options"]}
            for answer in answers:
                assert set(answer) == {"value", "user_id", "status"}  # what Argilla's Response(**answer) takes
                assert answer["value"] in offered and answer["status"] == "submitted"
                assert str(uuid.UUID(answer["user_id"])) == answer["user_id"]
        for question, suggestion in record["suggestions"].items():
            assert question in questions and set(suggestion) == {"value", "score", "agent"}


def test_exchange_argilla_folder_import_reads_its_records(tmp_path, mixed):
    X.export_decisions(mixed, tmp_path / "ds", "argilla")
    back = X.import_decisions(tmp_path / "ds", "argilla")
    assert {(d.annotator, d.theme, d.value) for d in back} == {(d.annotator, d.theme, d.value) for d in mixed}


def test_exchange_cli_labelstudio_config_writes_the_config_the_export_uses(tmp_path):
    from themes.cli import app

    out = CliRunner().invoke(app, ["labels", "labelstudio-config", "-o", str(tmp_path / "config.xml"),
                                   "--themes", "optimism_bias,neglect"])
    assert out.exit_code == 0, out.output
    view = ET.parse(tmp_path / "config.xml").getroot()
    assert [c.get("name") for c in view.iter("Choices")] == ["optimism_bias", "neglect"]
    out = CliRunner().invoke(app, ["labels", "labelstudio-config", "--themes", "astrology"])
    assert out.exit_code != 0 and "astrology" in out.output


def test_exchange_cli_export_old_positional_path_still_works_with_a_deprecation_note(tmp_path, mixed):
    from themes.cli import app

    store = tmp_path / "store"
    L.append_decisions(mixed, store)
    out = CliRunner().invoke(app, ["labels", "export", str(tmp_path / "old.csv"), "--store", str(store)])
    assert out.exit_code == 0, out.output
    assert "Deprecated" in out.stderr and "-o" in out.stderr and "Deprecated" not in out.stdout
    assert (tmp_path / "old.csv").read_bytes().startswith(b"\xef\xbb\xbfpassage_id")
    out = CliRunner().invoke(app, ["labels", "export", "--store", str(store)])
    assert out.exit_code != 0 and "-o" in out.output
    out = CliRunner().invoke(app, ["labels", "export", "a.csv", "-o", "b.csv", "--store", str(store)])
    assert out.exit_code != 0 and not (tmp_path / "b.csv").exists()
