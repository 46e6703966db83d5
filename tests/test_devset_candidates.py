"""The one-off candidate draw of the real-text dev sets (benchmarks/devset_candidates.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from themes.config import CORE_THEMES
from themes.devset import Locator, normalise

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed
from benchmarks import devset_candidates as C


def test_devset_candidates_select_candidates_respects_caps_and_topic_share() -> None:
    sentences = []
    for f in range(150):
        for k in range(10):
            word = [
                "risk assessment",
                "information",
                "progress",
                "written agreement",
                "the garden",
            ][k % 5]
            text = f"In file {f} sentence {k} the {word} was described in some detail."
            sentences.append((Locator.of("ofsted", f"f{f:03d}.pdf", 1, text, 0, len(text)), text))
    cands = C.select_candidates(sentences, n=200, seed=1)
    assert len(cands) == 200
    per_file: dict[str, int] = {}
    for c in cands:
        per_file[c.locator.file] = per_file.get(c.locator.file, 0) + 1
    assert max(per_file.values()) <= 4 and len(per_file) >= 100
    topical = [c for c in cands if c.pool.startswith("topic:")]
    assert len(topical) == 110
    assert cands == C.select_candidates(sentences, n=200, seed=1)
    with pytest.raises(ValueError, match="files"):
        C.select_candidates(sentences[:50], n=40, seed=1, min_files=100)


# --------------------------------------------------------------------------------------------
# The targeted dev set (ofsted_targeted): likely positives and look-alike praise
# --------------------------------------------------------------------------------------------


def _toy_sentences() -> list[tuple[Locator, str]]:
    """Sentences written for these tests: cue and praise sentences for each theme, 60 files."""
    texts = [
        "A written agreement was relied on although the father did not keep to it.",
        "Safety plans are reviewed with families at every visit.",
        "Workers are over-optimistic and cases close too early, before change is sustained.",
        "Improvement has been sustained across the service this year.",
        "Risk assessments do not consider the history of the family.",
        "Assessments are thorough and consider the history of the family.",
        "Information is not shared with schools before strategy discussions.",
        "Police share information promptly with the front door.",
        "The garden was large and the house was near the park.",
    ]
    out = []
    for f in range(60):
        for k, base in enumerate(texts):
            text = f"In file {f} item {k}: {base[0].lower()}{base[1:]}"
            out.append((Locator.of("ofsted", f"f{f:03d}.pdf", 1 + k, text, 0, len(text)), text))
    return out


def test_devset_candidates_select_targeted_pools_caps_and_exclusion() -> None:
    sentences = _toy_sentences()
    excluded = [loc for loc, _ in sentences[:9]]  # every sentence of file f000
    cands = C.select_targeted(
        sentences, exclude=excluded, per_theme=10, praise=8, max_per_file=3, seed=1
    )
    pools: dict[str, int] = {}
    per_file: dict[str, int] = {}
    for c in cands:
        pools[c.pool] = pools.get(c.pool, 0) + 1
        per_file[c.locator.file] = per_file.get(c.locator.file, 0) + 1
    assert pools == {
        **{f"cue:{t}": 10 for t in CORE_THEMES},
        **{f"praise:{t}": 2 for t in CORE_THEMES},
    }
    assert max(per_file.values()) <= 3 and "f000.pdf" not in per_file
    for c in cands:
        has_cue = bool(C.CRITICISM_RE.search(normalise(c.text)))
        assert has_cue == c.pool.startswith("cue:"), c.text
        assert "garden" not in c.text
    assert cands == C.select_targeted(
        sentences, exclude=excluded, per_theme=10, praise=8, max_per_file=3, seed=1
    )


def test_devset_candidates_select_targeted_prefers_strong_phrases() -> None:
    weak = "The plan was not clear about what the family would do next."
    strong = "The risk assessment did not consider the history of violence."
    sentences = []
    for f in range(20):
        for k, text in enumerate((weak, f"{strong} ({f})")):
            sentences.append((Locator.of("ofsted", f"g{f}.pdf", k + 1, text, 0, len(text)), text))
    cands = C.select_targeted(sentences, per_theme=10, praise=0, max_per_file=1, seed=3)
    risk = [c for c in cands if c.pool == "cue:weak_risk_assessment"]
    assert len(risk) == 10 and all("history of violence" in c.text for c in risk)


def test_devset_candidates_scan_cache_round_trips(tmp_path: Path) -> None:
    pairs = [(loc, text) for loc, text in _toy_sentences()[:5]]
    scan = C.ScanResult(sentences=pairs, files=1, pages=5, seconds=2.5)
    C.save_scan(scan, tmp_path / "scan.jsonl")
    assert C.load_scan(tmp_path / "scan.jsonl") == scan
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(ValueError, match="not a scan cache"):
        C.load_scan(tmp_path / "bad.jsonl")
