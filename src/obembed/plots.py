"""Plots shared by ``obembed similarity --plot``, ``obembed eval`` and ``obembed map`` (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingDependencyError
from .outputs import PLOT_SUFFIXES, check_output, write_error

__all__ = ["PALETTE", "group_index", "grouped_bars", "heatmap", "html_page", "legend_html", "pyplot", "scatter",
           "svg_grouped_bars", "svg_scatter"]


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (works with no display)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "plots") from exc
    return plt


def heatmap(matrix: np.ndarray, labels: Sequence[str], out: str | Path, *, title: str = "",
            short: int = 32) -> Path:
    """Save an annotated heatmap of ``matrix`` (rows and columns labelled) to ``out`` (PNG, SVG, PDF)."""
    out = check_output(out, what="plot", suffixes=PLOT_SUFFIXES)
    plt = pyplot()
    n = len(labels)
    size = max(4.0, min(0.9 * n + 3, 24))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    try:
        im = ax.imshow(matrix, cmap="viridis")
        names = [lb if len(lb) <= short else lb[: short - 1] + "…" for lb in labels]
        ax.set_xticks(range(n), labels=[str(i) for i in range(n)])
        ax.set_yticks(range(n), labels=[f"[{i}] {s}" for i, s in enumerate(names)])
        if n <= 20:
            lo, hi = float(np.min(matrix)), float(np.max(matrix))
            mid = (lo + hi) / 2
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if matrix[i, j] > mid else "white")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        try:
            fig.savefig(out, dpi=110)
        except OSError as exc:
            raise write_error(exc, out, "plot") from None
    finally:
        plt.close(fig)
    return out


# --------------------------------------------------------------------------- shared palette and helpers
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
"""Tableau-10 colours: the PNG (matplotlib) and HTML (inline SVG) charts use the same ones."""


def _esc(text: Any) -> str:
    import html

    return html.escape(str(text), quote=True)


def grouped_bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float], Sequence[tuple[float, float]]]],
                 out: str | Path, *, title: str = "", ylabel: str = "", ylim: tuple[float, float] | None = (0, 1),
                 extra: dict[str, Any] | None = None) -> Path:
    """Save a grouped bar chart (PNG/SVG/PDF): one group per ``groups`` entry, one bar per series.

    ``series`` = ``[(label, values, [(ci_low, ci_high), ...]), ...]``; intervals are drawn as error bars.
    ``extra`` = optional second panel ``{"title", "labels", "values", "xlabel"}`` drawn as horizontal bars.
    """
    out = check_output(out, what="plot", suffixes=PLOT_SUFFIXES)
    plt = pyplot()
    n_groups, n_series = len(groups), max(1, len(series))
    width = 0.8 / n_series
    panels = 2 if extra else 1
    fig_w = max(6.0, 1.0 * n_groups * max(1, n_series) ** 0.5 + 2) + 4 * (panels - 1)
    fig, axes = plt.subplots(1, panels, figsize=(fig_w, 4.8), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2][:panels]})
    try:
        ax = axes[0][0]
        x = np.arange(n_groups)
        for i, (label, values, cis) in enumerate(series):
            vals = np.asarray(values, dtype=float)
            yerr = None
            if cis:
                lo = vals - np.asarray([c[0] for c in cis], dtype=float)
                hi = np.asarray([c[1] for c in cis], dtype=float) - vals
                yerr = np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)])
            ax.bar(x + (i - (n_series - 1) / 2) * width, vals, width, label=label,
                   color=PALETTE[i % len(PALETTE)], yerr=yerr, capsize=3)
        ax.set_xticks(x, labels=list(groups))
        if ylim:
            ax.set_ylim(*ylim)
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(n_series, 3))
        if extra:
            ax2 = axes[0][1]
            labels = list(extra["labels"])
            ax2.barh(range(len(labels)), list(extra["values"]),
                     color=[PALETTE[i % len(PALETTE)] for i in range(len(labels))])
            ax2.set_yticks(range(len(labels)), labels=[lb if len(lb) <= 28 else lb[:27] + "…" for lb in labels])
            ax2.invert_yaxis()
            ax2.set_xlabel(extra.get("xlabel", ""))
            ax2.set_title(extra.get("title", ""))
            ax2.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        try:
            fig.savefig(out, dpi=110)
        except OSError as exc:
            raise write_error(exc, out, "plot") from None
    finally:
        plt.close(fig)
    return out


def scatter(xy: np.ndarray, out: str | Path, *, groups: Sequence[str] | None = None, title: str = "") -> Path:
    """Save a 2-D scatter plot (PNG/SVG/PDF), coloured by ``groups`` when given (legend up to 10 groups)."""
    out = check_output(out, what="plot", suffixes=PLOT_SUFFIXES)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    try:
        xy = np.asarray(xy, dtype=float)
        size = 14 if len(xy) < 2000 else 5
        if groups is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.7, color=PALETTE[0], linewidths=0)
        else:
            names, inverse = group_index(groups)
            for gi, name in enumerate(names):
                m = inverse == gi
                ax.scatter(xy[m, 0], xy[m, 1], s=size, alpha=0.75, linewidths=0,
                           color=PALETTE[gi % len(PALETTE)] if gi < len(PALETTE) else "#999999",
                           label=name if gi < len(PALETTE) else None)
            if names:
                ax.legend(fontsize=8, markerscale=2, loc="best")
        if title:
            ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")  # one scale on both axes: distances stay true
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        try:
            fig.savefig(out, dpi=110)
        except OSError as exc:
            raise write_error(exc, out, "plot") from None
    finally:
        plt.close(fig)
    return out


def group_index(groups: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct group names, most frequent first (ties by name), and each item's position in that list."""
    from collections import Counter

    counts = Counter(str(g) for g in groups)
    names = sorted(counts, key=lambda g: (-counts[g], g))
    pos = {g: i for i, g in enumerate(names)}
    return names, np.asarray([pos[str(g)] for g in groups], dtype=np.int64)


# --------------------------------------------------------------------------- self-contained HTML / SVG
def svg_grouped_bars(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float],
                     Sequence[tuple[float, float]]]], *, width: int = 760, height: int = 360,
                     ymax: float = 1.0) -> str:
    """An inline SVG grouped bar chart with confidence whiskers and a <title> tooltip on every bar."""
    left, right, top, bottom = 44, 10, 12, 28
    pw, ph = width - left - right, height - top - bottom
    n_series = max(1, len(series))
    gw = pw / max(1, len(groups))
    bw = gw * 0.8 / n_series
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="sans-serif" font-size="11">']
    for t in range(6):
        v = ymax * t / 5
        y = top + ph - ph * v / ymax
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for gi, g in enumerate(groups):
        parts.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{height - 8}" text-anchor="middle">{_esc(g)}</text>')
        for si, (label, values, cis) in enumerate(series):
            v = float(values[gi])
            x = left + gi * gw + gw * 0.1 + si * bw
            h = ph * max(0.0, min(v, ymax)) / ymax
            color = PALETTE[si % len(PALETTE)]
            tip = f"{label} — {g}: {v:.3f}"
            if cis:
                lo, hi = cis[gi]
                tip += f" (95% CI {lo:.3f}–{hi:.3f})"
            parts.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{bw * 0.92:.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{_esc(tip)}</title></rect>')
            if cis:
                ylo, yhi = (top + ph - ph * min(c, ymax) / ymax for c in cis[gi])
                cx = x + bw * 0.46
                parts.append(f'<path d="M{cx:.1f} {ylo:.1f}V{yhi:.1f}M{cx - 3:.1f} {ylo:.1f}h6M{cx - 3:.1f} '
                             f'{yhi:.1f}h6" stroke="#222" stroke-width="1"/>')
    parts.append("</svg>")
    return "".join(parts)


def svg_scatter(points: Sequence[tuple[float, float, int, str]], *, width: int = 560, height: int = 320,
                xlabel: str = "", ylabel: str = "", ylim: tuple[float, float] | None = None) -> str:
    """An inline SVG scatter: ``(x, y, colour index, tooltip)`` per point, axes with 5 ticks each."""
    left, right, top, bottom = 50, 12, 12, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [p[0] for p in points] or [0.0, 1.0]
    ys = [p[1] for p in points] or [0.0, 1.0]
    x0, x1 = 0.0, max(xs) * 1.08 or 1.0
    y0, y1 = ylim or (min(ys) - 0.02, max(ys) + 0.02)
    if y1 <= y0:
        y1 = y0 + 1.0

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="sans-serif" font-size="11">']
    for t in range(6):
        xv, yv = x0 + (x1 - x0) * t / 5, y0 + (y1 - y0) * t / 5
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>'
                     f'<text x="{sx(xv):.1f}" y="{top + ph + 14}" text-anchor="middle">{xv:.3g}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{_esc(xlabel)}</text>'
                 f'<text x="12" y="{top + ph / 2:.1f}" transform="rotate(-90 12 {top + ph / 2:.1f})" '
                 f'text-anchor="middle">{_esc(ylabel)}</text>')
    for x, y, c, tip in points:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{PALETTE[c % len(PALETTE)]}" '
                     f'fill-opacity="0.8"><title>{_esc(tip)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def legend_html(labels: Sequence[str]) -> str:
    """Colour swatches matching :data:`PALETTE` order."""
    return "".join(f'<span class="lg"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{_esc(lb)}</span>'
                   for i, lb in enumerate(labels))


HTML_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;font-size:13px;margin:12px 0}th,td{border:1px solid #ddd;padding:4px 8px;
text-align:right;white-space:nowrap}th{background:#f5f5f5}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
.lg{display:inline-block;margin-right:14px;font-size:13px}.lg i{display:inline-block;width:12px;height:12px;
margin-right:5px;vertical-align:-1px}small{color:#666}#tip{position:fixed;pointer-events:none;background:#fff;
border:1px solid #888;padding:6px 8px;font-size:12px;max-width:420px;display:none;box-shadow:2px 2px 6px #0003}"""


def html_page(title: str, body: str, data: Any = None) -> str:
    """A complete, self-contained HTML page (no external resources); ``data`` embedded as JSON."""
    import json

    blob = ""
    if data is not None:
        raw = json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")
        blob = f'<script type="application/json" id="data">{raw}</script>'
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{HTML_STYLE}</style></head><body>{body}{blob}</body></html>")
