"""Dynamic batching for the embedding server.

Concurrent requests are queued as *jobs*; one worker thread per served model takes every job that is
waiting (up to ``max_batch_items`` texts and ``max_batch_tokens`` estimated tokens, waiting at most
``max_wait_s`` for companions after the first job arrived; a serial client, such as a database calling
``AI_EMBED`` row by row, stops paying that wait after a few lone batches), counts tokens once with the model's own
tokenizer, embeds the whole gathered batch in one :meth:`~obembed.providers.base.Provider.embed`
call (the backend sorts by length and splits into its own batches) and hands each job its rows.

All use of the provider (tokenizer and model) happens on the worker thread: Hugging Face fast
tokenizers are not safe to share between threads, and one model call at a time is what a CPU wants.

Back-pressure: at most ``max_queue`` texts may be pending (queued or being embedded). A request that
would go over is refused at once with :class:`ServerBusyError` (HTTP 503 + ``Retry-After``), so memory
stays bounded under overload; a request arriving at an idle server is always admitted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, InvalidInputError, ServerBusyError
from ..protocols import EmbeddingProvider
from ..providers.base import check_kind, truncation
from ..types import EmbedResult, Kind, Vectors

__all__ = ["BatchResult", "Batcher", "ServerBusyError"]

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """One job's share of a batch."""

    vectors: Vectors
    token_counts: list[int]
    """Tokens per input as the model saw them (after truncation)."""
    truncated: list[int]
    """Indexes of inputs cut to the model's limit."""
    batch_texts: int = 0
    """How many texts the model batch held (this job's plus its companions')."""


@dataclass
class _Job:
    texts: list[str]
    kind: Kind
    allow_truncate: bool
    est_tokens: int
    future: Future[BatchResult] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


def split_by_length(lengths: Sequence[int], overhead: int = 48) -> list[list[int]]:
    """Indices of ``lengths`` grouped so that padding waste plus per-call overhead is smallest.

    A model batch costs ``items x longest`` token slots; a handful of requests gathered at random have
    very different lengths, so one padded batch can cost twice the tokens it holds. Sorted by length, the
    cheapest contiguous split is found by dynamic programming, each extra call costing ``overhead``
    token slots (tokenizer + Python + small-GEMM inefficiency). Meant for small gathered batches
    (O(n^2)); large ones are already cut into budgeted, token-sorted batches by the provider.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ls = [max(1, int(lengths[i])) for i in order]
    n = len(ls)
    best = [0.0] + [math.inf] * n  # best[j]: cost of the first j sorted items
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = ls[j - 1]
        for i in range(j):  # last group = sorted items i..j-1, padded to ls[j-1]
            c = best[i] + (j - i) * longest + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j]: j])
        j = cut[j]
    return groups[::-1]


def _estimate(text: str) -> int:
    # cheap bound used only for batch sizing (the exact count comes from the tokenizer on the worker)
    return len(text) // 4 + 2


LONE_STREAK = 3
"""Lone batches in a row after which a lone job no longer waits ``max_wait_s`` for companions."""


class Batcher:
    """Gathers concurrent embedding requests for one provider into model batches on a worker thread."""

    def __init__(
        self,
        provider: EmbeddingProvider,
        *,
        max_batch_items: int = 256,
        max_batch_tokens: int = 16384,
        max_wait_s: float = 0.01,
        max_queue: int = 4096,
        name: str = "",
        split_padding: bool | None = None,
        split_max_items: int = 64,
        adaptive_wait: bool = True,
    ) -> None:
        if max_batch_items < 1 or max_batch_tokens < 1 or max_queue < 1 or max_wait_s < 0:
            raise ConfigError("batcher limits must be positive: max_batch_items, max_batch_tokens, max_queue >= 1, "
                              "max_wait_s >= 0")
        self.provider = provider
        self.name = name or provider.spec
        self.max_batch_items = max_batch_items
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        # local models pay for padding; remote ones would only make more HTTP calls
        self.split_padding = (provider.runtime != "http") if split_padding is None else split_padding
        self.split_max_items = split_max_items
        self.adaptive_wait = adaptive_wait
        # serial clients (a database's AI_EMBED sends one request per row and waits for it) never have companions:
        # after LONE_STREAK batches that waited in vain, a lone job runs at once; a batch that finds companions
        # (concurrent clients queue while the model runs) turns the wait back on
        self._lone = 0
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._pending = 0  # texts queued or being embedded
        self._closed = False
        self._texts_per_s = 10.0  # running estimate, for Retry-After
        self.stats = {"batches": 0, "texts": 0, "jobs": 0, "rejected": 0}
        self._thread = threading.Thread(target=self._run, name=f"obembed-batcher-{self.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ client side
    @property
    def pending(self) -> int:
        """Texts queued or being embedded right now."""
        return self._pending

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the time to drain the current queue, at least 1."""
        return max(1, math.ceil(self._pending / max(self._texts_per_s, 1e-3)))

    def submit(self, texts: Sequence[str], *, kind: Kind = "document",
               allow_truncate: bool = True) -> Future[BatchResult]:
        """Queue validated texts; the future gets a :class:`BatchResult` or the error.

        Raises :class:`ServerBusyError` at once when the queue cannot take ``len(texts)`` more texts.
        """
        job = _Job(list(texts), check_kind(kind), allow_truncate, sum(_estimate(t) for t in texts))
        with self._cond:
            if self._closed:
                raise ServerBusyError(f"model {self.name} is shutting down", retry_after=1)
            if self._pending and self._pending + len(job.texts) > self.max_queue:
                self.stats["rejected"] += 1
                raise ServerBusyError(
                    f"server busy: {self._pending} texts are queued for {self.name} (limit {self.max_queue}); "
                    f"retry after the Retry-After delay",
                    retry_after=self.retry_after(),
                )
            self._pending += len(job.texts)
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the jobs already queued."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker side
    def _take(self) -> list[_Job] | None:
        """Block for the next gathered batch (same kind), or None when closed and drained."""
        with self._cond:
            while not self._jobs:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._jobs.popleft()
            batch = [first]
            items, tokens = len(first.texts), first.est_tokens
            waiting = not (self.adaptive_wait and self._lone >= LONE_STREAK)
            deadline = first.enqueued + (self.max_wait_s if waiting else 0.0)
            while True:
                # take every waiting job of the same kind that fits
                i = 0
                while i < len(self._jobs):
                    job = self._jobs[i]
                    if job.kind == first.kind and items + len(job.texts) <= self.max_batch_items \
                            and tokens + job.est_tokens <= self.max_batch_tokens:
                        del self._jobs[i]
                        batch.append(job)
                        items += len(job.texts)
                        tokens += job.est_tokens
                    else:
                        i += 1
                full = items >= self.max_batch_items or tokens >= self.max_batch_tokens
                remaining = deadline - time.monotonic()
                if full or remaining <= 0 or self._closed:
                    self._lone = self._lone + 1 if len(batch) == 1 else 0
                    return batch
                self._cond.wait(remaining)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]
            n = sum(len(j.texts) for j in batch)
            t0 = time.perf_counter()
            try:
                if live:
                    self._embed(live)
            except BaseException as exc:  # never let the worker die; every job learns what happened
                log.exception("batcher %s: unexpected failure", self.name)
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(exc)
            finally:
                dt = time.perf_counter() - t0
                if n and dt > 0:
                    self._texts_per_s = 0.7 * self._texts_per_s + 0.3 * (n / dt)
                with self._cond:
                    self._pending -= n
                self.stats["batches"] += 1
                self.stats["texts"] += n
                self.stats["jobs"] += len(batch)

    def _embed(self, jobs: list[_Job]) -> None:
        p = self.provider
        kind = jobs[0].kind
        texts = [t for j in jobs for t in j.texts]
        counts = list(p.count_tokens(texts, kind=kind))
        limit = p.max_input_tokens
        ok: list[tuple[_Job, int]] = []  # job, offset into texts
        offset = 0
        for j in jobs:
            jc = counts[offset: offset + len(j.texts)]
            over = truncation(jc, limit)[0]
            if over and not j.allow_truncate:
                i = over[0]
                j.future.set_exception(InvalidInputError(
                    f"input {i} has {jc[i]} tokens, more than the context length of {self.name} ({limit}); "
                    "shorten it or allow truncation (Ollama: \"truncate\": true)", index=i))
            else:
                ok.append((j, offset))
            offset += len(j.texts)
        if not ok:
            return
        if len(ok) < len(jobs):
            sel = [k for j, off in ok for k in range(off, off + len(j.texts))]
            texts = [texts[k] for k in sel]
            counts = [counts[k] for k in sel]
        try:
            result = self._embed_texts(texts, counts, kind, limit)
        except Exception as exc:
            if len(ok) == 1:
                ok[0][0].future.set_exception(exc)
                return
            # one job may have poisoned the batch: retry each job alone so only the culprit fails
            log.warning("batcher %s: batch of %d jobs failed (%s); retrying one by one", self.name, len(ok), exc)
            for j, _ in ok:
                try:
                    alone = p.embed(j.texts, kind=kind, truncate="truncate")
                    j.future.set_result(self._share(alone, 0, len(j.texts), len(j.texts)))
                except Exception as exc2:
                    j.future.set_exception(exc2)
            return
        pos = 0
        for j, _ in ok:
            n = len(j.texts)
            j.future.set_result(self._share(result, pos, n, len(texts)))
            pos += n

    def _embed_texts(self, texts: list[str], counts: list[int], kind: Kind, limit: int | None) -> EmbedResult:
        """The merged batch through the provider's own contract (its accounting and checks), split into
        groups of similar length when that saves padding."""
        p = self.provider
        if not self.split_padding or len(texts) < 2 or len(texts) > self.split_max_items:
            return p.embed(texts, kind=kind, truncate="truncate")
        _, seen = truncation(counts, limit)
        groups = split_by_length(seen)
        if len(groups) == 1:
            return p.embed(texts, kind=kind, truncate="truncate")
        out: Vectors | None = None
        tokens = [0] * len(texts)
        cut: list[int] = []
        for g in groups:
            part = p.embed([texts[i] for i in g], kind=kind, truncate="truncate")
            if out is None:
                out = np.empty((len(texts), part.vectors.shape[1]), dtype=np.float32)
            out[g] = part.vectors
            for j, i in enumerate(g):
                tokens[i] = part.token_counts[j] if part.token_counts else seen[i]
            cut.extend(g[j] for j in part.truncated)
        assert out is not None
        return EmbedResult(out, truncated=sorted(cut), n_tokens=sum(tokens), token_counts=tokens)

    @staticmethod
    def _share(result: EmbedResult, start: int, n: int, batch_texts: int) -> BatchResult:
        """One job's rows of a batch's result: its vectors, tokens and truncated inputs (re-indexed)."""
        tokens = result.token_counts[start: start + n] if result.token_counts else [0] * n
        truncated = [i - start for i in result.truncated if start <= i < start + n]
        return BatchResult(result.vectors[start: start + n], list(tokens), truncated, batch_texts)
