"""Tests of the real-text dev set: locators, rebuild, label files, gold files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from themes import devset
from themes.config import CORE_THEMES, shared_dir
from themes.devset import (
    Locator,
    load_real_labels,
    page_text,
    rebuild,
    text_sha1,
)
from themes.segment import split_sentences

REAL = devset.REAL_LABELS_DIR

def _make_pdf(path: Path, pages: list[list[str]]) -> None:
    """A small text PDF: one list of lines per page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path.parent.mkdir(parents=True, exist_ok=True)
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for lines in pages:
        y = 780
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()


@pytest.fixture
def fake_shared(tmp_path: Path) -> Path:
    """A shared folder with one two-page Ofsted-like PDF and one seeds text file."""
    _make_pdf(
        tmp_path / "ofsted" / "2020-01-01_testshire_1.pdf",
        [
            [
                "Help and protection",
                "Assessments are not updated when a new partner",
                "joins the household. Information is shared promptly by the police.",
            ],
            [
                "Written agreements are used too often with parents. They give",
                "false reassurance to managers.",
            ],
        ],
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "000_test.txt").write_text(
        "Headline here\nIn a third of reviews practitioners were too hopeful. Nobody checked.\n",
        encoding="utf-8",
    )
    return tmp_path


def _locators_of(shared: Path) -> list[tuple[Locator, str]]:
    out = []
    pdf = shared / "ofsted" / "2020-01-01_testshire_1.pdf"
    for page in (1, 2):
        text = page_text(pdf, page)
        for s, e in split_sentences(text):
            out.append((Locator.of("ofsted", pdf.name, page, text, s, e), text[s:e]))
    txt = shared / "seeds" / "000_test.txt"
    text = txt.read_text(encoding="utf-8")
    for s, e in split_sentences(text):
        out.append((Locator.of("seeds", txt.name, 0, text, s, e), text[s:e]))
    return out


def test_devset_locators_round_trip_pdf_and_txt(fake_shared: Path) -> None:
    pairs = _locators_of(fake_shared)
    texts = [t for _, t in pairs]
    assert any("false reassurance" in t for t in texts)
    assert any(loc.source == "seeds" and "too hopeful" in t for loc, t in pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rebuild([loc for loc, _ in pairs], fake_shared) == texts


def test_devset_text_sha1_ignores_layout_and_case_but_not_words() -> None:
    assert text_sha1("  Risk  was\nNOT assessed. ") == "587974e60506a008f2096f4a27529c8c20c6be28"
    assert text_sha1("Risk was not\tassessed.") == text_sha1("RISK WAS NOT ASSESSED.")
    assert text_sha1("Risk was assessed.") != text_sha1("Risk was not assessed.")


def test_devset_locator_id_is_stable() -> None:
    loc = Locator("ofsted", "2020-01-01_testshire_1.pdf", 3, 120, 160, "x")
    assert loc.id == "ofsted-2020-01-01_testshire_1-p3-120"


def test_devset_rebuild_hash_mismatch_gives_none_and_warns(fake_shared: Path) -> None:
    pairs = _locators_of(fake_shared)
    good, _ = pairs[0]
    bad = Locator(good.source, good.file, good.page, good.char_start, good.char_end, "0" * 40)
    with pytest.warns(UserWarning, match=r"^\[E528\] .*testshire_1\.pdf page 1"):
        out = rebuild([good, bad], fake_shared)
    assert out[0] is not None and out[1] is None


def test_devset_rebuild_offsets_past_page_end_give_none(fake_shared: Path) -> None:
    loc = Locator("ofsted", "2020-01-01_testshire_1.pdf", 2, 5000, 5100, text_sha1("x"))
    with pytest.warns(UserWarning, match=r"^\[E527\] .*outside"):
        assert rebuild([loc], fake_shared) == [None]


def test_devset_rebuild_without_shared_warns_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("THEMES_SHARED_DIR", str(tmp_path / "absent"))
    locs = [Locator("ofsted", "a.pdf", 1, 0, 10, "0" * 40)] * 3
    with pytest.warns(UserWarning, match=r"^\[E524\] .*no shared folder") as record:
        assert rebuild(locs) == [None, None, None]
    assert len(record) == 1


def test_devset_load_real_labels_drops_unrebuildable_rows(
    fake_shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    monkeypatch.setattr(devset, "REAL_LABELS_DIR", real)
    pairs = _locators_of(fake_shared)
    rows = []
    for loc, _ in pairs[:3]:
        rows.append(
            {"id": loc.id, **loc.__dict__, "labels": ["written_agreements"], "annotator": "a"}
        )
    rows[2]["sha1"] = "f" * 40
    (real / "toy.a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning) as record:
        frame = load_real_labels("toy.a", fake_shared)
    assert any("dropped 1 of 3" in str(w.message) for w in record)
    assert list(frame["id"]) == [pairs[0][0].id, pairs[1][0].id]
    assert list(frame["text"]) == [pairs[0][1], pairs[1][1]]
    assert frame["labels"].iloc[0] == ["written_agreements"]
    assert {"page", "char_start", "sha1", "annotator"} <= set(frame.columns)


def _label_files() -> list[Path]:
    return sorted(p for p in REAL.glob("*.jsonl") if not p.name.endswith(".candidates.jsonl"))


@pytest.mark.parametrize("path", _label_files(), ids=lambda p: p.name)
def test_devset_label_file_is_valid(path: Path) -> None:
    stem = path.name.split(".")[0]
    candidates = {r["id"]: r for r in devset.read_jsonl(REAL / f"{stem}.candidates.jsonl")}
    rows = devset.read_jsonl(path)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert set(ids) <= set(candidates), "ids not among the candidates"
    for row in rows:
        assert "text" not in row, "real text must never be stored"
        assert set(row["labels"]) <= set(CORE_THEMES), row["id"]
        loc = Locator.from_row(row)
        assert loc.id == row["id"]
        assert {k: row[k] for k in devset.LOCATOR_FIELDS} == {
            k: candidates[row["id"]][k] for k in devset.LOCATOR_FIELDS
        }


REBUILD_SAMPLE = 80  # locators per set: a full rebuild opens ~200 PDFs; `themes evaluate` does that


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ofsted_dev.a", "ofsted_targeted.a", "ofsted_search.a", "ofsted_more.gold"])
def test_devset_real_locators_rebuild_from_shared(name: str) -> None:
    shared = shared_dir()
    if shared is None or not (shared / "ofsted").is_dir():
        pytest.skip("no ../shared/ofsted")
    path = REAL / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path.name} not written yet")
    rows = sorted(devset.read_jsonl(path), key=lambda r: r["id"])
    rows = rows[:: max(1, len(rows) // REBUILD_SAMPLE)]  # an even spread over files and pages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        texts = rebuild([Locator.from_row(r) for r in rows], shared)
    rebuilt = sum(t is not None for t in texts)
    assert rebuilt >= 0.98 * len(rows), f"only {rebuilt} of {len(rows)} rebuilt"


def test_devset_targeted_label_file_covers_its_candidates() -> None:
    candidates_path = REAL / "ofsted_targeted.candidates.jsonl"
    labels_path = REAL / "ofsted_targeted.a.jsonl"
    if not labels_path.is_file():
        pytest.skip(f"{labels_path.name} not written yet")
    candidates = devset.read_jsonl(candidates_path)
    labels = devset.read_jsonl(labels_path)
    ids = [r["id"] for r in labels]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert set(ids) == {c["id"] for c in candidates}, "every candidate labelled, nothing else"
    assert all(set(r["labels"]) <= set(CORE_THEMES) and r["annotator"] == "a" for r in labels)
    assert all("text" not in r for r in candidates + labels), "real text must never be stored"
    themes_of_pools = {c["pool"].split(":", 1)[1] for c in candidates}
    assert {c["pool"].split(":", 1)[0] for c in candidates} == {"cue", "praise"}
    assert themes_of_pools == set(CORE_THEMES)
    per_file: dict[str, int] = {}
    for c in candidates:
        per_file[c["file"]] = per_file.get(c["file"], 0) + 1
    assert max(per_file.values()) <= 3
    earlier = devset.read_jsonl(REAL / "ofsted_dev.candidates.jsonl")
    assert not {c["id"] for c in candidates} & {c["id"] for c in earlier}
    assert not {c["sha1"] for c in candidates} & {c["sha1"] for c in earlier}



# --------------------------------------------------------------------------------------------
# Adjudication into gold labels
# --------------------------------------------------------------------------------------------


def _row(item: str, labels: list[str]) -> dict:
    return {"id": item, "source": "ofsted", "file": "f.pdf", "page": 1, "char_start": 0, "char_end": 5,
            "sha1": "0" * 40, "labels": labels}


def test_devset_build_gold_takes_agreement_then_decision() -> None:
    a = [_row("x", ["optimism_bias"]), _row("y", []), _row("z", ["weak_risk_assessment"])]
    b = [_row("x", ["optimism_bias"]), _row("y", ["poor_information_sharing"]), _row("z", [])]
    decisions = [{"id": "y", "labels": [], "rule": "recommendation"},
                 {"id": "z", "labels": ["weak_risk_assessment"], "rule": "plain statement"}]
    gold = devset.build_gold(a, b, decisions)
    assert [(g["id"], g["labels"], g["annotator"]) for g in gold] == [
        ("x", ["optimism_bias"], "gold"), ("y", [], "gold"), ("z", ["weak_risk_assessment"], "gold")]
    with pytest.raises(ValueError, match=r"^\[E522\] Item 'z'.*no adjudication decision"):
        devset.build_gold(a, b, decisions[:1])
    with pytest.raises(ValueError, match="different items") as info:
        devset.build_gold(a, b[:2], decisions)
    assert info.value.code == "E521"


@pytest.mark.parametrize("path", sorted(devset.ADJUDICATION_DIR.glob("*.jsonl")), ids=lambda p: p.name)
def test_devset_gold_file_is_rebuilt_from_its_sources(path: Path) -> None:
    """The stored gold file is exactly a + b + the adjudicator's decisions: nobody edited it by hand."""
    stem = path.stem
    stored = devset.read_jsonl(REAL / f"{stem}.gold.jsonl")
    rebuilt = devset.build_gold(devset.read_jsonl(REAL / f"{stem}.a.jsonl"),
                                devset.read_jsonl(REAL / f"{stem}.b.jsonl"), devset.read_jsonl(path))
    assert stored == rebuilt
    assert all("text" not in d and d.get("rule") for d in devset.read_jsonl(path))
