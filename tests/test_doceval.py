"""The held-out document-evaluation set (corpus/doc-eval): complete, separate and not copied."""

from __future__ import annotations

import json
import re

import yaml

from themes.config import CORE_THEMES, PROJECT_ROOT

DOC_EVAL = PROJECT_ROOT / "corpus" / "doc-eval"
LABELS = PROJECT_ROOT / "corpus" / "labels"
SAMPLE = PROJECT_ROOT / "corpus" / "sample"


def _specs() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((DOC_EVAL / "src").glob("*.yaml"))}


def _block_texts(spec: dict) -> list[str]:
    out = []
    for sec in spec["sections"]:
        for block in sec["blocks"]:
            kind, value = next(iter(block.items()))
            if kind in ("p", "h"):
                out.append(str(value))
            elif kind == "bullets":
                out += [str(v) for v in value]
            elif kind == "box":
                out.append(str(value["text"]))
    return out


def _sentences(text: str) -> set[str]:
    flat = re.sub(r"\s+", " ", text.lower())
    return {s.strip() for s in re.split(r"(?<=[.!?])\s+", flat) if len(s.split()) >= 8}


def test_doceval_has_forty_documents_each_with_its_pdf_and_truth() -> None:
    specs = _specs()
    assert len(specs) >= 40
    for stem, spec in specs.items():
        assert (DOC_EVAL / f"{stem}.pdf").is_file(), f"{stem}.pdf not built"
        expected = json.loads((DOC_EVAL / "expected" / f"{stem}.json").read_text(encoding="utf-8"))
        assert sorted(expected["known_themes"]) == sorted(spec["known_themes"]), stem


def test_doceval_each_core_theme_is_absent_from_about_a_third() -> None:
    specs = _specs().values()
    for theme in CORE_THEMES:
        absent = sum(theme not in s["known_themes"] for s in specs)
        assert 0.25 * len(specs) <= absent <= 0.45 * len(specs), (theme, absent)


def test_doceval_is_not_the_sample_corpus_and_reuses_no_labelled_sentence() -> None:
    specs = _specs()
    assert not set(specs) & {p.stem for p in SAMPLE.glob("*.pdf")}
    labelled: set[str] = set()
    for path in LABELS.glob("passages-*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                labelled |= _sentences(json.loads(line)["text"])
    shared = [(stem, s) for stem, spec in specs.items() for t in _block_texts(spec)
              for s in _sentences(t) & labelled]  # fmt: skip
    assert not shared, f"sentences copied from corpus/labels: {shared[:3]}"
