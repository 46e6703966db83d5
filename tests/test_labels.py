"""The label store: append-only decisions, kill-safe writes, exchange formats, agreement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from themes import labels as L
from themes.labels import Decision


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


def test_labels_append_then_read_keeps_every_field(tmp_path, mixed):
    assert L.append_decisions(mixed, tmp_path) == 5
    read, report = L.read_store(tmp_path)
    assert sorted(read, key=lambda d: d.decision_id) == sorted(mixed, key=lambda d: d.decision_id)
    assert report.skipped == []
    assert {p.name for p in tmp_path.iterdir()} == {"decisions-alice.jsonl", "decisions-bo.jsonl"}


def test_labels_store_is_append_only(tmp_path, mixed):
    L.append_decisions(mixed[:2], tmp_path)
    before = (tmp_path / "decisions-alice.jsonl").read_bytes()
    L.append_decisions(mixed[2:], tmp_path)
    after = (tmp_path / "decisions-alice.jsonl").read_bytes()
    assert after.startswith(before) and len(after) > len(before)


def test_labels_latest_decision_wins_and_both_annotators_are_kept(tmp_path, mixed):
    L.append_decisions(mixed, tmp_path)
    decisions = L.load_decisions(tmp_path)
    per = L.current_labels(decisions).set_index(["passage_id", "theme", "annotator"])["value"]
    assert per[("p1", "optimism_bias", "alice")] == "accept"
    assert per[("p1", "optimism_bias", "bo")] == "reject"
    overall = L.current_labels(decisions, per_annotator=False).set_index(["passage_id", "theme"])["value"]
    assert overall[("p1", "optimism_bias")] == "accept"  # alice at :05 is later than bo at :03
    assert len(decisions) == 5  # nothing was overwritten


def test_labels_same_second_decisions_keep_file_order(tmp_path):
    L.append_decisions([decision(value="accept", t=7), decision(value="reject", t=7, note="second")], tmp_path)
    current = L.current_labels(L.load_decisions(tmp_path))
    assert list(current["value"]) == ["reject"]


_WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import themes.labels as labels
    store, start, batch, slow = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "slow"
    if slow:  # a slow disk: each write call moves 1 kB and takes 10 ms, so a kill lands inside a record
        real_write = os.write
        def write(fd, data):
            time.sleep(0.01)
            return real_write(fd, bytes(data[:1000]))
        labels.os.write = write
    text = "x" * 6000
    i = start
    while True:
        records = [labels.Decision(passage_id=f"p{i + k}", doc_id="d", page=1, char_start=0, char_end=1, text=text,
                                   theme="neglect", value="accept", annotator="killed",
                                   time=f"2026-01-01T00:00:00.{i + k:06d}+00:00") for k in range(batch)]
        labels.append_decisions(records, store)
        i += batch
        print(i, flush=True)
""")


def _read_quietly(store: Path):
    """Read the store; torn lines are reported with a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return L.read_store(store)


@pytest.mark.parametrize("batch, slow, wait", [(5, "slow", 0.45), (150, "fast", 0.05), (150, "fast", 0.2)])
def test_labels_a_kill_mid_write_leaves_earlier_decisions_intact(tmp_path, batch, slow, wait):
    earlier = [decision(f"e{i}", annotator="killed", t=i) for i in range(25)]
    L.append_decisions(earlier, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), "0", str(batch), slow],
                            stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # one whole batch is on disk
    time.sleep(wait)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    file = tmp_path / "decisions-killed.jsonl"
    if slow == "slow":
        assert not file.read_bytes().endswith(b"\n")  # the kill did cut a record in half
    read, report = _read_quietly(tmp_path)
    assert len(report.skipped) == (1 if slow == "slow" else len(report.skipped))
    assert [d for d in read if d.passage_id.startswith("e")] == earlier  # intact, in order
    # What the killed writer managed to write is an unbroken prefix of what it meant to write.
    written = sorted(int(d.passage_id[1:]) for d in read if d.passage_id.startswith("p"))
    assert len(written) >= batch and written == list(range(len(written)))
    L.append_decision(decision("after", annotator="killed", t=59), tmp_path)  # still writable
    read, _ = _read_quietly(tmp_path)
    assert read[-1].passage_id == "after" and len(read) == 25 + len(written) + 1


def test_labels_a_torn_last_line_is_skipped_and_the_next_write_starts_clean(tmp_path):
    L.append_decisions([decision("p1"), decision("p2")], tmp_path)
    file = tmp_path / "decisions-alice.jsonl"
    with open(file, "ab") as fh:
        fh.write(b'{"passage_id": "p3", "doc_id": "doc-a", "te')  # what a killed writer leaves
    with pytest.warns(UserWarning, match="torn"):
        read, report = L.read_store(tmp_path)
    assert [d.passage_id for d in read] == ["p1", "p2"] and report.skipped == [("decisions-alice.jsonl", 3)]
    L.append_decision(decision("p4"), tmp_path)
    with pytest.warns(UserWarning):
        read, _ = L.read_store(tmp_path)
    assert [d.passage_id for d in read] == ["p1", "p2", "p4"]


def test_labels_a_line_that_is_not_a_decision_is_named(tmp_path):
    (tmp_path / "decisions-x.jsonl").write_text(json.dumps({"passage_id": "p"}) + "\n")
    with pytest.raises(ValueError, match="decisions-x.jsonl line 1 lacks"):
        L.read_store(tmp_path)


@pytest.mark.parametrize("bad, message", [({"value": "maybe"}, "use 'accept' or 'reject'"),
                                          ({"theme": "astrology"}, "unknown theme"),
                                          ({"annotator": " "}, "empty annotator")])
def test_labels_bad_decisions_are_refused(bad, message):
    from themes.codebook import load_codebook

    fields = {"passage_id": "p", "doc_id": "d", "page": 1, "char_start": 0, "char_end": 5, "text": "Some text."}
    args = {"theme": "neglect", "value": "accept", "annotator": "alice", **bad}
    with pytest.raises(ValueError, match=message):
        L.make_decision(fields, args.pop("theme"), args.pop("value"), args.pop("annotator"),
                        known_themes=load_codebook().ids)


@pytest.mark.parametrize("fmt", L.FORMATS)
def test_labels_export_import_round_trip_keeps_every_decision(tmp_path, mixed, fmt):
    path = tmp_path / f"out.{fmt}"
    assert L.export_decisions(mixed, path, fmt) == len(mixed)
    back = L.import_decisions(path, fmt)
    assert sorted(back, key=lambda d: d.decision_id) == sorted(mixed, key=lambda d: d.decision_id)


@pytest.mark.parametrize("fmt", L.FORMATS)
def test_labels_importing_twice_adds_nothing(tmp_path, mixed, fmt):
    store = tmp_path / "store"
    L.export_decisions(mixed, tmp_path / "x", fmt)
    assert L.add_new(L.import_decisions(tmp_path / "x", fmt), store) == 5
    assert L.add_new(L.import_decisions(tmp_path / "x", fmt), store) == 0
    assert L.decisions_hash(L.load_decisions(store)) == L.decisions_hash(mixed)


def test_labels_csv_opens_in_excel(tmp_path, mixed):
    L.export_decisions(mixed, tmp_path / "d.csv", "csv")
    raw = (tmp_path / "d.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfpassage_id,doc_id,page") and b"\r\n" in raw
    assert "Zoë" in raw.decode("utf-8-sig")


def test_labels_prodigy_multichoice_accepts_chosen_and_rejects_offered(tmp_path):
    record = {"text": "The plan was signed and nobody told the school.", "answer": "accept",
              "options": [{"id": "written_agreements", "text": "Written agreements"},
                          {"id": "poor_information_sharing", "text": "Information sharing"},
                          {"id": "optimism_bias", "text": "Optimism"}],
              "accept": ["written_agreements", "poor_information_sharing"],
              "_annotator_id": "team-cara", "_timestamp": 1790000000}
    ignored = {**record, "answer": "ignore"}
    (tmp_path / "p.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(ignored) + "\n")
    got = {(d.theme, d.value, d.annotator) for d in L.import_decisions(tmp_path / "p.jsonl", "prodigy")}
    assert got == {("written_agreements", "accept", "team-cara"), ("poor_information_sharing", "accept", "team-cara"),
                   ("optimism_bias", "reject", "team-cara")}


def test_labels_labelstudio_multichoice_uses_the_offered_themes(tmp_path):
    tasks = [{"id": 7, "data": {"text": "Nobody asked the school what it knew."},
              "annotations": [{"completed_by": {"email": "dee@example.org"}, "created_at": "2026-11-01T09:00:00Z",
                               "result": [{"from_name": "themes", "to_name": "text", "type": "choices",
                                           "value": {"choices": ["poor_information_sharing"]}}]},
                              {"completed_by": 3, "was_cancelled": True, "result": []}]}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    got = L.import_decisions(tmp_path / "ls.json", "labelstudio",
                             implicit_reject=["poor_information_sharing", "optimism_bias"])
    assert {(d.theme, d.value, d.annotator) for d in got} == {
        ("poor_information_sharing", "accept", "dee@example.org"), ("optimism_bias", "reject", "dee@example.org")}
    assert got[0].time == "2026-11-01T09:00:00+00:00"


def test_labels_argilla_v1_and_v2_records_are_read(tmp_path):
    v1 = {"fields": {"text": "Each incident was treated as a fresh start."},
          "responses": [{"user_id": "eve", "status": "submitted", "values": {"optimism_bias": {"value": "accept"}},
                         "inserted_at": "2026-11-02T10:00:00"}]}
    v2 = {"fields": {"text": "A contract of expectations was signed."}, "metadata": {"doc_id": "d9"},
          "responses": {"themes": [{"user_id": "eve", "value": ["written_agreements"], "status": "submitted",
                                    "inserted_at": "2026-11-02T10:01:00"}]}}
    (tmp_path / "a.json").write_text(json.dumps([v1, v2]))
    got = L.import_decisions(tmp_path / "a.json", "argilla", implicit_reject=["written_agreements", "neglect"])
    assert {(d.theme, d.value, d.doc_id == "d9") for d in got} == {
        ("optimism_bias", "accept", False), ("written_agreements", "accept", True), ("neglect", "reject", True)}


def test_labels_import_names_the_bad_record(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps({"text": "t", "label": "astrology", "answer": "accept",
                                                  "_annotator_id": "a", "_timestamp": 1}) + "\n")
    from themes.codebook import load_codebook

    with pytest.raises(ValueError, match="Prodigy record 1.*astrology"):
        L.import_decisions(tmp_path / "p.jsonl", "prodigy", known_themes=load_codebook().ids)


def test_labels_krippendorff_alpha_matches_published_and_hand_computed_values():
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", example C: 4 coders, 12 units.
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    units = [[v for v in unit if v is not None] for unit in zip(a, b, c, d)]
    assert L.krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)
    # By hand: units (1,1) (0,0) (1,0) (0,0): o00=4, o11=2, o01=o10=1; n0=5, n1=3, n=8;
    # alpha = 1 - (n-1) * (o01+o10) / (2 * n0 * n1) = 1 - 7 * 2 / 30 = 0.5333.
    assert L.krippendorff_alpha_nominal([[1, 1], [0, 0], [1, 0], [0, 0]]) == pytest.approx(8 / 15)
    assert L.krippendorff_alpha_nominal([[1, 1], [1]]) != L.krippendorff_alpha_nominal([[1, 1], [1]])  # NaN


def test_labels_agreement_gives_kappa_and_alpha_per_theme(tmp_path):
    # alice: accept, reject, accept, reject; bo: accept, reject, reject, reject (and bo revised p3).
    rows = [("p1", "accept", "accept"), ("p2", "reject", "reject"), ("p3", "accept", "reject"), ("p4", "reject", "reject")]
    decisions = []
    for i, (p, a, b) in enumerate(rows):
        decisions += [decision(p, value=a, t=i), decision(p, annotator="bo", value=b, t=10 + i)]
    decisions.append(decision("p3", annotator="bo", value="accept", t=1))  # older than bo's reject: superseded
    result = L.agreement(L.to_frame(decisions))
    pair = result.pairs.iloc[0]
    # po = 3/4; pe = (2/4)(1/4) + (2/4)(3/4) = 1/2; kappa = (3/4 - 1/2) / (1/2) = 0.5
    assert (pair["n_both"], pair["percent_agreement"], pair["kappa"]) == (4, 0.75, 0.5)
    assert result.themes.iloc[0]["alpha"] == pytest.approx(8 / 15, abs=1e-4)


def test_labels_decisions_hash_follows_content_not_order(mixed):
    assert L.decisions_hash(mixed) == L.decisions_hash(list(reversed(mixed)))
    assert L.decisions_hash(mixed) != L.decisions_hash(mixed[:-1])


def test_labels_cli_export_import_and_agreement(tmp_path, mixed):
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
