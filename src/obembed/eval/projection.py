"""2-D maps of a collection: PCA (numpy SVD) or UMAP, a seeded sample of the rows, HTML or PNG output."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import plots
from ..errors import ConfigError, InvalidInputError

__all__ = ["MapPoints", "collection_points", "pca_2d", "project", "sample_rows", "write_map_html",
           "write_map_png"]

log = logging.getLogger(__name__)


@dataclass
class MapPoints:
    ids: list[str]
    xy: np.ndarray
    texts: list[str]
    groups: list[str] | None
    total: int
    method: str
    collection: str = ""
    color_by: str | None = None
    explained: list[float] = field(default_factory=list)
    """PCA: share of the variance each axis explains."""

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "method": self.method, "total": self.total,
                "sampled": len(self.ids), "color_by": self.color_by, "explained": self.explained,
                "points": [{"id": i, "x": round(float(p[0]), 5), "y": round(float(p[1]), 5), "text": t,
                            **({"group": self.groups[n]} if self.groups is not None else {})}
                           for n, (i, p, t) in enumerate(zip(self.ids, self.xy, self.texts, strict=True))]}


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Project rows onto their first two principal components; returns points and explained-variance shares."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InvalidInputError(f"need at least 2 vectors to project, got shape {x.shape}")
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    # a deterministic sign: the largest-magnitude loading of each component is positive
    signs = np.sign(comps[np.arange(comps.shape[0]), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    xy = centred @ comps.T
    if xy.shape[1] < 2:  # 1-d vectors: put them on a line
        xy = np.hstack([xy, np.zeros((xy.shape[0], 1))])
    var = s**2
    total = float(var.sum()) or 1.0
    return xy, [float(v / total) for v in var[:2]]


def project(x: np.ndarray, method: str = "pca", *, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """2-D coordinates of ``x`` by ``pca`` or ``umap`` (cosine metric; needs ``umap-learn``)."""
    if method == "pca":
        return pca_2d(x)
    if method == "umap":
        try:
            import umap  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError("--method umap needs the umap-learn package: pip install umap-learn "
                              "(or use --method pca, which needs nothing more)") from exc
        reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed)
        return np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float64), []
    raise ConfigError(f"unknown projection {method!r}; use pca or umap")


def sample_rows(batches: Iterable[list[dict[str, Any]]], max_points: int, seed: int = 0
                ) -> tuple[list[dict[str, Any]], int]:
    """A uniform seeded sample (reservoir) of at most ``max_points`` rows from batches; also the row count."""
    rng = np.random.default_rng(seed)
    keep: list[dict[str, Any]] = []
    n = 0
    for batch in batches:
        for row in batch:
            if len(keep) < max_points:
                keep.append(row)
            else:
                j = int(rng.integers(0, n + 1))
                if j < max_points:
                    keep[j] = row
            n += 1
    return keep, n


def _value(row: dict[str, Any], column: str) -> Any:
    if column.startswith("metadata."):
        meta = row.get("metadata") or {}
        return meta.get(column[len("metadata."):]) if isinstance(meta, dict) else None
    if column in row:
        return row[column]
    cols = row.get("columns")
    if isinstance(cols, dict) and column in cols:
        return cols[column]
    meta = row.get("metadata")
    return meta.get(column) if isinstance(meta, dict) else None


def collection_points(coll: Any, *, color_by: str | None = None, max_points: int = 20000, seed: int = 0,
                      method: str = "pca") -> MapPoints:
    """Read a collection's vectors through the store (``iter_rows``), sample, project to 2-D."""
    rows, total = sample_rows(coll.iter_rows(include_vectors=True), max_points, seed)
    if len(rows) < 2:
        raise InvalidInputError(f"collection {coll.name!r} has {total} row(s); a map needs at least 2")
    rows.sort(key=lambda r: str(r["id"]))  # stable output whatever the store's order
    x = np.vstack([np.asarray(r["vector"], dtype=np.float32) for r in rows])
    groups = None
    if color_by:
        vals = [_value(r, color_by) for r in rows]
        if all(v is None for v in vals):
            known = sorted({k for k in rows[0] if k not in ("vector",)} | set(coll.columns or {}))
            raise ConfigError(f"--color-by {color_by!r}: no row of {coll.name!r} has it; columns: "
                              f"{', '.join(known)} (or metadata.KEY)")
        groups = ["(none)" if v is None else str(v) for v in vals]
    xy, explained = project(x, method, seed=seed)
    texts = [str(r.get("content") or r.get("source") or "") for r in rows]
    log.info("map of %s: %d of %d rows, %s", coll.name, len(rows), total, method)
    return MapPoints([str(r["id"]) for r in rows], xy, texts, groups, total, method, collection=coll.name,
                     color_by=color_by, explained=explained)


def write_map_png(points: MapPoints, out: str | Path) -> Path:
    title = f"{points.collection}: {len(points.ids)} of {points.total} rows ({points.method})"
    return plots.scatter(points.xy, out, groups=points.groups, title=title)


_MAP_JS = """(function(){var D=JSON.parse(document.getElementById('data').textContent),P=D.points,
t=document.getElementById('tip');document.getElementById('map').addEventListener('mousemove',function(e){
var i=e.target.getAttribute&&e.target.getAttribute('data-i');if(i===null||i===undefined){t.style.display='none';
return}var p=P[+i],s=document.createElement('div'),b=document.createElement('b');b.textContent=p.id;s.appendChild(b);
if(p.group!==undefined){s.appendChild(document.createTextNode(' · '+p.group))}var d=document.createElement('div');
d.textContent=p.text.length>400?p.text.slice(0,400)+'…':p.text;s.appendChild(d);t.replaceChildren(s);
t.style.display='block';t.style.left=(e.clientX+12)+'px';t.style.top=(e.clientY+12)+'px'});
document.getElementById('map').addEventListener('mouseleave',function(){t.style.display='none'})})();"""


def write_map_html(points: MapPoints, out: str | Path, *, width: int = 900, height: int = 700) -> Path:
    """A self-contained page: inline SVG scatter, a legend, hover shows id, group and text (no network)."""
    xy = points.xy
    pad = 14
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    scale = min((width - 2 * pad) / span[0], (height - 2 * pad) / span[1])  # one scale: distances stay true
    mid = (lo + hi) / 2
    sx = width / 2 + (xy[:, 0] - mid[0]) * scale
    sy = height / 2 - (xy[:, 1] - mid[1]) * scale
    if points.groups is not None:
        names, inv = plots.group_index(points.groups)
        colors = [plots.PALETTE[g] if g < len(plots.PALETTE) else "#999999" for g in inv]
        legend = plots.legend_html(names[: len(plots.PALETTE)]) + (
            f'<span class="lg"><i style="background:#999999"></i>{len(names) - len(plots.PALETTE)} more</span>'
            if len(names) > len(plots.PALETTE) else "")
    else:
        colors = [plots.PALETTE[0]] * len(points.ids)
        legend = ""
    r = 3.5 if len(points.ids) < 2000 else 2.0
    circles = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{c}" data-i="{i}"/>'
                      for i, (x, y, c) in enumerate(zip(sx, sy, colors, strict=True)))
    svg = (f'<svg id="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" style="border:1px solid #ddd" fill-opacity="0.75">{circles}</svg>')
    expl = (" · PCA axes explain " + " / ".join(f"{e:.1%}" for e in points.explained)) if points.explained else ""
    from html import escape

    body = (f"<h1>{escape(points.collection)}</h1><p><small>{len(points.ids)} of {points.total} rows, "
            f"{escape(points.method)}{escape(expl)}"
            + (f" · colour: {escape(points.color_by)}" if points.color_by else "")
            + f"</small></p><div>{legend}</div>{svg}<div id='tip'></div>")
    page = plots.html_page(f"obembed map — {points.collection}", body, points.to_dict())
    page = page.replace("</body>", f"<script>{_MAP_JS}</script></body>")
    out = Path(out)
    out.write_text(page, encoding="utf-8")
    return out
