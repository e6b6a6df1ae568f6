"""Encoding for evaluation: timed, with an optional on-disk cache of the vectors.

The cache (``cache_dir``) is opt-in: re-running an evaluation with other index settings then costs no
re-encoding. An entry is keyed by the provider's spec, its vector space (which holds a content key of a
local model folder), its public options, runtime, prefixes, the kind
(query/document) and a hash of the texts; it stores the vectors and the throughput measured when they
were made, so a report from cached vectors still shows a real (and flagged) encode speed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..protocols import EmbeddingProvider
from ..types import Kind, Vectors

__all__ = ["Encoded", "cache_key", "encode"]

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    vectors: Vectors
    seconds: float
    n_truncated: int
    n_tokens: int
    cached: bool = False

    @property
    def per_second(self) -> float:
        return len(self.vectors) / self.seconds if self.seconds > 0 else float("inf")


def cache_key(provider: EmbeddingProvider, texts: list[str], kind: Kind) -> str:
    """A stable key for (provider settings, kind, texts)."""
    h = hashlib.sha256()
    ident = {
        "spec": provider.spec,
        # the vector space: for a local folder it holds a content key, so a model retrained in place
        # (same spec, same options) never reuses the old model's cached vectors
        # (its prompts part is left out: the prefix of this kind is in the key already, so documents encoded
        # with and without a query prompt still share one entry)
        "space": re.sub(r"\|prompts=[^|]*", "", provider.space),
        "options": provider.public_options(),
        "runtime": provider.runtime,
        "prefix": provider.query_prefix if kind == "query" else provider.document_prefix,
        "kind": kind,
        "n": len(texts),
    }
    h.update(json.dumps(ident, sort_keys=True, default=str).encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def encode(provider: EmbeddingProvider, texts: list[str], kind: Kind, *,
           cache_dir: str | Path | None = None) -> Encoded:
    """Embed ``texts`` as ``kind``; wall time measured around :meth:`Provider.embed`.

    Loading, exporting (``onnx:``) and the first call's warm-up happen before the clock starts, so the
    speed is the steady-state throughput a bulk job sees.
    """
    provider.dimension  # noqa: B018 - load the model outside the timed part
    path = None
    if cache_dir is not None:
        folder = Path(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{cache_key(provider, texts, kind)}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                vecs = np.asarray(z["vectors"], dtype=np.float32)
                meta = json.loads(str(z["meta"]))
            if vecs.shape[0] == len(texts):
                log.info("%s: %d %s vectors from the cache %s", provider.spec, len(texts), kind, path)
                return Encoded(vecs, float(meta["seconds"]), int(meta["n_truncated"]), int(meta["n_tokens"]),
                               cached=True)
    load = getattr(provider, "load", None)
    if callable(load):
        load()  # e.g. onnx: export / open the session now
    if texts:
        provider.embed(texts[:1], kind=kind)  # warm-up: lazy sessions, thread pools, first-call allocations
    t0 = time.perf_counter()
    res = provider.embed(texts, kind=kind)
    seconds = time.perf_counter() - t0
    out = Encoded(res.vectors, seconds, res.n_truncated, res.n_tokens)
    if path is not None:
        meta = {"seconds": seconds, "n_truncated": res.n_truncated, "n_tokens": res.n_tokens,
                "spec": provider.spec, "kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, vectors=res.vectors, meta=np.array(json.dumps(meta)))
        tmp.replace(path)
    return out
