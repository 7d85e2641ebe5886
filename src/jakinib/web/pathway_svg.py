"""The JAK-STAT map as an SVG diagram: cytokine -> receptor JAK pair -> STATs -> clinical meaning, one row per
pathway of the knowledge base, with each simulable drug's average inhibition at its usual dose beside it.

Every word in the picture comes from ``pathways.yaml`` (and the simulator); the full text and its citations are in
the table under the diagram.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

ROW_H = 46
TOP = 40
COL_CYTOKINE, COL_JAK, COL_STAT, COL_CLINICAL = 8, 120, 300, 450
CLINICAL_W = 400
BAR_W, OVERLAY_GAP = 110, 14
JAK_CLASS = {"JAK1": "jak jak1", "JAK2": "jak jak2", "JAK3": "jak jak3", "TYK2": "jak tyk2"}


@dataclass(frozen=True)
class Overlay:
    """One drug's simulated average inhibition (percent) per cytokine; None where no IC50 is verified."""

    drug: str
    regimen: str
    inhibition: dict[str, float | None]


def _wrap(text: str, width: int, lines: int) -> list[str]:
    """At most ``lines`` lines of at most ``width`` characters, cut at word boundaries (an ellipsis if cut short)."""
    words, out, line = text.split(), [], ""
    for i, w in enumerate(words):
        if len(line) + len(w) + (1 if line else 0) <= width:
            line = f"{line} {w}" if line else w
            continue
        out.append(line)
        line = w
        if len(out) == lines:
            out[-1] = out[-1].rstrip(",;:") + " …"
            return out
        if i == len(words) - 1:
            break
    if line and len(out) < lines:
        out.append(line)
    elif line:
        out[-1] = out[-1].rstrip(",;:") + " …"
    return out


def _headline(clinical: str) -> str:
    """The first sentence of a pathway's clinical meaning (the diagram's caption for the row)."""
    for end in (". ", "; "):
        head, sep, _ = clinical.partition(end)
        if sep and len(head) > 20:
            return head + ("." if end == ". " else "")
    return clinical


def pathway_svg(pathways: list[Any], overlays: list[Overlay]) -> str:
    width = COL_CLINICAL + CLINICAL_W + len(overlays) * (BAR_W + OVERLAY_GAP) + 10
    height = TOP + ROW_H * len(pathways) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" id="pathway-diagram" '
             f'aria-labelledby="pathway-diagram-title"><title id="pathway-diagram-title">Cytokine, receptor JAK pair, '
             f'STATs and clinical meaning for {len(pathways)} pathways'
             + (f", with the simulated inhibition of {', '.join(o.drug for o in overlays)}" if overlays else "")
             + "</title>"]
    heads = [(COL_CYTOKINE, "Cytokine"), (COL_JAK, "Receptor JAKs"), (COL_STAT, "STATs"), (COL_CLINICAL, "Clinical meaning")]
    for i, o in enumerate(overlays):
        heads.append((COL_CLINICAL + CLINICAL_W + i * (BAR_W + OVERLAY_GAP), o.drug))
    for x, text in heads:
        parts.append(f'<text x="{x}" y="16" class="col-h">{escape(text)}</text>')
    for i, o in enumerate(overlays):
        x = COL_CLINICAL + CLINICAL_W + i * (BAR_W + OVERLAY_GAP)
        parts.append(f'<text x="{x}" y="31" class="clin">{escape(o.regimen)}, mean inhibition</text>')
    for row, p in enumerate(pathways):
        y = TOP + row * ROW_H
        mid = y + ROW_H / 2
        pid = escape(p.cytokine)
        parts.append(f'<g class="pathway" data-cytokine="{pid}">')
        parts.append(f'<rect x="{COL_CYTOKINE}" y="{y + 8}" width="88" height="{ROW_H - 16}" rx="4" class="node"/>'
                     f'<text x="{COL_CYTOKINE + 44}" y="{mid + 4}" text-anchor="middle" font-weight="600">{pid}</text>')
        parts.append(f'<path d="M{COL_CYTOKINE + 88} {mid} H{COL_JAK}" class="edge"/>')
        jaks = list(p.jaks)
        jw = 150 / len(jaks) - 4
        for j, k in enumerate(jaks):
            x = COL_JAK + j * (jw + 4)
            parts.append(f'<rect x="{x:.1f}" y="{y + 8}" width="{jw:.1f}" height="{ROW_H - 16}" rx="4" class="{JAK_CLASS[k]}">'
                         f'<title>{escape(p.receptor or "")}</title></rect>'
                         f'<text x="{x + jw / 2:.1f}" y="{mid + 4}" text-anchor="middle">{k}</text>')
        parts.append(f'<path d="M{COL_JAK + 150} {mid} H{COL_STAT}" class="edge"/>')
        stats = ", ".join(p.stats)
        parts.append(f'<rect x="{COL_STAT}" y="{y + 8}" width="130" height="{ROW_H - 16}" rx="4" class="stat"/>'
                     f'<text x="{COL_STAT + 65}" y="{mid + 4}" text-anchor="middle">{escape(stats)}</text>')
        parts.append(f'<path d="M{COL_STAT + 130} {mid} H{COL_CLINICAL - 4}" class="edge"/>')
        lines = _wrap(_headline(p.clinical), 66, 2)
        first = mid + 4 - 7 * (len(lines) - 1)
        parts.append(f'<text x="{COL_CLINICAL}" y="{first:.1f}" class="clin"><title>{escape(p.clinical)}</title>'
                     + "".join(f'<tspan x="{COL_CLINICAL}" dy="{0 if n == 0 else 14}">{escape(t)}</tspan>'
                               for n, t in enumerate(lines)) + "</text>")
        for i, o in enumerate(overlays):
            x = COL_CLINICAL + CLINICAL_W + i * (BAR_W + OVERLAY_GAP)
            value = o.inhibition.get(p.cytokine)
            if value is None:
                parts.append(f'<text x="{x}" y="{mid + 4}" class="clin inh-none" data-drug="{escape(o.drug)}">no verified IC50</text>')
                continue
            bar = 70 * max(0.0, min(value, 100.0)) / 100
            parts.append(f'<g class="inhibition" data-drug="{escape(o.drug)}" data-pct="{value:.1f}">'
                         f'<title>{escape(o.drug)} {escape(o.regimen)}: {value:.0f}% average inhibition of {pid} signalling</title>'
                         f'<rect x="{x}" y="{mid - 7}" width="70" height="14" class="inh-bg"/>'
                         f'<rect x="{x}" y="{mid - 7}" width="{bar:.1f}" height="14" class="inh"/>'
                         f'<text x="{x + 76}" y="{mid + 4}">{value:.0f}%</text></g>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
