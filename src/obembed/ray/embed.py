"""``embed(ds, model=...)``: an embedding column on a Ray Dataset, computed by a pool of actors.

Each actor loads the model once (in its constructor) and embeds whole blocks: a block's texts go to the
provider in one call, so obembed's token-sorted batching (sort the block by token count, cut batches by a
padded-token budget, restore the order) runs inside every block, as in a local ingest.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, InvalidInputError
from ..settings import get_settings

__all__ = ["DEFAULT_BLOCK_ROWS", "Embedder", "embed", "embed_isolated", "load_bulk_provider", "model_of"]

log = logging.getLogger(__name__)

BLOCK_MARKS_ENV = "OBEMBED_RAY_BLOCK_MARKS"
"""Fault tests: a file each actor appends its pid to when it starts a block (set before the Ray runtime starts)."""

DEFAULT_BLOCK_ROWS = 1024
"""Texts per actor call: the same default as ``obembed ingest --batch-size`` (large batches sort well)."""

OnError = Literal["raise", "report"]


def load_bulk_provider(model: str | None, options: Mapping[str, Any] | None = None) -> Any:
    """The provider an actor embeds with: :func:`obembed.load` (the library picks the runtime: the verified
    fp32 ONNX export of a local CPU model, torch on a GPU). Called once per actor, and on the driver."""
    import obembed

    return obembed.load(model, **dict(options or {}))


def embed_isolated(provider: Any, texts: list[str]) -> tuple[dict[int, Any], set[int], dict[int, str]]:
    """Vectors by index, the indexes the model truncated, and failures by index with their reason.

    The ingest embedder's own isolation rule (one policy): a batch the model refuses for one input is split
    until the bad input is alone; the others are embedded.
    """
    from ..ingest.embedder import ChunkEmbedder
    from ..ingest.report import IngestReport

    return ChunkEmbedder(provider, IngestReport(collection=""), lambda failure: None)._embed_texts(texts)


class Embedder:
    """The actor class of :func:`embed`: one model per actor, loaded in ``__init__``."""

    def __init__(self, model: str | None, options: Mapping[str, Any] | None, text_column: str,
                 output_column: str, on_error: OnError = "raise", block_delay_s: float = 0.0) -> None:
        t0 = time.perf_counter()
        self.provider = load_bulk_provider(model, options)
        self.dimension = int(self.provider.dimension)  # loads the weights now, not in the first block
        self.text_column = text_column
        self.output_column = output_column
        self.on_error = on_error
        self.block_delay_s = float(block_delay_s)
        log.info("embed actor: %s (%s) loaded in %.1f s", getattr(self.provider, "spec", model),
                 getattr(self.provider, "runtime", "?"), time.perf_counter() - t0)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise ConfigError(f"the dataset has no column {self.text_column!r} (it has {sorted(batch)}); pass "
                              "text_column= naming the column that holds the texts")
        marks = get_settings().ray_block_marks  # OBEMBED_RAY_BLOCK_MARKS, a fault-test hook
        if marks:  # fault tests: this actor now holds a block (its pid, one line per block)
            with open(marks, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")
        raw = batch[self.text_column]
        n = len(raw)
        vectors = np.zeros((n, self.dimension), dtype=np.float32)
        errors = [""] * n
        truncated = np.zeros(n, dtype=bool)
        if n:
            if self.on_error == "raise":
                res = self.provider.embed([_text(t) for t in raw], kind="document")
                vectors[:] = res.vectors
                truncated[list(res.truncated)] = True
            else:
                # identical texts in a block are embedded once; bad ones get their reason, the rest go on
                uniq: dict[str, int] = {}
                where: list[int] = []
                for i, t in enumerate(raw):
                    if not isinstance(t, str) or not t.strip():
                        errors[i] = "empty or not a text" if t is None or isinstance(t, str) else \
                            f"a {type(t).__name__}, not a text"
                        where.append(-1)
                        continue
                    where.append(uniq.setdefault(t, len(uniq)))
                vecs, trunc, failed = embed_isolated(self.provider, list(uniq))
                for i, u in enumerate(where):
                    if u < 0:
                        continue
                    if u in failed:
                        errors[i] = failed[u]
                    else:
                        vectors[i] = vecs[u]
                        truncated[i] = u in trunc
        if self.block_delay_s:
            time.sleep(self.block_delay_s)
        out = dict(batch)
        out[self.output_column] = vectors
        if self.on_error == "report":
            out[f"{self.output_column}_error"] = np.array(errors, dtype=object)
            out[f"{self.output_column}_truncated"] = truncated
        return out


def _text(t: Any) -> str:
    if not isinstance(t, str):
        raise InvalidInputError(f"a {type(t).__name__} in the text column, not a text; convert or drop it")
    return t


def embed(
    ds: Any,
    *,
    model: str | None = None,
    text_column: str = "text",
    output_column: str = "embedding",
    options: Mapping[str, Any] | None = None,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    batch_size: int = DEFAULT_BLOCK_ROWS,
    on_error: OnError = "raise",
    block_delay_s: float = 0.0,
) -> Any:
    """A dataset with ``output_column`` added: the float32 embedding of ``text_column`` (a ``(d,)`` tensor).

    ``model``: a provider spec (default: the configured model). An actor pool of ``concurrency`` actors
    (an int, or ``(min, max)`` to autoscale; default 1) each loads the model once; ``num_cpus`` /
    ``num_gpus`` are what one actor reserves (``num_gpus > 0`` loads the model on CUDA). ``batch_size``
    texts go to one actor call and are sorted by token count inside it.
    ``on_error="report"``: a text the model refuses gets a zero vector and its reason in
    ``{output_column}_error`` (empty when fine), plus ``{output_column}_truncated``; ``"raise"`` fails the
    job. ``block_delay_s``: each actor waits this long after a block (fault tests; pacing a shared database).
    """
    from . import _require_ray

    _require_ray()
    if on_error not in ("raise", "report"):
        raise ConfigError(f"on_error={on_error!r}; use 'raise' or 'report'")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be ≥ 1")
    opts = dict(options or {})
    if num_gpus and "device" not in opts:
        opts["device"] = "cuda"
    kwargs: dict[str, Any] = {}
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    from ray.data import ActorPoolStrategy

    if isinstance(concurrency, tuple):
        pool = ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        pool = ActorPoolStrategy(size=concurrency or 1)
    out = ds.map_batches(
        Embedder,
        compute=pool,
        fn_constructor_kwargs={"model": model, "options": opts, "text_column": text_column,
                               "output_column": output_column, "on_error": on_error,
                               "block_delay_s": block_delay_s},
        batch_size=batch_size,
        batch_format="numpy",
        **kwargs,
    )
    try:  # write_collection(ds) checks the collection against this model without being told again
        out._obembed_model = model
    except AttributeError:  # pragma: no cover - a Dataset without a __dict__
        pass
    return out


def model_of(ds: Any) -> str | None:
    """The model spec :func:`embed` used for ``ds`` (None when unknown)."""
    spec = getattr(ds, "_obembed_model", None)
    return spec if isinstance(spec, str) else None
