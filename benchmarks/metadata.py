"""How often ingest gets a report's year and area right, on the Ofsted corpus against its MANIFEST.csv.

Two readings of every file, each with ``ingest_pdf`` limited to the first pages (metadata comes
from the cover and pages 1–3 only):

- **as the pipeline sees it**: the real file names, which carry the inspection date and the
  authority (``2016-05-16_bury_80443.pdf``), so the year comes from the name and the area from
  the cover, falling back to the name;
- **text only**: the same files behind neutral names (``doc-00001.pdf`` symlinks), so everything
  comes from the PDF's own pages. This is the measure of the cover-page reader, and what a
  researcher's folder of downloads with arbitrary names gets.

Truth is ``MANIFEST.csv``: ``local_authority`` for the area and the year of ``inspection_date``.
Areas are compared after normalising case, "&"/"and", punctuation, "Council"/"Borough of"
wrappings and a few official name variants (:data:`AREA_ALIASES`). A report is often published a
month or two after the inspection, so a year off by one is counted separately.

Run::

    nice .venv/bin/python benchmarks/metadata.py            # all 401 files, ~10-20 min on 2 busy cores
    nice .venv/bin/python benchmarks/metadata.py --limit 50

Writes ``benchmarks/results/metadata.md`` and ``metadata.json`` (file names, authority names and
years only, never the reports' text).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from themes.config import INGEST, shared_dir
from themes.ingest import MANIFEST_NAME, ingest_many

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Official name variants that are the same authority, after :func:`normalise_area`.
AREA_ALIASES = {
    "county durham": "durham",
    "city of london": "london corporation",
    "corporation of london": "london corporation",
    "hull": "kingston upon hull",
    "bristol city": "bristol",
    "city of bristol": "bristol",
    "city of york": "york",
    "bcp": "bournemouth christchurch and poole",
}
_PREFIX_RE = re.compile(
    r"^(?:the\s+)?(?:royal\s+borough\s+of|london\s+borough\s+of|metropolitan\s+borough\s+of"
    r"|borough\s+of|county\s+of|council\s+of\s+the|city\s+and\s+county\s+of)\s+"
)
_SUFFIX_RE = re.compile(
    r"\s+(?:metropolitan\s+borough\s+council|borough\s+council|county\s+council|city\s+council"
    r"|district\s+council|council|metropolitan\s+borough|borough)$"
)


def normalise_area(name: str | None) -> str:
    """An authority name reduced for comparison: lower case, "and" for "&", no punctuation,
    no "Council"/"Borough of" wrapping, official variants mapped to one spelling."""
    if not name:
        return ""
    text = name.lower().replace("&", " and ").replace("-", " ").replace("’", "'")
    text = re.sub(r"[^a-z' ]", " ", text).replace("'", "")
    text = " ".join(text.split())
    text = _SUFFIX_RE.sub("", _PREFIX_RE.sub("", text)).strip()
    return AREA_ALIASES.get(text, text)


@dataclasses.dataclass
class Row:
    """One file: the truth and what each reading found."""

    file: str
    area_true: str
    year_true: int
    area_named: str | None = None
    year_named: int | None = None
    area_text: str | None = None
    year_text: int | None = None
    review_type_text: str | None = None
    title_text: bool = False
    status_text: str = ""


def read_manifest(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "MANIFEST.csv").open(newline="", encoding="utf-8-sig") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


def read_metadata(files: list[Path], pages: int, workers: int) -> dict[str, Any]:
    """Documents (metadata only) for ``files`` read with at most ``pages`` pages, by file name."""
    settings = dataclasses.replace(INGEST, max_pages=pages) if pages else INGEST
    return {doc.file: doc for doc in ingest_many(files, workers=workers, settings=settings)}


def score(rows: list[Row], which: str) -> dict[str, Any]:
    """Accuracy of ``which`` ("named" or "text") readings of year and area."""
    n = len(rows)
    years = [getattr(r, f"year_{which}") for r in rows]
    areas = [getattr(r, f"area_{which}") for r in rows]
    year_ok = sum(y == r.year_true for y, r in zip(years, rows))
    year_near = sum(y is not None and abs(y - r.year_true) <= 1 for y, r in zip(years, rows))
    area_ok = sum(normalise_area(a) == normalise_area(r.area_true) for a, r in zip(areas, rows))
    return {
        "files": n,
        "year_exact": year_ok / n, "year_within_1": year_near / n,
        "year_missing": sum(y is None for y in years),
        "area_exact": area_ok / n, "area_missing": sum(not a for a in areas),
    }


def mismatches(rows: list[Row], which: str, field: str, limit: int = 20) -> list[tuple[str, Any, Any]]:
    out = []
    for r in rows:
        got, true = getattr(r, f"{field}_{which}"), getattr(r, f"{field}_true")
        same = (normalise_area(got) == normalise_area(true)) if field == "area" else got == true
        if not same:
            out.append((r.file, true, got))
    return out[:limit] if limit else out


def to_markdown(info: dict[str, Any], rows: list[Row], check: dict[str, Any] | None) -> str:
    named, text = score(rows, "named"), score(rows, "text")
    lines = [
        "# Metadata benchmark: year and area against the Ofsted MANIFEST.csv",
        "",
        (f"Run {info['when']}: {info['files']} files of `{info['corpus']}`, each read with ingest "
        f"limited to its first {info['pages']} pages, {info['seconds']:.0f} s. "
        f"Command: `{info['command']}`."),
        "",
        "| reading | year exact | year ±1 | year missing | area exact | area missing |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, s in (("as the pipeline sees it (real file names)", named),
                     ("text only (neutral file names)", text)):
        lines.append(f"| {label} | {s['year_exact']:.1%} | {s['year_within_1']:.1%} | {s['year_missing']} "
                     f"| {s['area_exact']:.1%} | {s['area_missing']} |")
    lines += [
        "",
        ("With the real names the year comes from the file name, so it is right by construction; the "
        "area is read from the cover first and the file name only fills a gap. The text-only row "
        "is the measure of the cover-page reader."),
        "",
        (f"Review types read (text only): {dict(Counter(r.review_type_text for r in rows).most_common())}. "
        f"Titles found: {sum(r.title_text for r in rows)}/{len(rows)}. "
        f"Statuses: {dict(Counter(r.status_text for r in rows))}."),
    ]
    if check:
        lines += ["", (f"First {info['pages']} pages versus the whole file (text only, {check['files']} "
                  f"files): {check['same']} of {check['files']} give the same year and area.")]
    for which, label in (("text", "text only"), ("named", "as the pipeline sees it")):
        for field in ("area", "year"):
            found = mismatches(rows, which, field, limit=0)
            lines += ["", f"## {field.capitalize()} mismatches, {label} ({len(found)}; first 20)", ""]
            if not found:
                lines.append("None.")
                continue
            lines += ["| file | manifest | read |", "|---|---|---|"]
            lines += [f"| `{f}` | {t} | {g if g is not None else '—'} |" for f, t, g in found[:20]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None, help="folder of PDFs with MANIFEST.csv "
                        "(default ../shared/ofsted)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N files in name order")
    parser.add_argument("--pages", type=int, default=3, help="pages read per file (0: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check-full", type=int, default=10,
                        help="re-read this many files whole to check the page limit changes nothing")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    corpus = args.corpus or ((shared_dir() or Path("/nonexistent")) / "ofsted")
    if not (corpus / "MANIFEST.csv").is_file():
        parser.error(f"{corpus} has no MANIFEST.csv; pass --corpus DIR")
    # ingest reads a lower-case manifest.csv beside the PDFs as overrides; that would be the answer.
    if (corpus / MANIFEST_NAME).is_file() and (corpus / MANIFEST_NAME).samefile(corpus / "MANIFEST.csv"):
        parser.error(f"{corpus}/{MANIFEST_NAME} would be read as overrides (case-insensitive file "
                     "system); copy the PDFs elsewhere first")
    truth = read_manifest(corpus)
    files = sorted(p for p in corpus.iterdir() if p.suffix.lower() == ".pdf")
    files = files[: args.limit] if args.limit else files
    start = time.perf_counter()
    named = read_metadata(files, args.pages, args.workers)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-metadata-") as tmp:
        aliases = {}
        for i, path in enumerate(files, start=1):
            alias = Path(tmp) / f"doc-{i:05d}.pdf"
            alias.symlink_to(path)
            aliases[alias.name] = path.name
        text = {aliases[k]: v for k, v in read_metadata(sorted(Path(tmp).iterdir()), args.pages,
                                                         args.workers).items()}
        check = None
        if args.check_full:
            subset = sorted(Path(tmp).iterdir())[: args.check_full]
            full = {aliases[k]: v for k, v in read_metadata(subset, 0, args.workers).items()}
            same = sum((full[n].year, normalise_area(full[n].area)) ==
                       (text[n].year, normalise_area(text[n].area)) for n in full)
            check = {"files": len(full), "same": same}
    seconds = time.perf_counter() - start
    for path in files:
        t = truth[path.name]
        a, b = named[path.name], text[path.name]
        rows.append(Row(
            file=path.name, area_true=t["local_authority"], year_true=int(t["inspection_date"][:4]),
            area_named=a.area, year_named=a.year, area_text=b.area, year_text=b.year,
            review_type_text=b.review_type, title_text=bool(b.title),
            status_text="ok" if b.status == "ok" else str(b.error_kind),
        ))
    info = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "corpus": str(corpus),
            "files": len(files), "pages": args.pages or "all", "seconds": seconds,
            "command": "python benchmarks/metadata.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    markdown = to_markdown(info, rows, check)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metadata.md").write_text(markdown, encoding="utf-8")
    (args.out / "metadata.json").write_text(json.dumps(
        {"info": info, "named": score(rows, "named"), "text": score(rows, "text"), "check": check,
         "rows": [dataclasses.asdict(r) for r in rows]}, indent=1), encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
