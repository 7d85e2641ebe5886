"""A standalone HTML report of a screen: no scripts, no external files, charts as inline SVG (it opens offline)."""

from __future__ import annotations

from html import escape
from typing import Any

from jakinib.knowledge.schema import STATUS_ORDER

COLOURS = {"contraindicated": "#8b0000", "do-not-start": "#d7301f", "avoid": "#f0a202", "caution": "#f6d55c", "ok": "#3c9d5d"}
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}h1{font-size:1.6rem}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
th{background:#f3f3f3}.chart{margin:1rem 0}.legend span{display:inline-block;margin-right:1rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}"""


def _bars(title: str, items: list[tuple[str, int]], chart_id: str, colour: str = "#3b6ea8") -> str:
    """Horizontal bars, one per item."""
    if not items:
        return f'<figure class="chart" id="{chart_id}"><figcaption>{escape(title)}</figcaption><p>None.</p></figure>'
    width, label_w, row = 900, 300, 22
    top = max(n for _, n in items) or 1
    h = row * len(items) + 10
    out = [f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{h}" viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, n) in enumerate(items):
        y = i * row + 5
        w = (width - label_w - 80) * n / top
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{escape(name)}</text>'
                   f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="{colour}"/>'
                   f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="12">{n:,}</text>')
    out.append("</svg>")
    return f'<figure class="chart" id="{chart_id}"><figcaption>{escape(title)}</figcaption>{"".join(out)}</figure>'


def _stacked(per_drug: dict[str, Any]) -> str:
    """Status by drug: one stacked bar per drug."""
    width, label_w, row = 900, 160, 22
    h = row * len(per_drug) + 10
    out = [f'<svg role="img" aria-label="Status by drug" width="{width}" height="{h}" viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">']
    for i, (drug, d) in enumerate(per_drug.items()):
        y, x = i * row + 5, float(label_w)
        total = sum(d["statuses"].values()) or 1
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{escape(drug)}</text>')
        for status in STATUS_ORDER:
            n = d["statuses"].get(status, 0)
            w = (width - label_w - 20) * n / total
            if n:
                out.append(f'<rect class="bar" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="{COLOURS[status]}">'
                           f'<title>{escape(drug)}: {status} {n:,}</title></rect>')
            x += w
    out.append("</svg>")
    legend = "".join(f'<span><i class="sw" style="background:{COLOURS[s]}"></i>{s}</span>' for s in STATUS_ORDER)
    caption = "Status by drug (every patient, as a candidate or on it)"
    return f'<figure class="chart" id="chart-status"><figcaption>{caption}</figcaption>{"".join(out)}<div class="legend">{legend}</div></figure>'


def render(result: Any) -> str:
    """The report of a :class:`~jakinib.cohort.screen.Screen` as one HTML document."""
    import polars as pl

    s = result.summary
    rows = result.rows
    overdue = (rows.filter(pl.col("current")).select(pl.col("gap_details")).explode("gap_details").drop_nulls()
               .unnest("gap_details").filter(pl.col("gap").str.ends_with(".overdue") & pl.col("due").is_not_null()))
    by_month = (overdue.group_by(pl.col("due").dt.strftime("%Y-%m").alias("month")).len().sort("month")
                if overdue.height else None)
    months = [(m, int(n)) for m, n in by_month.iter_rows()] if by_month is not None else []
    risk = "".join(f"<tr><td>{escape(x['id'])}</td><td>{escape(x['drug'])}</td><td>{escape(x['regulator'])}</td>"
                   f"<td>{escape(x['status'])}</td><td>{'' if x['max_overdue_days'] is None else x['max_overdue_days']}</td>"
                   f"<td>{escape(', '.join(x['gaps']))}</td></tr>" for x in s["most_at_risk"])
    problems = s["input_problems"]
    skipped = (f"<p>Skipped {problems['skipped']} bad input record(s); first: {escape(' | '.join(problems['first']))}</p>"
               if problems["skipped"] else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>jakinib cohort screen {escape(s['today'])}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body><h1>Cohort screen</h1>
<p id="overview">{s['patients']:,} patients ({s['on_a_jak_inhibitor']:,} on a JAK inhibitor), {len(s['drugs'])} drugs, labels of
{escape(', '.join(s['regulators']))}; care gaps counted to {escape(s['today'])}. Rules, screening and monitoring schedules are
jakinib's knowledge base (each finding and gap names its rule and sources in the row output).</p>{skipped}
{_bars("Care gaps (patients on the drug)", list(s['gaps'].items()), "chart-gaps")}
{_stacked(s['per_drug'])}
{_bars("Monitoring overdue, by month it fell due", months, "chart-overdue", "#7a4ea8")}
<h2>Most at risk</h2>
<table id="most-at-risk"><thead><tr><th>patient</th><th>drug</th><th>regulator</th><th>status</th><th>days overdue</th><th>gaps</th></tr></thead>
<tbody>{risk}</tbody></table>
<p>Generated by jakinib. Missing data is never counted as done: an unknown start date, an undated screen and a test
jakinib cannot read are listed as gaps.</p>
</body></html>
"""
