"""Render an evaluation report: terminal table, JSON, PNG chart, self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import plots

__all__ = ["format_table", "write_html", "write_json", "write_png"]


def _cell(m: dict[str, float] | None) -> str:
    if m is None:
        return "—"
    half = (m["ci_high"] - m["ci_low"]) / 2
    return f"{m['mean']:.3f}±{half:.3f}"


def _speed(m: dict[str, Any]) -> str:
    sp = m["encode"].get("speed")
    if sp:  # the interleaved rounds are the fairer figure on a shared machine
        return f"{sp['median_docs_per_s']:.1f} (×{sp['vs_first']:.2f})"
    return f"{m['encode']['docs_per_s']:.1f}{'*' if m['encode']['cached'] else ''}"


def _rate(m: dict[str, Any]) -> float:
    sp = m["encode"].get("speed")
    return float(sp["median_docs_per_s"]) if sp else float(m["encode"]["docs_per_s"])


def _mb(n: int | None) -> str:
    return "" if not n else f"{n / 1e6:.2f}"


def rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per (model, search path): the table's cells as strings."""
    out = []
    for m in report["models"]:
        for i, r in enumerate(m["runs"]):
            lat = r.get("latency", {})
            ms = lat.get("p50_ms", lat.get("mean_ms"))
            p95 = lat.get("p95_ms")
            out.append([
                m["label"] if i == 0 else "", r["search"], str(r["queries"]),
                *[_cell(r["metrics"][k]) for k in report["metrics"]],
                _speed(m) if i == 0 else "",
                "" if ms is None else f"{ms:.2f}",
                "" if p95 is None else f"{p95:.2f}",
                f"{r['overlap_with_exact@10']:.3f}" if "overlap_with_exact@10" in r else "",
                f"{r['build_seconds']:.1f}" if r.get("build_seconds") is not None else "",
                _mb(m["index_bytes"]["vectors"]) if i == 0 else _mb(r.get("store_bytes")),
            ])
    return out


def _head(report: dict[str, Any]) -> list[str]:
    return ["model", "search", "queries", *report["metrics"], "docs/s", "ms/query", "p95 ms", "vs exact@10",
            "build s", "index MB"]


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table (metrics as mean ± half the confidence interval)."""
    head = _head(report)
    body = rows(report)
    widths = [max(len(str(r[c])) for r in [head, *body]) for c in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    fmt = [(str.ljust if c < 2 else str.rjust) for c in range(len(head))]
    text = ["  ".join(f(h, w) for f, h, w in zip(fmt, head, widths, strict=True)), line]
    text += ["  ".join(f(x, w) for f, x, w in zip(fmt, r, widths, strict=True)) for r in body]
    ds = report["dataset"]
    b = report["bootstrap"]
    notes = [f"dataset {ds['name']}: {ds['documents']} documents, {ds['queries']} queries"
             + (f" ({ds['dropped_queries']} without judgements left out)" if ds["dropped_queries"] else ""),
             f"± = half of the {b['confidence']:.0%} bootstrap interval over queries ({b['resamples']} resamples, "
             f"seed {b['seed']}); ms/query: numpy = batched mean, store = median of single queries; "
             "index MB: raw float32 vectors (store rows: the store's own figure when it reports one)"]
    store_k = sorted({r["k"] for m in report["models"] for r in m["runs"] if r.get("k")})
    if store_k:
        notes.append(f"store runs: k = {', '.join(map(str, store_k))} neighbours per query (the engine raises "
                     "ef_search to k); vs exact@10 = share of the numpy top 10 found; build s = index build "
                     "after the load; — = cut-off beyond k")
    sp = report["models"][0]["encode"].get("speed")
    if sp:
        notes.append(f"docs/s: median of {sp['rounds']} interleaved rounds over the same {sp['docs']} documents; "
                     "(×r) = median per-round speed ratio to the first model")
    if any(m["encode"]["cached"] for m in report["models"]):
        notes.append("* vectors from the cache: docs/s is the speed measured when they were encoded")
    if report.get("modes"):
        rr = report.get("rerank")
        notes.append("search modes through the store (query vectors given: ms/query and p95 ms are the store's time"
                     + (f", plus the reranker's on +rerank rows ({rr['spec']}, {rr['candidates']} candidates)"
                        if rr else "") + "); hybrid = reciprocal rank fusion of the legs with their weights")
    for m in report["models"]:
        parser = (m.get("modes") or {}).get("fulltext_parser")
        if parser:
            notes.append(f"{m['label']}: full-text parser {parser}")
        for s in (m.get("modes") or {}).get("skipped", []):
            notes.append(f"{m['label']}: {s['mode']} left out: {s['reason']}")
        for r in m["runs"]:
            p = r.get("paired")
            if p:
                deltas = ", ".join(f"{k} {v['delta']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]"
                                   for k, v in p.items() if isinstance(v, dict))
                notes.append(f"{m['label']}: {r['search']} vs {p['versus']} (paired): {deltas}")
    for p in report.get("paired", []):
        deltas = ", ".join(f"{k} {v['delta']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]"
                           for k, v in p.items() if isinstance(v, dict))
        notes.append(f"{p['label']} vs {p['versus']} (paired): {deltas}")
    return "\n".join([*text, "", *notes])


def write_json(report: dict[str, Any], out: str | Path, *, per_query: bool = True) -> Path:
    data = report if per_query else {**report, "models": [{k: v for k, v in m.items() if k != "per_query"}
                                                          for m in report["models"]]}
    out = Path(out)
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return out


def _mode_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(series label, run) of every search-mode row; the label names the model only when there are several."""
    many = len(report["models"]) > 1
    return [((f"{m['label']} · " if many else "") + r["search"], r)
            for m in report["models"] for r in m["runs"] if "mode" in r]


def _series(report: dict[str, Any]) -> list[tuple[str, list[float], list[tuple[float, float]]]]:
    """One bar series per model (its exact numpy metrics), or per search-mode row when modes were compared; a
    metric a row cannot report (cut-off beyond its k) is drawn as 0 without an interval."""
    runs = _mode_rows(report) or [(m["label"], m["runs"][0]) for m in report["models"]]
    out = []
    for label, run in runs:
        r = run["metrics"]
        out.append((label, [r[k]["mean"] if r.get(k) else 0.0 for k in report["metrics"]],
                    [(r[k]["ci_low"], r[k]["ci_high"]) if r.get(k) else (0.0, 0.0) for k in report["metrics"]]))
    return out


def write_png(report: dict[str, Any], out: str | Path) -> Path:
    """A PNG: metrics per model (with intervals) and the encoding speed per model."""
    modes = _mode_rows(report)
    if modes:
        extra = {"title": "store latency per query (median)", "xlabel": "ms", "labels": [n for n, _ in modes],
                 "values": [float(r["latency"]["p50_ms"]) for _, r in modes]}
    else:
        extra = {"title": "encoding speed", "xlabel": "documents / s", "labels": [m["label"] for m in report["models"]],
                 "values": [_rate(m) for m in report["models"]]}
    return plots.grouped_bars(report["metrics"], _series(report), out,
                              title=f"retrieval quality — {report['dataset']['name']}", ylabel="score",
                              extra=extra)


def write_html(report: dict[str, Any], out: str | Path) -> Path:
    """A self-contained page: chart (inline SVG), the table, the store runs; the report embedded as JSON."""
    from html import escape

    series = _series(report)
    ds = report["dataset"]
    head = _head(report)
    table = "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
    for r in rows(report):
        table += "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
    table += "</table>"
    speed = plots.svg_grouped_bars(["documents / s"], [(m["label"], [_rate(m)], []) for m in report["models"]],
                                   width=380, height=220,
                                   ymax=max([_rate(m) for m in report["models"]] + [1e-9]) * 1.1)
    trade = [(r["latency"]["p50_ms"], r["overlap_with_exact@10"], i,
              f"{m['label']} — {r['search']}: {r['latency']['p50_ms']:.2f} ms, top-10 overlap with exact "
              f"{r['overlap_with_exact@10']:.3f}, recall@10 "
              + (f"{r['metrics']['recall@10']['mean']:.3f}" if r["metrics"].get("recall@10") else "—"))
             for i, m in enumerate(report["models"]) for r in m["runs"] if "overlap_with_exact@10" in r]
    trade_html = ("<h2>Store: speed against exactness</h2><p><small>one point per store run: median latency of "
                  "one query (x) and the share of the exact top 10 it returns (y); hover for details</small></p>"
                  + plots.svg_scatter(trade, xlabel="ms / query (median)", ylabel="overlap with exact top 10")
                  if trade else "")
    modes = _mode_rows(report)
    mode_pts = [(r["latency"]["p50_ms"], r["metrics"]["recall@10"]["mean"], i,
                 f"{name}: {r['latency']['p50_ms']:.2f} ms (p95 {r['latency']['p95_ms']:.2f}), recall@10 "
                 f"{r['metrics']['recall@10']['mean']:.3f}")
                for i, (name, r) in enumerate(modes) if (r["metrics"].get("recall@10") or {}).get("mean") is not None]
    if mode_pts:
        trade_html = ("<h2>Search modes: quality against latency</h2><p><small>one point per search mode: median "
                      "store latency of one query (x) and recall@10 (y); hover for details</small></p>"
                      + plots.svg_scatter(mode_pts, xlabel="ms / query (median)", ylabel="recall@10")
                      + trade_html)
    bars = "search modes through the store" if modes else "exact (numpy) search"
    body = (f"<h1>obembed eval — {escape(str(ds['name']))}</h1>"
            f"<p><small>{ds['documents']} documents, {ds['queries']} queries · {escape(report['created'])} · "
            f"bars: {bars}, whiskers: {report['bootstrap']['confidence']:.0%} bootstrap interval "
            "over queries</small></p>"
            f"<div>{plots.legend_html([s[0] for s in series])}</div>"
            f"{plots.svg_grouped_bars(report['metrics'], series)}"
            f"<h2>All runs</h2>{table}<p><small>metric cells: mean ± half the interval. ms/query: numpy = batched "
            "mean; store = median single-query latency.</small></p>" + trade_html + "<h2>Encoding speed</h2>" + speed)
    out = Path(out)
    out.write_text(plots.html_page(f"obembed eval — {ds['name']}", body, report), encoding="utf-8")
    return out
