"""The run's reports: a self-contained HTML page, an Excel workbook, and a short Markdown summary.

The HTML page needs no network: charts are PNGs inlined as base64 and every link is an anchor
within the page. Every number in its tables links to the passages behind it (document, page,
score and the terms that pushed the score up).
"""

from __future__ import annotations

import base64
import functools
import io
import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import jinja2
import pandas as pd

from themes.aggregate import Aggregates, counted_passages
from themes.store import atomic_write, atomic_write_text

#: Tagged passages shown per document under each theme (the rest are counted, not shown).
PASSAGES_PER_DOCUMENT = 3
#: Co-occurring pairs listed before the rest are folded away (all are in cooccurrence.csv).
CO_PAIRS_SHOWN = 15
#: Kept for callers of the first report: the cap on passages per theme in the evidence list.
TOP_PASSAGES = 8

RAW_COLOUR = "#3b6ea5"
ADJUSTED_COLOUR = "#d9822b"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _label(theme: str, labels: dict[str, str] | None) -> str:
    return (labels or {}).get(theme, theme)


def _has_adjusted(prevalence: pd.DataFrame) -> bool:
    return "adjusted_share" in prevalence and bool(prevalence["adjusted_share"].notna().any())


def prevalence_chart_png(prevalence: pd.DataFrame, labels: dict[str, str] | None = None) -> bytes:
    """Share of documents per theme with 95% intervals, raw and corrected side by side, as PNG."""
    plt = _pyplot()
    table = prevalence.sort_values("share").reset_index(drop=True)
    names = [textwrap.fill(_label(t, labels), 32) for t in table["theme"]]
    adjusted = _has_adjusted(table)
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(table) + 1.6), dpi=100)
    pos = list(range(len(table)))
    height = 0.38 if adjusted else 0.7
    raw_err = [(table["share"] - table["ci_low"]) * 100, (table["ci_high"] - table["share"]) * 100]
    ax.barh([p + (height / 2 if adjusted else 0) for p in pos], table["share"] * 100, height=height,
            xerr=raw_err, color=RAW_COLOUR, capsize=2, label="raw share (95% Wilson interval)")
    if adjusted:
        adj = table.fillna({"adjusted_share": 0, "adjusted_low": 0, "adjusted_high": 0})
        adj_err = [(adj["adjusted_share"] - adj["adjusted_low"]) * 100,
                   (adj["adjusted_high"] - adj["adjusted_share"]) * 100]
        ax.barh([p - height / 2 for p in pos], adj["adjusted_share"] * 100, height=height, xerr=adj_err,
                color=ADJUSTED_COLOUR, capsize=2, label="corrected for classifier error (95% bootstrap)")
        notes = table["adjusted_note"] if "adjusted_note" in table else pd.Series([""] * len(table))
        for p, value, note in zip(pos, table["adjusted_share"], notes.fillna("")):
            if pd.isna(value):
                why = "unreliable (sens + spec - 1 too small)" if str(note).startswith("unreliable") else "not estimable"
                ax.text(1, p - height / 2, why, va="center", fontsize=7, color="#555")
    ax.set_yticks(pos, names)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of documents where the theme is present")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return _png(fig)


def trends_chart_png(trends: pd.DataFrame, themes: Sequence[str], labels: dict[str, str] | None = None) -> bytes | None:
    """Share per year for each theme with 95% Wilson intervals (small multiples), or ``None``."""
    if trends.empty:
        return None
    plt = _pyplot()
    themes = [t for t in themes if t in set(trends["theme"])]
    cols = min(4, len(themes))
    rows = math.ceil(len(themes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows + 0.4), dpi=100, sharex=True,
                             sharey=True, squeeze=False)
    years = sorted({int(float(y)) for y in trends["year"]})
    for ax, theme in zip(axes.flat, themes):
        part = trends[trends["theme"] == theme].assign(y=lambda f: f["year"].astype(float)).sort_values("y")
        err = [(part["share"] - part["ci_low"]) * 100, (part["ci_high"] - part["share"]) * 100]
        ax.errorbar(part["y"], part["share"] * 100, yerr=err, fmt="o-", color=RAW_COLOUR, ms=3, capsize=2, lw=1)
        ax.set_title(textwrap.shorten(_label(theme, labels), 38, placeholder="…"), fontsize=7)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(themes):]:
        ax.axis("off")
    if len(years) > 1:
        axes.flat[0].set_xticks(years[:: max(1, len(years) // 5)])
    fig.supylabel("% of documents", fontsize=8)
    # Fixed margins: tight_layout over a dozen panels costs seconds.
    fig.subplots_adjust(left=0.08, right=0.98, top=0.94 if rows > 1 else 0.88, bottom=0.12 if rows == 1 else 0.06,
                        hspace=0.4, wspace=0.12)
    return _png(fig)


def cooccurrence_heatmap_png(cooccurrence: pd.DataFrame, themes: Sequence[str],
                             labels: dict[str, str] | None = None) -> bytes | None:
    """Theme × theme heat map of log2 lift, each cell annotated with the documents having both."""
    if cooccurrence.empty:
        return None
    import numpy as np

    plt = _pyplot()
    themes = [t for t in themes if t in set(cooccurrence["theme_a"])]
    lift = cooccurrence.pivot(index="theme_a", columns="theme_b", values="lift").reindex(index=themes, columns=themes)
    both = cooccurrence.pivot(index="theme_a", columns="theme_b", values="n_both").reindex(index=themes, columns=themes)
    with np.errstate(divide="ignore"):
        values = np.log2(lift.to_numpy(dtype=float))
    values[np.isinf(values)] = -2  # lift 0: never together
    size = 0.45 * len(themes) + 2.5
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=100)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-2, vmax=2)
    names = [textwrap.shorten(_label(t, labels), 34, placeholder="…") for t in themes]
    ax.set_xticks(range(len(themes)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(themes)), names, fontsize=7)
    for i in range(len(themes)):
        for j in range(len(themes)):
            if i != j and not pd.isna(both.iat[i, j]):
                dark = not math.isnan(values[i, j]) and abs(values[i, j]) > 1.2
                ax.text(j, i, str(int(both.iat[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if dark else "black")
    bar = fig.colorbar(image, ax=ax, shrink=0.7)
    bar.set_label("log2 lift (0 = together as often as chance)", fontsize=7)
    ax.set_title("Documents with both themes (numbers) and lift (colour)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _fmt(value: object, kind: str = "num") -> str:
    """A table cell's text: percentages, p-values and floats rounded; missing values as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if kind == "pct":
        return f"{float(value) * 100:.0f}%"
    if kind == "p":
        return f"{float(value):.3f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _corrected(row: dict) -> str:
    """The corrected share with its interval, or why there is none (row: a prevalence record)."""
    if not _missing(row.get("adjusted_share")):
        return f"{_fmt(row['adjusted_share'], 'pct')} ({_fmt(row['adjusted_low'], 'pct')}–{_fmt(row['adjusted_high'], 'pct')})"
    note = str(row.get("adjusted_note") or "")
    return ("unreliable" if note.startswith("unreliable") else
            "not corrected" if note.startswith("not corrected") else "not estimable")


def _tagged_passages(aggregates: Aggregates) -> dict[str, int]:
    """Theme -> counted passages tagged with it."""
    counts = aggregates.passage_counts
    return {str(t): int(n) for t, n in zip(counts["theme"], counts["n_passages_tagged"])} if len(counts) else {}


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts for the template, missing values as ``None``."""
    return [{k: None if _missing(v) else v for k, v in row.items()} for row in frame.to_dict("records")]


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _count_words(n: int) -> str:
    return {1: "one", 2: "two", 3: "three"}.get(int(n), str(n))


class _Anchors:
    """Stable, HTML-safe anchor ids for themes, documents and document sets."""

    def __init__(self, doc_ids: Sequence[str]) -> None:
        self.doc_ref = {d: f"d{i}" for i, d in enumerate(doc_ids)}
        self.sets: dict[tuple[str, tuple[str, ...]], str] = {}
        self.set_titles: dict[str, str] = {}

    @staticmethod
    def theme(theme: str) -> str:
        return f"ev-{theme}"

    def doc(self, theme: str, doc_id: str) -> str:
        return f"ev-{theme}--{self.doc_ref[doc_id]}"

    def doc_set(self, theme: str, doc_ids: Sequence[str], title: str) -> str:
        """Anchor of a list of documents (with the theme's passages) behind one number."""
        if not doc_ids:
            return self.theme(theme)
        key = (theme, tuple(sorted(doc_ids)))
        if key not in self.sets:
            self.sets[key] = f"set-{len(self.sets) + 1}"
            self.set_titles[self.sets[key]] = title
        return self.sets[key]


@functools.cache
def _template() -> jinja2.Template:
    """``templates/report.html.j2``, shipped as package data; every value is escaped unless marked."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("themes", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["fmt"] = _fmt
    env.filters["pct"] = functools.partial(_fmt, kind="pct")
    return env.get_template("report.html.j2")


def _b64(png: bytes | None) -> str | None:
    return None if png is None else base64.b64encode(png).decode("ascii")


def _reading_caveats(documents: pd.DataFrame) -> dict[str, list]:
    """Documents that count but were read imperfectly: OCRed scans, and files with pages missing."""
    ok = documents[documents["status"] == "ok"]
    ocr = [str(f) for f in ok.loc[ok["ocr"].astype(bool), "file"]] if "ocr" in ok else []
    partial = ok[ok["bad_pages"].fillna("").astype(str) != ""] if "bad_pages" in ok else ok.iloc[:0]
    return {"ocr_files": ocr, "partly_read": [(str(r.file), str(r.bad_pages)) for r in partial.itertuples()]}


def _docs_behind_breakdowns(aggregates: Aggregates, documents: pd.DataFrame) -> dict[tuple[str, str, str], list[str]]:
    """(by, group, theme) -> the documents with the theme in that group, grouped once.

    Filtering the whole table again for every row of the breakdown grew with the square of the corpus.
    """
    doc_themes = aggregates.document_themes.merge(
        documents[["doc_id", "year", "area", "review_type"]].drop_duplicates("doc_id"), on="doc_id")
    present = doc_themes[doc_themes["present"]]
    behind: dict[tuple[str, str, str], list[str]] = {}
    for by in aggregates.breakdowns["by"].unique():
        key = present[by].map(lambda v: "" if pd.isna(v) else str(int(v)) if isinstance(v, float) else str(v))
        for (group, theme), ids in present.groupby([key, present["theme"]])["doc_id"]:
            behind[(by, group, theme)] = list(ids)
    return behind


def _evidence(aggregates: Aggregates, predictions: pd.DataFrame, counted: pd.DataFrame, themes: Sequence[str],
              doc_info: pd.DataFrame, anchors: _Anchors, label: Callable[[str], str],
              explanations: dict[tuple[str, str], list[str]]) -> list[dict]:
    """Per theme, the documents where it is present and their top tagged passages."""
    tagged = predictions[predictions["tagged"].astype(bool)].merge(counted, on="passage_id")
    tagged_of = {theme: dict(tuple(group.groupby("doc_id"))) for theme, group in tagged.groupby("theme")}
    dt = aggregates.document_themes
    sections = []
    for theme in themes:
        rows_of = tagged_of.get(theme, {})
        present = dt[(dt["theme"] == theme) & dt["present"]].sort_values("max_score", ascending=False)
        docs = []
        for doc_id in present["doc_id"]:
            info = doc_info.loc[doc_id]
            mine = rows_of.get(doc_id, tagged.iloc[:0]).sort_values("score", ascending=False)
            docs.append({
                "anchor": anchors.doc(theme, doc_id), "file": str(info["file"]),
                "title": str(info.get("title") or ""), "n_tagged": len(mine),
                "meta": [str(v) for v in (info.get("year"), info.get("area"), info.get("review_type"))
                         if not pd.isna(v)],
                "passages": [{"page": p.page, "score": p.score, "text": str(p.text),
                              "section": p.section if isinstance(p.section, str) else None,
                              "why": explanations.get((p.passage_id, theme))}
                             for p in mine.head(PASSAGES_PER_DOCUMENT).itertuples()],
                "more": len(mine) - PASSAGES_PER_DOCUMENT,
            })
        sections.append({"theme": theme, "label": label(theme), "anchor": anchors.theme(theme), "docs": docs,
                         "n_tagged": sum(map(len, rows_of.values()))})
    return sections


def _boilerplate(aggregates: Aggregates, doc_info: pd.DataFrame) -> dict:
    """The clusters of near-identical passages left out, with their files and one example each."""
    bp = aggregates.boilerplate
    if not len(bp):
        return {"boilerplate": []}
    rows = [{"cluster": cluster, "n_documents": group["n_documents"].iloc[0], "n_passages": len(group),
             "files": sorted({str(doc_info.loc[d, "file"]) for d in group["doc_id"] if d in doc_info.index}),
             "example": str(group["text"].iloc[0])[:300]}
            for cluster, group in bp.groupby("cluster")]
    return {"boilerplate": rows, "boilerplate_reason": str(bp["reason"].iloc[0]).split(" of text")[0],
            "boilerplate_min_documents": int(bp["n_documents"].min())}


def render_report(
    aggregates: Aggregates,
    documents: pd.DataFrame,
    passages: pd.DataFrame,
    predictions: pd.DataFrame,
    themes: Sequence[str],
    model_version: str,
    labels: dict[str, str] | None = None,
    explanations: dict[tuple[str, str], list[str]] | None = None,
) -> str:
    """The report as one HTML string that opens offline (``templates/report.html.j2``).

    Charts (prevalence raw and corrected, trends by year, co-occurrence heat map), the counting
    rules, the tables, and per theme the documents and passages behind every number.

    Args:
        aggregates: the run's tables (``themes.aggregate.aggregate``).
        documents, passages, predictions: the run's frames as written to ``out/``.
        themes: theme ids in display order.
        model_version: the classifier version, shown at the top.
        labels: theme id -> readable label.
        explanations: optional (passage_id, theme) -> terms that pushed the score up.
    """
    settings = aggregates.settings
    counted, _ = counted_passages(passages, settings.get("sections"), aggregates.boilerplate
                                  if len(aggregates.boilerplate) else None)
    n_ok = int((documents["status"] == "ok").sum())
    anchors = _Anchors(list(documents["doc_id"]))
    doc_info = documents.drop_duplicates("doc_id").set_index("doc_id")  # copies: one entry
    present = aggregates.document_themes[aggregates.document_themes["present"]]
    present_docs = {t: list(g["doc_id"]) for t, g in present.groupby("theme")}
    order = {t: i for i, t in enumerate(themes)}

    def label(t: str) -> str:
        return _label(t, labels)

    def in_order(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values("theme", key=lambda c: c.map(order))

    n_tagged = _tagged_passages(aggregates)
    prevalence = [{**r, "label": label(r["theme"]), "anchor": anchors.theme(r["theme"]), "corrected": _corrected(r),
                   "note": str(r.get("adjusted_note") or ""), "n_passages": n_tagged.get(r["theme"], 0)}
                  for r in _records(in_order(aggregates.prevalence))]

    # Each breakdown number links to the list of documents behind it.
    behind = _docs_behind_breakdowns(aggregates, documents)
    breakdowns = []
    for r in _records(aggregates.breakdowns):
        title = f"{label(r['theme'])} — {r['by']} {r['group']}"
        target = anchors.doc_set(r["theme"], behind.get((r["by"], r["group"], r["theme"]), []), title)
        breakdowns.append({**r, "label": label(r["theme"]), "anchor": anchors.theme(r["theme"]), "target": target})

    # Co-occurring pairs, strongest first, each count linking to the documents with both.
    co = aggregates.cooccurrence
    pairs = []
    if len(co):
        found = co[(co["theme_a"] < co["theme_b"]) & (co["n_both"] > 0)].sort_values(["n_both", "lift"], ascending=False)
        for r in found.itertuples():
            docs = sorted(set(present_docs.get(r.theme_a, [])) & set(present_docs.get(r.theme_b, [])))
            target = anchors.doc_set(r.theme_a, docs, f"{label(r.theme_a)} with {label(r.theme_b)}")
            pairs.append({"label_a": label(r.theme_a), "label_b": label(r.theme_b), "target": target,
                          "n_both": r.n_both, "lift": r.lift})

    def with_theme(frame: pd.DataFrame) -> list[dict]:
        return [{**r, "label": label(r["theme"]), "anchor": anchors.theme(r["theme"])} for r in _records(frame)]

    evidence = _evidence(aggregates, predictions, counted, themes, doc_info, anchors, label, explanations or {})
    doc_sets = [{"id": sid, "title": anchors.set_titles[sid],
                 "docs": [(anchors.doc(theme, d), str(doc_info.loc[d, "file"])) for d in docs]}
                for (theme, docs), sid in anchors.sets.items()]
    comparison = aggregates.comparison
    return _template().render(
        settings=settings, model_version=model_version, label=label, n_ok=n_ok,
        n_unread=len(documents) - n_ok, **_reading_caveats(documents),
        presence_text=str(settings.get("presence_rule") or (
            f"at least {_count_words(settings.get('min_passages') or 1)} counted passage(s) score above the "
            "theme's threshold")),
        sections_text=str(settings.get("sections_counted", "all sections")),
        passages_counted=settings.get("passages_counted", len(counted)),
        passages_total=settings.get("passages_total", len(passages)),
        headline=settings.get("headline", "raw"), correction_documents=settings.get("correction_documents"),
        prevalence_png=_b64(prevalence_chart_png(aggregates.prevalence, labels)),
        trends_png=_b64(trends_chart_png(aggregates.trends, themes, labels)),
        heat_png=_b64(cooccurrence_heatmap_png(co, themes, labels)),
        prevalence=prevalence, breakdowns=breakdowns, pairs=pairs, pairs_shown=CO_PAIRS_SHOWN,
        trends=with_theme(in_order(aggregates.trend_tests)), comparison=with_theme(comparison),
        panel_n=comparison["panel_n"].iloc[0] if len(comparison) else 538,
        classifier_errors=list(aggregates.classifier_errors.itertuples()), evidence=evidence,
        doc_sets=doc_sets, **_boilerplate(aggregates, doc_info),
        unreadable=list(documents[documents["status"] != "ok"].itertuples()),
    )


def write_report(path: Path, html_text: str) -> None:
    """Write the HTML report atomically."""
    atomic_write_text(path, html_text)


def write_workbook(path: Path, aggregates: Aggregates) -> None:
    """Write every table of a run to one Excel workbook, one sheet per table, atomically."""
    tables = aggregates.all_tables()

    def write(tmp: Path) -> None:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, frame in tables.items():
                # Lists (e.g. bbox) are not Excel cells; show them as text.
                safe = frame.map(lambda v: str(v) if isinstance(v, (list, tuple, set)) else v) if len(frame) else frame
                safe.to_excel(writer, sheet_name=name[:31], index=False)

    atomic_write(Path(path), write)


def summary_markdown(aggregates: Aggregates, labels: dict[str, str] | None = None,
                     model_version: str | None = None) -> str:
    """A short Markdown summary of a run (for a Prefect artifact): counting rules and the prevalence table."""
    s = aggregates.settings
    prev = aggregates.prevalence
    n_docs = int(prev["n_documents"].max()) if len(prev) else 0
    n_tagged = _tagged_passages(aggregates)
    pct = functools.partial(_fmt, kind="pct")
    lines = [
        f"**Practice themes in {n_docs} documents**" + (f" (model `{model_version}`)" if model_version else ""),
        "",
        (f"Headline: {'raw share of documents (95% Wilson interval)' if s.get('headline', 'raw') == 'raw' else 'corrected share'};"
        f" corrected share beside it ({s.get('corrected_with', 'none')}). "
        f"Present when: {s.get('presence_rule', 'at least one tagged passage')}. "
        f"Sections counted: {s.get('sections_counted', 'all sections')}. "
        f"Boilerplate left out: {s.get('passages_dropped_boilerplate', 0)} passage(s) in "
        f"{s.get('boilerplate_clusters', 0)} cluster(s). Passages counted: {s.get('passages_counted', '?')}."),
        "",
        "| Theme | Documents | Raw share (95% CI) | Corrected (95% CI) | Tagged passages |",
        "|---|---|---|---|---|",
    ]
    for r in _records(prev.sort_values("share", ascending=False)):
        lines.append(f"| {_label(r['theme'], labels)} | {r['n_present']}/{r['n_documents']} | {pct(r['share'])} "
                     f"({pct(r['ci_low'])}–{pct(r['ci_high'])}) | {_corrected(r)} | {n_tagged.get(r['theme'], 0)} |")
    lines += ["", ("The Panel's 2018–19 figures (538 rapid reviews: weak risk assessment 41%, poor information "
              "exchange 40%, overly optimistic practice 32%) come from a different corpus and are not a "
              "like-for-like comparison.")]
    return "\n".join(lines) + "\n"
