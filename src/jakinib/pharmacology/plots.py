"""Plots people would rather look at than read (matplotlib, SVG or PNG, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def concentration_svg(sim: Any, width: int = 700, height: int = 380) -> str:
    """The concentration-time plot as a small hand-written SVG (fast enough for a page; log y axis)."""
    if not sim.curve:
        raise ValueError("simulate(..., with_curve=True) first")
    t = np.asarray(sim.curve["t_h"])
    conc = np.asarray(sim.curve["total_nM"])
    ic50s = sorted({(p.ic50_nM, p.cytokine) for p in sim.pathways if p.ic50_nM}, key=lambda x: x[0])
    values = [*conc[conc > 0].tolist(), *(v for v, _ in ic50s)]
    lo, hi = np.log10(min(values) / 1.5), np.log10(max(values) * 1.5)
    shown: dict[float, list[str]] = {}
    for v, name in ic50s:
        shown.setdefault(v, []).append(name)
    labels = {v: ", ".join(names[:3]) + (" …" if len(names) > 3 else "") + f" IC50 {v:g}" for v, names in shown.items()}
    # The IC50 labels sit right of the plot; the picture widens to the longest one (about 6.2 px a character at 10 px).
    label_w = max((len(text) for text in labels.values()), default=0) * 6.2 + 12
    left, right, top, bottom = 64, width - 24, 30, height - 44
    width += label_w

    def x(h: float) -> float:
        return left + (right - left) * h / 24

    def y(v: float) -> float:
        return bottom - (bottom - top) * (np.log10(v) - lo) / (hi - lo)

    pts = " ".join(f"{x(h):.1f},{y(max(v, 10 ** lo)):.1f}" for h, v in zip(t, conc, strict=True))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{sim.drug} concentration over a steady-state day, with pathway IC50 lines">',
             f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#8c959f"/>']
    ticks = [m * 10.0 ** d for d in range(int(np.floor(lo)) - 1, int(np.ceil(hi)) + 1) for m in (1, 2, 5)
             if lo <= np.log10(m * 10.0 ** d) <= hi]
    for tick in (ticks if len(ticks) <= 8 else [v for v in ticks if np.isclose(np.log10(v) % 1, 0)]):
        yy = y(tick)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eaeef2"/>'
                     f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end">{tick:g}</text>')
    for h in range(0, 25, 4):
        parts.append(f'<text x="{x(h):.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle">{h}</text>')
    label_y: list[float] = []
    for v in sorted(labels, reverse=True):  # top to bottom; labels closer than 12 px are pushed apart
        yy = y(v) + 4
        if label_y and yy < label_y[-1] + 12:
            yy = label_y[-1] + 12
        label_y.append(yy)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#b03a2e" stroke-dasharray="5 4"/>'
                     f'<text x="{right + 4}" y="{yy:.1f}" font-size="10" fill="#b03a2e">{labels[v]}</text>')
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#1f4e79" stroke-width="2"/>')
    parts.append(f'<text x="{(left + right) / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
                 f'hours (steady state, {sim.dose_mg:g} mg every {sim.every_h:g} h)</text>')
    parts.append(f'<text x="14" y="{(top + bottom) / 2}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(top + bottom) / 2})">total plasma concentration (nM)</text></svg>')
    return "".join(parts)


def concentration_figure(sim: Any, fmt: str = "svg") -> bytes:
    """Concentration over the day with each pathway's IC50 as a dashed line (SVG, or PNG through matplotlib)."""
    if fmt == "svg":
        return concentration_svg(sim).encode()
    plt = _plt()
    if not sim.curve:
        raise ValueError("simulate(..., with_curve=True) first")
    t = np.asarray(sim.curve["t_h"])
    conc = np.asarray(sim.curve["total_nM"])
    p = sim.pk
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(t, conc, color="#1f4e79", lw=2, label="total plasma (nM)")
    if p.get("cavg_unbound_nM"):
        ax.plot(t, conc * p["cavg_unbound_nM"] / p["cavg_nM"], color="#2e86c1", lw=1.5, ls=":", label="unbound (nM)")
    for pw in sim.pathways:
        if pw.ic50_nM:
            ax.axhline(pw.ic50_nM, color="#b03a2e", lw=0.8, ls="--")
            ax.text(23.8, pw.ic50_nM, f"{pw.cytokine} IC50", ha="right", va="bottom", fontsize=7, color="#b03a2e")
    ax.set_yscale("log")
    ax.set_xlabel("hours after the first dose of the day (steady state)")
    ax.set_ylabel("concentration (nM)")
    ax.set_title(f"{sim.drug} {sim.dose_mg:g} mg every {sim.every_h:g} h")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return _save(fig, fmt)


def heatmap_figure(rows: list[dict[str, Any]], fmt: str = "svg") -> bytes:
    """Drug x pathway heat map of average % inhibition (blank where no verified potency)."""
    plt = _plt()
    cytokines = [p["cytokine"] for p in rows[0]["pathways"]] if rows else []
    data = np.array([[np.nan if p["avg_inhibition_pct"] is None else p["avg_inhibition_pct"] for p in r["pathways"]] for r in rows])
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(cytokines)), 1.2 + 0.5 * len(rows)))
    im = ax.imshow(np.ma.masked_invalid(data), cmap="Reds", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(cytokines)), cytokines, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{r['drug']} {r['dose_mg']:g} mg/{r['every_h']:g} h" for r in rows], fontsize=8)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if not np.isnan(data[i, j]):
                ax.text(j, i, f"{data[i, j]:.0f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="average inhibition over 24 h (%)")
    fig.tight_layout()
    return _save(fig, fmt)


def _save(fig: Any, fmt: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    _plt().close(fig)
    return buf.getvalue()


def figure_format(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        from jakinib.errors import InputError

        raise InputError(f"--plot {path}: use a .svg or .png file name")
    return fmt
