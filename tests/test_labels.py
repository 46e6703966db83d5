"""The label store: append-only decisions, kill-safe writes, the current label, counts and hash."""

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
from conftest import decision

from themes import labels as L


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
    raw = file.read_bytes()
    read, report = _read_quietly(tmp_path)
    # A torn line exists exactly when the file does not end in a newline, and it is the last line.
    torn = [] if raw.endswith(b"\n") else [(file.name, raw.count(b"\n") + 1)]
    assert report.skipped == torn
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
    with pytest.warns(UserWarning, match=r"^\[E505\] Skipped 1 torn"):
        read, report = L.read_store(tmp_path)
    assert [d.passage_id for d in read] == ["p1", "p2"] and report.skipped == [("decisions-alice.jsonl", 3)]
    L.append_decision(decision("p4"), tmp_path)
    with pytest.warns(UserWarning):
        read, _ = L.read_store(tmp_path)
    assert [d.passage_id for d in read] == ["p1", "p2", "p4"]


def test_labels_a_line_that_is_not_a_decision_is_named(tmp_path):
    (tmp_path / "decisions-x.jsonl").write_text(json.dumps({"passage_id": "p"}) + "\n")
    with pytest.raises(ValueError, match=r"^\[E504\] decisions-x.jsonl line 1 lacks"):
        L.read_store(tmp_path)


@pytest.mark.parametrize("bad, code, message", [({"value": "maybe"}, "E501", "use 'accept' or 'reject'"),
                                                ({"theme": "astrology"}, "E502", "unknown theme"),
                                                ({"annotator": " "}, "E503", "empty annotator")])
def test_labels_bad_decisions_are_refused(bad, code, message):
    from themes.codebook import load_codebook

    fields = {"passage_id": "p", "doc_id": "d", "page": 1, "char_start": 0, "char_end": 5, "text": "Some text."}
    args = {"theme": "neglect", "value": "accept", "annotator": "alice", **bad}
    with pytest.raises(ValueError, match=message) as info:
        L.make_decision(fields, args.pop("theme"), args.pop("value"), args.pop("annotator"),
                        known_themes=load_codebook().ids)
    assert info.value.code == code


def test_labels_decisions_hash_follows_content_not_order(mixed):
    assert L.decisions_hash(mixed) == L.decisions_hash(list(reversed(mixed)))
    assert L.decisions_hash(mixed) != L.decisions_hash(mixed[:-1])
