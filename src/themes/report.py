"""The run's reports: a self-contained HTML page, an Excel workbook, and a short Markdown summary.

The HTML page needs no network: charts are PNGs inlined as base64 and every link is an anchor
within the page. Every number in its tables links to the passages behind it (document, page,
score and the terms that pushed the score up).
"""

from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

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


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return "<p>Not enough data for this chart.</p>"
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(value: object, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if kind == "pct":
        return f"{float(value) * 100:.0f}%"
    if kind == "p":
        return f"{float(value):.3f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return html.escape(str(value))


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "tbl") -> str:
    """A table from cells that are already HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _count_words(n: int) -> str:
    return {1: "one", 2: "two", 3: "three"}.get(int(n), str(n))


def _a(href: str, text: str) -> str:
    return f'<a href="#{href}">{text}</a>'


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


def _reading_caveats(documents: pd.DataFrame) -> str:
    """List items for documents that count but were read imperfectly: OCRed scans, missing pages."""
    ok = documents[documents["status"] == "ok"]
    items = []
    if "ocr" in ok and ok["ocr"].astype(bool).any():
        files = ", ".join(html.escape(str(f)) for f in ok.loc[ok["ocr"].astype(bool), "file"])
        items.append(f"<li>Read through OCR, so with recognition errors in their text: {files}.</li>")
    if "bad_pages" in ok:
        partial = ok[ok["bad_pages"].fillna("").astype(str) != ""]
        if len(partial):
            files = ", ".join(f"{html.escape(str(r.file))} (pages {html.escape(str(r.bad_pages))})"
                              for r in partial.itertuples())  # fmt: skip
            items.append(f"<li>Pages that could not be read in otherwise readable files: {files}.</li>")
    return "\n" + "\n".join(items) if items else ""


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
    """The report as one HTML string that opens offline.

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
    labels = labels or {}
    settings = aggregates.settings
    counted, _ = counted_passages(passages, settings.get("sections"), aggregates.boilerplate
                                  if len(aggregates.boilerplate) else None)
    ok_docs = documents[documents["status"] == "ok"]
    anchors = _Anchors(list(documents["doc_id"]))
    doc_info = documents.drop_duplicates("doc_id").set_index("doc_id")  # copies: one entry
    present = aggregates.document_themes[aggregates.document_themes["present"]]
    present_docs = {t: list(g["doc_id"]) for t, g in present.groupby("theme")}

    def label(t: str) -> str:
        return html.escape(_label(t, labels))

    # -- prevalence table: every number links to the theme's evidence ---------------------------
    counts = aggregates.passage_counts.set_index("theme") if len(aggregates.passage_counts) else None
    prev_rows = []
    order = {t: i for i, t in enumerate(themes)}
    for r in aggregates.prevalence.sort_values("theme", key=lambda c: c.map(order)).itertuples():
        ev = anchors.theme(r.theme)
        n_pass = int(counts.loc[r.theme, "n_passages_tagged"]) if counts is not None and r.theme in counts.index else 0
        note = str(getattr(r, "adjusted_note", "") or "")
        adj = (f"{_fmt(r.adjusted_share, 'pct')} ({_fmt(r.adjusted_low, 'pct')}–{_fmt(r.adjusted_high, 'pct')})"
               if not pd.isna(r.adjusted_share) else
               "unreliable" if note.startswith("unreliable") else
               "not corrected" if note.startswith("not corrected") else "not estimable")
        if note:
            adj += f' <span class="why">({html.escape(note)})</span>'
        prev_rows.append([
            _a(ev, label(r.theme)), _a(ev, f"{r.n_present} / {r.n_documents}"),
            _a(ev, f"<b>{_fmt(r.share, 'pct')}</b> ({_fmt(r.ci_low, 'pct')}–{_fmt(r.ci_high, 'pct')})"),
            _a(ev, adj), _a(ev, str(n_pass)),
        ])
    prev_html = _html_table(
        ["Theme", "Documents with theme", "Raw share (95% Wilson)", "Corrected share (95% bootstrap)",
         "Tagged passages"], prev_rows)

    # -- breakdowns: each number links to the list of documents behind it -----------------------
    doc_themes = aggregates.document_themes.merge(
        documents[["doc_id", "year", "area", "review_type"]].drop_duplicates("doc_id"), on="doc_id")
    present_themes = doc_themes[doc_themes["present"]]
    # The documents behind each (by, group, theme), grouped once: filtering the whole table again
    # for every row of the breakdown grew with the square of the corpus.
    docs_behind: dict[tuple[str, str, str], list[str]] = {}
    for by in aggregates.breakdowns["by"].unique():
        key = present_themes[by].map(lambda v: "" if pd.isna(v) else str(int(v)) if isinstance(v, float) else str(v))
        for (group, theme), ids in present_themes.groupby([key, present_themes["theme"]])["doc_id"]:
            docs_behind[(by, group, theme)] = list(ids)
    by_rows = []
    for r in aggregates.breakdowns.itertuples():
        docs = docs_behind.get((r.by, r.group, r.theme), [])
        target = anchors.doc_set(r.theme, docs, f"{_label(r.theme, labels)} — {r.by} {r.group}")
        by_rows.append([html.escape(str(r.by)), html.escape(str(r.group)), _a(anchors.theme(r.theme), label(r.theme)),
                        _a(target, f"{r.n_present} / {r.n_documents}"),
                        _a(target, f"{_fmt(r.share, 'pct')} ({_fmt(r.ci_low, 'pct')}–{_fmt(r.ci_high, 'pct')})")])
    by_html = _html_table(["By", "Group", "Theme", "Documents with theme", "Share (95% Wilson)"], by_rows) \
        if by_rows else "<p>No metadata to split by.</p>"

    trend_rows = [
        [_a(anchors.theme(r.theme), label(r.theme)), f"{r.first_year}–{r.last_year}", str(r.n_years),
         _a(anchors.theme(r.theme), str(r.n_documents)),
         "—" if pd.isna(r.slope_per_year) else f"{r.slope_per_year * 100:+.1f} points/year",
         _fmt(r.p_value, "p")]
        for r in aggregates.trend_tests.sort_values("theme", key=lambda c: c.map(order)).itertuples()
    ]
    trend_html = _html_table(["Theme", "Years", "Years with documents", "Documents", "Change in share",
                              "p (Cochran–Armitage)"], trend_rows) if trend_rows else ""

    # -- co-occurrence: the strongest pairs, each count linking to the documents with both -------
    co = aggregates.cooccurrence
    co_rows = []
    if len(co):
        pairs = co[(co["theme_a"] < co["theme_b"]) & (co["n_both"] > 0)].sort_values(["n_both", "lift"], ascending=False)
        for r in pairs.itertuples():
            docs = sorted(set(present_docs.get(r.theme_a, [])) & set(present_docs.get(r.theme_b, [])))
            target = anchors.doc_set(r.theme_a, docs, f"{_label(r.theme_a, labels)} with {_label(r.theme_b, labels)}")
            co_rows.append([label(r.theme_a), label(r.theme_b), _a(target, str(r.n_both)), _fmt(r.lift)])
    co_head = ["Theme", "With theme", "Documents with both", "Lift"]
    if not co_rows:
        co_html = "<p>No two themes were found in the same document.</p>"
    elif len(co_rows) <= CO_PAIRS_SHOWN:
        co_html = _html_table(co_head, co_rows)
    else:
        co_html = (_html_table(co_head, co_rows[:CO_PAIRS_SHOWN])
                   + f"<details><summary>The other {len(co_rows) - CO_PAIRS_SHOWN} pairs found together</summary>"
                   + _html_table(co_head, co_rows[CO_PAIRS_SHOWN:]) + "</details>")

    comp_rows = [
        [_a(anchors.theme(r.theme), label(r.theme)), html.escape(r.panel_finding),
         _fmt(r.panel_share, "pct") if not pd.isna(r.panel_share) else "no % published", str(r.panel_n),
         _a(anchors.theme(r.theme), f"{_fmt(r.this_share, 'pct')} ({_fmt(r.this_ci_low, 'pct')}–{_fmt(r.this_ci_high, 'pct')})"),
         str(r.this_n)]
        for r in aggregates.comparison.itertuples()
    ]
    comp_html = _html_table(["Theme", "Panel finding", "Panel share", "Panel n", "This run (95% Wilson)",
                             "This run n"], comp_rows)

    # -- evidence per theme --------------------------------------------------------------------
    tagged = predictions[predictions["tagged"].astype(bool)].merge(counted, on="passage_id")
    sections_html = []
    tagged_of = {theme: dict(tuple(group.groupby("doc_id"))) for theme, group in tagged.groupby("theme")}
    for theme in themes:
        rows_of = tagged_of.get(theme, {})
        docs = aggregates.document_themes[(aggregates.document_themes["theme"] == theme)
                                          & aggregates.document_themes["present"]].sort_values("max_score", ascending=False)
        blocks = []
        for d in docs.itertuples():
            info = doc_info.loc[d.doc_id]
            meta = ", ".join(html.escape(str(v)) for v in (info.get("year"), info.get("area"), info.get("review_type"))
                             if not pd.isna(v))
            mine = rows_of.get(d.doc_id, tagged.iloc[:0]).sort_values("score", ascending=False)
            items = []
            for p in mine.head(PASSAGES_PER_DOCUMENT).itertuples():
                why = (explanations or {}).get((p.passage_id, theme))
                why_html = f'<div class="why">why: {html.escape(", ".join(why))}</div>' if why else ""
                section = f" — {html.escape(str(p.section))}" if isinstance(p.section, str) else ""
                items.append(f'<li><div class="src">page {p.page}{section} — score {p.score:.2f}</div>'
                             f"<blockquote>{html.escape(str(p.text))}</blockquote>{why_html}</li>")
            more = len(mine) - PASSAGES_PER_DOCUMENT
            more_html = f'<p class="src">… and {more} more tagged passage(s) in this document.</p>' if more > 0 else ""
            blocks.append(
                f'<div class="doc" id="{anchors.doc(theme, d.doc_id)}"><h4>{html.escape(str(info["file"]))}'
                f'</h4><div class="src">{html.escape(str(info.get("title") or ""))} {("(" + meta + ")") if meta else ""}'
                f" — {len(mine)} tagged passage(s)</div><ol>{''.join(items)}</ol>{more_html}</div>"
            )
        body = "".join(blocks) if blocks else "<p>No counted passage was tagged with this theme.</p>"
        sections_html.append(
            f'<section id="{anchors.theme(theme)}"><h3>{label(theme)} <code>{html.escape(theme)}</code></h3>'
            f'<p class="src">Present in {len(docs)} of {len(ok_docs)} documents; {sum(map(len, rows_of.values()))} tagged passage(s) '
            f"counted.</p>{body}</section>"
        )

    set_html = "".join(
        f'<div class="set" id="{sid}"><b>{html.escape(anchors.set_titles[sid])}</b>: '
        + ", ".join(_a(anchors.doc(theme, d), html.escape(str(doc_info.loc[d, "file"]))) for d in docs)
        + "</div>"
        for (theme, docs), sid in anchors.sets.items()
    )

    # -- boilerplate ---------------------------------------------------------------------------
    bp = aggregates.boilerplate
    if len(bp):
        bp_rows = []
        for cluster, group in bp.groupby("cluster"):
            files = sorted({str(doc_info.loc[d, "file"]) for d in group["doc_id"] if d in doc_info.index})
            bp_rows.append([f'<span id="bp-{cluster}">{cluster}</span>', str(group["n_documents"].iloc[0]),
                            str(len(group)), html.escape(", ".join(files)),
                            f"<blockquote>{html.escape(str(group['text'].iloc[0])[:300])}</blockquote>"])
        bp_html = (f"<p>{html.escape(str(bp['reason'].iloc[0]).split(' of text')[0])}, repeated in at least "
                   f"{int(bp['n_documents'].min())} documents.</p>"
                   + _html_table(["Cluster", "Documents", "Passages", "Files", "Example"], bp_rows))
    else:
        bp_html = "<p>No passage was left out as boilerplate.</p>"

    caveats = _reading_caveats(documents)
    errors = documents[documents["status"] != "ok"]
    errors_html = _html_table(["File", "Problem", "Detail"], [
        [html.escape(str(r.file)), html.escape(str(r.error_kind)), html.escape(str(r.error))] for r in errors.itertuples()
    ]) if len(errors) else "<p>None.</p>"

    ce = aggregates.classifier_errors
    ce_html = _html_table(["Theme", "TP", "FN", "TN", "FP", "Sensitivity", "Specificity"], [
        [label(r.theme), str(r.tp), str(r.fn), str(r.tn), str(r.fp), _fmt(r.sensitivity), _fmt(r.specificity)]
        for r in ce.itertuples()
    ]) if len(ce) else "<p>No held-out error counts were given: corrected shares are not estimable.</p>"

    presence_text = html.escape(str(settings.get("presence_rule") or (
        f"at least {_count_words(settings.get('min_passages') or 1)} counted passage(s) score above the theme's threshold")))
    if settings.get("correction_documents"):
        provenance_text = (
            "Rogan–Gladen corrected shares use " + html.escape(str(settings["corrected_with"])) + ". "
            f"Where sensitivity + specificity − 1 on those documents is below {settings.get('min_youden', 0.2):g}, "
            "the corrected share is reported as unreliable rather than computed; the interval is a bootstrap over "
            "both the evaluation documents and the documents counted here.")
    else:
        provenance_text = ("Corrected shares: " + html.escape(str(settings.get("corrected_with", "none"))) + ".")
    headline = settings.get("headline", "raw")
    headline_text = (
        "the <b>raw share</b> of documents with the theme and its 95% Wilson interval; the corrected share "
        "is shown beside it as a check on how much classifier error could move it"
        if headline == "raw" else
        "the <b>corrected share</b> (Rogan–Gladen) with its bootstrap interval; the raw share is shown beside it"
    )
    sections_text = html.escape(str(settings.get("sections_counted", "all sections")))
    prevalence_png = prevalence_chart_png(aggregates.prevalence, labels)
    trends_png = trends_chart_png(aggregates.trends, themes, labels)
    heat_png = cooccurrence_heatmap_png(co, themes, labels)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>themes report</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
.tbl{{border-collapse:collapse;font-size:0.88em;margin:0.5em 0 1em 0}}
.tbl td,.tbl th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}
.tbl a{{color:inherit;text-decoration:none;border-bottom:1px dotted #3b6ea5}}
blockquote{{margin:0.3em 0 0.2em 0;padding:0.4em 0.8em;background:#f5f7fa;border-left:3px solid #3b6ea5}}
.src{{font-size:0.85em;color:#555}} .why{{font-size:0.8em;color:#7a4b00}} li{{margin-bottom:0.8em}}
.rules{{background:#fbf8ef;border:1px solid #e6dcbc;padding:0.6em 1em}} .doc{{margin-left:1em}}
.set{{font-size:0.85em;margin:0.2em 0}} img{{max-width:100%}} :target{{background:#fff6d6}}
</style></head><body>
<h1>Practice themes in {len(ok_docs)} documents</h1>
<div class="rules"><p><b>How this was counted.</b> The unit is the document (review), as the Panel counts:
a theme is present in a document when {presence_text} (model <code>{html.escape(model_version)}</code>). Passage counts are shown beside document counts.</p>
<ul>
<li>Sections counted: <b>{sections_text}</b> ({settings.get("passages_counted", len(counted))} of
{settings.get("passages_total", len(passages))} passages; {settings.get("passages_outside_sections", 0)} outside the
counted sections; {settings.get("documents_without_counted_passages", 0)} document(s) with no counted passage count as
having no theme).</li>
<li>Boilerplate left out: <b>{settings.get("passages_dropped_boilerplate", 0)}</b> passage(s) in
{settings.get("boilerplate_clusters", 0)} cluster(s) of near-identical text repeated across documents
(<a href="#boilerplate">list</a>).</li>
<li>Headline number: {headline_text}.</li>
<li>{len(documents) - len(ok_docs)} file(s) could not be read (<a href="#unreadable">listed at the end</a>) and are
not in any denominator.</li>{caveats}
</ul></div>
<h2 id="prevalence">Prevalence</h2>
{_img(prevalence_png, "Share of documents per theme, raw and corrected, with 95% intervals")}
{prev_html}
<h2 id="comparison">Beside the Panel's published figures (a different corpus)</h2>
<p>The Panel's first annual report coded {aggregates.comparison["panel_n"].iloc[0] if len(aggregates.comparison) else 538}
rapid reviews (July 2018 – December 2019) by hand. This run is a different set of documents, period and method:
read the two columns side by side, not as a test of one against the other.</p>
{comp_html}
<h2 id="trends">Change over time</h2>
{_img(trends_png, "Share of documents per theme by year with 95% Wilson intervals")}
{trend_html}
<h2 id="cooccurrence">Themes found together</h2>
{_img(heat_png, "Theme by theme co-occurrence heat map")}
{co_html}
<h2 id="breakdowns">By year, area and review type</h2>{by_html}
<h2 id="errors">Classifier error used for the correction</h2>
<p>{provenance_text}</p>
{ce_html}
<h2 id="evidence">Evidence: the documents and passages behind each number</h2>
{"".join(sections_html)}
<h2 id="sets">Document lists behind the breakdown and co-occurrence numbers</h2>
{set_html or "<p>None.</p>"}
<h2 id="boilerplate">Passages left out as boilerplate</h2>{bp_html}
<h2 id="unreadable">Files that could not be read</h2>{errors_html}
</body></html>
"""


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
    counts = aggregates.passage_counts.set_index("theme") if len(aggregates.passage_counts) else None
    pct: Callable[[float], str] = lambda v: "—" if pd.isna(v) else f"{v * 100:.0f}%"
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
    for r in prev.sort_values("share", ascending=False).itertuples():
        note = str(getattr(r, "adjusted_note", "") or "")
        corrected = (f"{pct(r.adjusted_share)} ({pct(r.adjusted_low)}–{pct(r.adjusted_high)})"
                     if not pd.isna(r.adjusted_share) else
                     "unreliable" if note.startswith("unreliable") else
                     "not corrected" if note.startswith("not corrected") else "not estimable")
        n_pass = int(counts.loc[r.theme, "n_passages_tagged"]) if counts is not None and r.theme in counts.index else 0
        lines.append(f"| {_label(r.theme, labels)} | {r.n_present}/{r.n_documents} | {pct(r.share)} "
                     f"({pct(r.ci_low)}–{pct(r.ci_high)}) | {corrected} | {n_pass} |")
    lines += ["", ("The Panel's 2018–19 figures (538 rapid reviews: weak risk assessment 41%, poor information "
              "exchange 40%, overly optimistic practice 32%) come from a different corpus and are not a "
              "like-for-like comparison.")]
    return "\n".join(lines) + "\n"
