"""The HTML report: a self-contained page (no network) with charts and the evidence behind them."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from themes.aggregate import Aggregates
from themes.store import atomic_write_text

TOP_PASSAGES = 8


def prevalence_chart_png(prevalence: pd.DataFrame, labels: dict[str, str] | None = None) -> bytes:
    """A horizontal bar chart of the share of documents per theme with 95% intervals, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = prevalence.sort_values("share")
    names = [(labels or {}).get(t, t) for t in table["theme"]]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(table) + 1.2), dpi=110)
    err = [table["share"] - table["ci_low"], table["ci_high"] - table["share"]]
    ax.barh(names, table["share"] * 100, xerr=[e * 100 for e in err], color="#3b6ea5", capsize=3)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of documents where the theme is present (95% Wilson interval)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _table_html(frame: pd.DataFrame, escape: bool = True) -> str:
    return frame.to_html(index=False, border=0, classes="tbl", na_rep="", escape=escape,
                         float_format=lambda v: f"{v:.3f}")


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
    """The report as one HTML string: prevalence chart and table, then evidence per theme.

    Args:
        explanations: optional (passage_id, theme) -> terms that pushed the score up.
    """
    labels = labels or {}
    png = base64.b64encode(prevalence_chart_png(aggregates.prevalence, labels)).decode("ascii")
    n_ok = int((documents["status"] == "ok").sum())
    n_err = len(documents) - n_ok
    prev = aggregates.prevalence.copy()
    prev.insert(1, "label", prev["theme"].map(lambda t: html.escape(labels.get(t, t))))
    prev["theme"] = prev["theme"].map(lambda t: f'<a href="#{t}">{t}</a>')

    tagged = predictions[predictions["tagged"]].merge(passages, on="passage_id").merge(
        documents[["doc_id", "file", "title"]], on="doc_id"
    )
    sections = []
    for theme in themes:
        rows = tagged[tagged["theme"] == theme].sort_values("score", ascending=False).head(TOP_PASSAGES)
        items = []
        for r in rows.itertuples():
            why = (explanations or {}).get((r.passage_id, theme))
            why_html = f'<div class="why">why: {html.escape(", ".join(why))}</div>' if why else ""
            items.append(
                f'<li><div class="src">{html.escape(str(r.file))}, page {r.page}'
                f' — score {r.score:.2f}{" — " + html.escape(str(r.section)) if r.section else ""}</div>'
                f"<blockquote>{html.escape(r.text)}</blockquote>{why_html}</li>"
            )
        body = "<ol>" + "".join(items) + "</ol>" if items else "<p>No passage was tagged with this theme.</p>"
        sections.append(f'<h3 id="{theme}">{html.escape(labels.get(theme, theme))} <code>{theme}</code></h3>{body}')

    errors = documents[documents["status"] != "ok"][["file", "error_kind", "error"]]
    errors_html = _table_html(errors) if len(errors) else "<p>None.</p>"
    by = aggregates.breakdowns
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>themes report</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
.tbl{{border-collapse:collapse;font-size:0.9em}} .tbl td,.tbl th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}}
blockquote{{margin:0.3em 0 0.2em 0;padding:0.4em 0.8em;background:#f5f7fa;border-left:3px solid #3b6ea5}}
.src{{font-size:0.85em;color:#555}} .why{{font-size:0.8em;color:#7a4b00}} li{{margin-bottom:0.8em}}
</style></head><body>
<h1>Practice themes in {n_ok} documents</h1>
<p>Model <code>{html.escape(model_version)}</code>. A theme is present in a document when at least one of its
passages scores above the theme's threshold. {n_err} file(s) could not be read (listed at the end).
Shares are raw classifier counts with 95% Wilson intervals; they carry the classifier's own error.</p>
<img alt="Theme prevalence chart" src="data:image/png;base64,{png}">
<h2>Prevalence</h2>{_table_html(prev, escape=False)}
<h2>By year, area and review type</h2>{_table_html(by) if len(by) else "<p>No metadata to split by.</p>"}
<h2>Evidence: the highest-scoring passages per theme</h2>{"".join(sections)}
<h2>Files that could not be read</h2>{errors_html}
</body></html>
"""


def write_report(path: Path, html_text: str) -> None:
    atomic_write_text(path, html_text)
