"""``obembed embed``, ``obembed similarity``, ``obembed models``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..errors import InvalidInputError
from ..outputs import PLOT_SUFFIXES, check_output, write_error
from ..types import TruncatePolicy
from ._common import echo_json, load_provider, model_option

__all__ = ["embed", "embed_image_files", "models", "similarity_cmd"]


def _is_json_line(line: str) -> bool:
    stripped = line.lstrip()
    if not stripped.startswith(("{", '"')):
        return False
    try:
        return isinstance(json.loads(stripped), str | dict)
    except json.JSONDecodeError:
        return False


def read_texts(path: str, field: str = "text") -> list[str]:
    """One text per line, or JSONL (each line an object with ``field``, or a JSON string)."""
    if path == "-":
        raw = sys.stdin.read()
        name = "<stdin>"
    else:
        from ..ingest.loaders import sniff_binary

        p = Path(path)
        if not p.is_file():
            raise InvalidInputError(f"--file {path!r} does not exist or is not a file")
        data = p.read_bytes()
        why = sniff_binary(data[:8192])  # the rule ingest uses for text files
        if why:
            raise InvalidInputError(f"--file {path!r} is not text: {why.partition(' in a ')[0]}; give a text file "
                                    "(one text per line, or JSONL); images go to --image with a clip: model")
        raw = data.decode("utf-8", errors="replace")
        name = path
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    # JSONL for a .jsonl file, or when every line is a JSON string/object; a plain text file whose first
    # line happens to start with a quote or a brace stays one text per line
    if path.endswith(".jsonl") or (lines and all(_is_json_line(ln) for ln in lines)):
        out = []
        for n, ln in enumerate(lines, 1):
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{name} line {n} is not JSON: {exc.msg}; use one text per line or JSONL")\
                    from exc
            if isinstance(obj, str):
                out.append(obj)
            elif isinstance(obj, dict) and isinstance(obj.get(field), str):
                out.append(obj[field])
            else:
                raise InvalidInputError(f"{name} line {n} has no string field {field!r}; pass --field NAME")
        return out
    return lines


def _write_vectors(vectors: np.ndarray, texts: list[str], fmt: str, output: str | None,
                   stats: dict[str, Any]) -> None:
    if fmt == "npy":
        if output is None:
            if sys.stdout.isatty():
                raise click.UsageError("--format npy writes binary: give --output FILE.npy or redirect stdout")
            np.save(sys.stdout.buffer, vectors)
        else:
            try:
                np.save(output, vectors)
            except OSError as exc:
                raise write_error(exc, output, "--output") from None
            click.echo(f"wrote {vectors.shape[0]}x{vectors.shape[1]} float32 to {output}", err=True)
        return
    try:
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        raise write_error(exc, str(output), "--output") from None
    try:
        if fmt == "jsonl":
            for t, v in zip(texts, vectors, strict=True):
                out.write(json.dumps({"text": t, "embedding": [float(x) for x in v]}, ensure_ascii=False) + "\n")
        else:
            json.dump({"model": stats["model"], "dimension": int(vectors.shape[1]),
                       "truncated": stats["truncated"], **stats.get("extra", {}),
                       "embeddings": vectors.tolist()}, out)
            out.write("\n")
    finally:
        if output:
            out.close()


@click.command()
@click.argument("texts", nargs=-1)
@click.option("-f", "--file", "file", metavar="FILE", help="Read texts from FILE (one per line, or JSONL); - = stdin.")
@click.option("--field", default="text", show_default=True, help="JSONL field holding the text.")
@click.option("--image", "images", multiple=True, metavar="PATH", help="Embed an image (clip: models).")
@click.option("--query", is_flag=True, help="Embed as search queries (query prompt/prefix) instead of documents.")
@click.option("--format", "fmt", type=click.Choice(["json", "jsonl", "npy"]), default="json", show_default=True)
@click.option("--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--truncate", type=click.Choice(["truncate", "error"]), default=None,
              help="Long-input policy (default: truncate, counted and reported).")
@model_option
def embed(texts: tuple[str, ...], file: str | None, field: str, images: tuple[str, ...], query: bool, fmt: str,
          output: str | None, truncate: TruncatePolicy | None, model: str | None, options: tuple[str, ...]) -> None:
    """Embed TEXTS (or --file, or --image) and print the vectors.

    \b
    Examples:
      obembed embed "What is OceanBase?" "A distributed database"
      obembed embed --file notes.txt --format npy --output notes.npy
      obembed embed --model clip:openai/clip-vit-base-patch32 --image cat.jpg
    """
    items = list(texts) + (read_texts(file, field) if file else [])
    if not items and not images:
        raise click.UsageError("nothing to embed: give TEXT arguments, --file FILE or --image PATH")
    if output:
        check_output(output, what="--output")  # before the model runs
    provider = load_provider(model, options, purpose="oneshot")
    parts: list[np.ndarray] = []
    truncated: list[int] = []
    labels: list[str] = []
    if items:
        res = provider.embed(items, kind="query" if query else "document", truncate=truncate)
        parts.append(res.vectors)
        truncated = res.truncated
        labels += items
        if res.truncated:
            click.echo(f"note: {len(res.truncated)} of {len(items)} inputs were truncated to "
                       f"{provider.max_input_tokens} tokens", err=True)
    extra: dict[str, Any] = {}
    if images:
        vecs, kept, skipped = embed_image_files(provider, images)
        parts.append(vecs)
        labels += kept
        extra["images"] = kept
        if skipped:
            extra["skipped"] = skipped
    vectors = np.concatenate(parts, axis=0)
    _write_vectors(vectors, labels, fmt, output, {"model": provider.spec, "truncated": truncated, "extra": extra})


def embed_image_files(provider: Any, paths: tuple[str, ...] | list[str]) -> tuple[np.ndarray, list[str],
                                                                                 list[dict[str, str]]]:
    """Embed ``--image`` files: ``(vectors, kept paths, skipped [{image, error}])``.

    A bad file (missing, empty, not an image, truncated ...) is reported on stderr and skipped; the rest go on.
    """
    paths = list(paths)
    if not hasattr(provider, "embed_images_result"):
        return provider.embed_images(paths), paths, []  # text-only: raises UnsupportedInputError
    res = provider.embed_images_result(paths, on_error="skip")
    skipped = [{"image": paths[i], "error": why} for i, why in sorted(res.failed.items())]
    for s in skipped:
        click.echo(f"skipped: {s['error']}", err=True)
    if len(res) == 0:
        raise click.ClickException(f"none of the {len(paths)} images could be read (see the messages above)")
    return res.vectors, [paths[i] for i in res.extra["indices"]], skipped


@click.command("similarity")
@click.argument("texts", nargs=-1)
@click.option("--text", "more_texts", multiple=True, metavar="TEXT", help="A text (repeatable).")
@click.option("--image", "images", multiple=True, metavar="PATH", help="An image (clip: models; repeatable).")
@click.option("--metric", type=click.Choice(["cosine", "dot", "l2"]), default="cosine", show_default=True)
@click.option("--plot", metavar="OUT.png", help="Also save a heatmap (PNG or SVG).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@model_option
def similarity_cmd(texts: tuple[str, ...], more_texts: tuple[str, ...], images: tuple[str, ...], metric: str,
                   plot: str | None, as_json: bool, model: str | None, options: tuple[str, ...]) -> None:
    """Similarity matrix between TEXTS (and --image files, for cross-modal models).

    \b
    Example (the guide's four sentences):
      obembed similarity "The weather is lovely today." "It's so sunny outside!" \\
          "He drove to the stadium." "OceanBase stores vectors." --plot sim.png
    Cross-modal, with a CLIP model (texts and images in one matrix):
      obembed similarity -m clip:openai/clip-vit-base-patch32 --image dog.jpg --text "a dog" --text "a cat"
    """
    from ..similarity import similarity

    items = list(texts) + list(more_texts)
    if len(items) + len(images) < 1:
        raise click.UsageError("give at least one TEXT or --image")
    if plot:
        check_output(plot, what="--plot", suffixes=PLOT_SUFFIXES)  # before the model runs
    provider = load_provider(model, options, purpose="oneshot")
    parts = []
    if items:
        parts.append(provider.embed_documents(items))
    kept: list[str] = []
    if images:
        vecs, kept, _ = embed_image_files(provider, images)
        parts.append(vecs)
    vectors = np.concatenate(parts, axis=0)
    labels = items + [Path(p).name for p in kept]
    matrix = similarity(vectors, vectors, metric=metric)  # type: ignore[arg-type]
    if as_json:
        echo_json({"model": provider.spec, "metric": metric, "labels": labels, "matrix": matrix.round(6).tolist()})
    else:
        click.echo(format_matrix(matrix, labels))
    if plot:
        from ..plots import heatmap

        heatmap(matrix, labels, plot, title=f"{metric} similarity — {provider.spec}")
        click.echo(f"heatmap written to {plot}", err=True)


def format_matrix(matrix: np.ndarray, labels: list[str], width: int = 28) -> str:
    """A plain-text table: one row per label, numbered columns."""
    short = [(lb if len(lb) <= width else lb[: width - 1] + "…") for lb in labels]
    lw = max(len(s) for s in short) + 4
    head = " " * lw + "".join(f"{j:>9}" for j in range(len(labels)))
    rows = [f"[{i}] {s}".ljust(lw) + "".join(f"{x:9.4f}" for x in matrix[i]) for i, s in enumerate(short)]
    return "\n".join([head, *rows])


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--explain", "explain_spec", default=None, metavar="SPEC",
              help="Show what a run of SPEC on this machine uses (runtime, precision, threads, token budget) and why.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Provider option for --explain, e.g. -o threads=2 (repeatable).")
@click.option("--measure/--no-measure", default=True, show_default=True,
              help="Measure the offline models' speed here when no figure is kept yet (a few seconds each).")
@click.option("--remeasure", is_flag=True, help="Measure the offline models' speed again now.")
def models(as_json: bool, explain_spec: str | None, options: tuple[str, ...], measure: bool,
           remeasure: bool) -> None:
    """List the offline models (languages, speed here), provider backends and the default model
    (--explain SPEC: how SPEC runs here)."""
    from ..languages import MULTILINGUAL_MODEL
    from ..registry import default_registry
    from ..settings import DEFAULT_MODEL, get_settings

    if explain_spec is not None:
        from ..explain import explain, format_explain

        info = explain(load_provider(explain_spec, options, purpose="bulk"), requested=explain_spec)
        echo_json(info) if as_json else click.echo(format_explain(info))
        return
    from ..providers.rerank import default_rerank_registry

    reg = default_registry()
    rows = reg.describe()
    rerankers = default_rerank_registry().describe()
    current = get_settings().model
    offline = _offline_rows(measure or remeasure, remeasure)
    if as_json:
        echo_json({"default": DEFAULT_MODEL, "configured": current, "backends": rows,
                   "recommended": "st:BAAI/bge-m3", "rerankers": rerankers,
                   "default_for_cjk": MULTILINGUAL_MODEL, "offline": offline})
        return
    click.echo(f"default model: {DEFAULT_MODEL} (offline, bundled, English); Chinese/Japanese/Korean corpora get "
               f"{MULTILINGUAL_MODEL} automatically (see docs/providers.md)")
    if current != DEFAULT_MODEL:
        click.echo(f"configured (OBEMBED_MODEL): {current}")
    click.echo("\noffline models (no download; speed measured on this machine, short English + Japanese texts):")
    for m in offline:
        if not m["installed"]:
            speed = f"not installed: {m['install']}"
        elif m.get("speed"):
            sp = m["speed"]
            busy = f", {sp['others_cores']:.1f} cores busy elsewhere" if sp.get("others_cores") is not None else ""
            speed = f"{sp['texts_per_s']:.1f} texts/s ({sp['measured_utc']} UTC{busy})"
        else:
            speed = "speed not measured (obembed models --remeasure)"
        click.echo(f"  {m['spec']:<42} {m['dimension']}-d, {m['max_tokens']} tokens, {speed}")
        click.echo(f"  {'':<42} languages: {m['languages']}")
    click.echo("recommended online for multilingual work: st:BAAI/bge-m3 (1024-d, 8192 tokens, ~2.3 GB download)\n")
    click.echo("backends (spec BACKEND:MODEL):")
    for name, desc in rows.items():
        click.echo(f"  {name:<18} {desc}")
    click.echo("\nrerankers (search --rerank SPEC, serve --rerank-model SPEC; docs/rerank.md):")
    for name, desc in rerankers.items():
        click.echo(f"  {name:<18} {desc}")


def _offline_rows(measure: bool, refresh: bool) -> list[dict[str, Any]]:
    """The offline models with their speed here (kept figures, or measured now when ``measure``)."""
    from ..offline import kept_speed, measure_speed, offline_models

    rows = offline_models()
    for m in rows:
        m["speed"] = None
        if m["installed"]:
            m["speed"] = measure_speed(m["spec"], refresh=refresh) if measure else kept_speed(m["spec"])
    return rows
