"""The remote provider base: splits work by items and tokens per request, fans requests out over a thread
pool, keeps input order, adapts to a smaller batch limit, and keeps what succeeded in a partial failure."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, ClassVar, TypeVar

import httpx
import numpy as np

from ...errors import (
    BatchLimitError,
    ConfigError,
    InvalidInputError,
    PartialBatchError,
    ProviderError,
    ProviderResponseError,
)
from ...types import EmbedResult, Kind, Vectors
from ..base import Provider, estimate_tokens, known_options, truncation
from .client import build_client
from .retry import FATAL, RetryPolicy, Throttle

__all__ = ["RemoteProvider", "cut_to_tokens"]

log = logging.getLogger(__name__)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- text cutting
def cut_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose conservative token estimate is within ``limit``."""
    if estimate_tokens(text) <= limit:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_tokens(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _ranges_text(indexes: Sequence[int]) -> str:
    """[0,1,2,5,7,8] → "0-2, 5, 7-8"."""
    out: list[str] = []
    it = sorted(indexes)
    i = 0
    while i < len(it):
        j = i
        while j + 1 < len(it) and it[j + 1] == it[j] + 1:
            j += 1
        out.append(str(it[i]) if i == j else f"{it[i]}-{it[j]}")
        i = j + 1
    return ", ".join(out[:20]) + (", ..." if len(out) > 20 else "")


class _Skipped(Exception):
    """A sub-batch not sent because an earlier one failed in a way every request would (bad key, no quota)."""


_EXPECTED = (ProviderError, ConfigError, InvalidInputError, _Skipped)
"""Errors a sub-batch may end with; anything else is a bug and propagates as is."""


# ---------------------------------------------------------------------------------------------- provider base
class RemoteProvider(Provider):
    """Base of the HTTP/SDK providers: request shaping, concurrency, retries, partial results.

    Subclasses implement :meth:`embed_batch` for one request and set the ``default_*`` class attributes.
    """

    runtime = "http"
    default_concurrency: ClassVar[int] = 4
    default_max_batch_items: ClassVar[int | None] = None
    default_max_batch_tokens: ClassVar[int | None] = None
    default_max_input_tokens: ClassVar[int | None] = None
    client_side_truncation: ClassVar[bool] = True
    """Cut over-long inputs before sending (the server would refuse them); False where the server truncates."""

    def __init__(
        self,
        model: str,
        *,
        concurrency: int | None = None,
        batch_size: int | None = None,
        max_batch_items: int | None = None,
        max_batch_tokens: int | None = None,
        max_input_tokens: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_max_time: float | None = None,
        retry_initial: float | None = None,
        retry_max_wait: float | None = None,
        retry_jitter: float | None = None,
        http_client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - {"truncate", "settings"})
        if unknown:  # a typo such as dimension= for dimensions= must not be ignored silently
            raise ConfigError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {self.name}:{model}; "
                f"known: {', '.join(self.known_options())}"
            )
        super().__init__(model, batch_size=batch_size, **kwargs)
        for name, value in (("concurrency", concurrency), ("batch_size", batch_size),
                            ("max_batch_items", max_batch_items), ("max_batch_tokens", max_batch_tokens),
                            ("max_input_tokens", max_input_tokens)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        self.concurrency = int(concurrency or self.default_concurrency)  # also sets self.throttle
        limits = [x for x in (max_batch_items or self.default_max_batch_items, batch_size) if x]
        self.max_batch_items = min(limits) if limits else None
        self.max_batch_tokens = max_batch_tokens or self.default_max_batch_tokens
        self.max_input_tokens = max_input_tokens or self.default_max_input_tokens
        self.timeout = float(timeout if timeout is not None else self.settings.timeout)
        if self.timeout <= 0:
            raise ConfigError(f"timeout={timeout!r} must be a positive number of seconds")
        retries = self.settings.max_retries if max_retries is None else int(max_retries)
        defaults = RetryPolicy()
        self.retry = RetryPolicy(
            max_attempts=max(1, retries + 1),
            max_time=float(retry_max_time if retry_max_time is not None else max(defaults.max_time, self.timeout)),
            initial=float(retry_initial if retry_initial is not None else defaults.initial),
            max_wait=float(retry_max_wait if retry_max_wait is not None else defaults.max_wait),
            jitter=float(retry_jitter if retry_jitter is not None else defaults.jitter),
        )
        self._http_client = http_client
        self._lock = threading.Lock()

    @property
    def concurrency(self) -> int:
        """Most requests in flight at once; a 429 lowers the live limit (``throttle.limit``) for a while."""
        return self._concurrency

    @concurrency.setter
    def concurrency(self, n: int) -> None:
        self._concurrency = max(1, int(n))
        self.throttle = Throttle(self._concurrency)

    @classmethod
    def known_options(cls) -> list[str]:
        """Every keyword option this backend takes (from the ``__init__`` signatures of its classes)."""
        return known_options(cls)

    # ------------------------------------------------------------------ plumbing
    @cached_property
    def client(self) -> httpx.Client:
        """The ``httpx.Client`` (given, or built on first use with explicit timeouts)."""
        if self._http_client is not None:
            return self._http_client
        return build_client(timeout=self.timeout, max_connections=max(self.concurrency, 4))

    def close(self) -> None:
        """Close the HTTP client this provider built (not one that was passed in)."""
        if self._http_client is None and "client" in self.__dict__:
            self.__dict__.pop("client").close()

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from every message (API keys)."""
        return ()

    @staticmethod
    def real_secrets(*values: str | None) -> tuple[str, ...]:
        """The values worth scrubbing: a 1-5 character "key" is no credential, and replacing every "k" in a
        message would garble it."""
        return tuple(v for v in values if v and len(v) >= 6)

    def env_secret(self, env: str | None) -> str | None:
        return os.environ.get(env) if env else None

    # ------------------------------------------------------------------ shaping
    def prepare_texts(self, texts: Sequence[str], counts: Sequence[int], kind: Kind) -> tuple[list[str], list[int]]:
        """Cut inputs over ``max_input_tokens`` (policy 'truncate') so the server does not refuse them."""
        limit = self.max_input_tokens
        if not (limit and self.client_side_truncation):
            return list(texts), list(counts)
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        out_t, out_c = list(texts), list(counts)
        for i, c in enumerate(counts):
            if c > limit:
                out_t[i] = cut_to_tokens(texts[i], max(1, limit - estimate_tokens(prefix) + 2))
                out_c[i] = min(c, limit)
        return out_t, out_c

    def _one_request(self, batch: Sequence[str], kind: Kind, call: Callable[[Sequence[str], Kind], T]) -> T:
        def attempt() -> T:
            token = self.throttle.acquire()  # a slot per attempt: a worker waiting out a backoff holds none
            error: BaseException | None = None
            try:
                return call(batch, kind)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self.throttle.release(token, error)

        return self.retry.call(attempt, what=f"{self.spec} request of {len(batch)} inputs")

    def _run_range(self, texts: Sequence[str], a: int, b: int, kind: Kind,
                   call: Callable[[Sequence[str], Kind], list[Any]]) -> list[Any]:
        """Embed texts[a:b] (one request, or several if the server's limit turned out smaller)."""
        limit = self.max_batch_items
        if limit and b - a > limit:
            out: list[Any] = []
            for s in range(a, b, limit):
                out.extend(self._run_range(texts, s, min(s + limit, b), kind, call))
            return out
        try:
            rows = list(self._one_request(texts[a:b], kind, call))
        except BatchLimitError as exc:
            if not 0 < exc.limit < b - a:
                raise
            with self._lock:
                if not self.max_batch_items or self.max_batch_items > exc.limit:
                    log.warning("%s: the server takes at most %d inputs per request (sent %d); using %d from now on",
                                self.spec, exc.limit, b - a, exc.limit)
                    self.max_batch_items = exc.limit
            return self._run_range(texts, a, b, kind, call)
        if len(rows) != b - a:
            raise ProviderResponseError(f"{self.spec} returned {len(rows)} results for {b - a} inputs", self.name)
        return rows

    def run_batches(
        self,
        texts: Sequence[str],
        counts: Sequence[int],
        kind: Kind,
        call: Callable[[Sequence[str], Kind], list[Any]],
    ) -> tuple[list[Any], dict[int, BaseException]]:
        """Run ``call`` over request-sized slices, ``concurrency`` at a time, in input order.

        Returns one result per text (``None`` where it failed) and ``{text index: error}`` for the failures.
        A failure every request would share (bad key, no quota, unknown model) stops the remaining slices.
        """
        ranges = list(self.iter_batches(texts, counts))
        results: list[Any] = [None] * len(texts)
        failures: dict[int, BaseException] = {}
        stop = threading.Event()

        def work(a: int, b: int) -> list[Any]:
            if stop.is_set():
                raise _Skipped()
            try:
                return self._run_range(texts, a, b, kind, call)
            except FATAL:
                stop.set()
                raise

        if self.concurrency <= 1 or len(ranges) <= 1:
            outcomes: list[Any] = []
            for a, b in ranges:
                try:
                    outcomes.append(work(a, b))
                except _EXPECTED as exc:
                    outcomes.append(exc)
        else:
            _ = self.client if self._uses_http_client() else None  # build the client once, before the threads
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(ranges)),
                                    thread_name_prefix=f"obembed-{self.name}") as pool:
                futures = [pool.submit(work, a, b) for a, b in ranges]
                outcomes = []
                try:
                    for f in futures:
                        error = f.exception()
                        outcomes.append(error if error is not None else f.result())
                except BaseException:  # Ctrl-C: don't send what is still queued
                    stop.set()
                    raise
        first_fatal: BaseException | None = None
        for (a, b), outcome in zip(ranges, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, _EXPECTED):
                    raise outcome
                if isinstance(outcome, FATAL) and first_fatal is None:
                    first_fatal = outcome
                for i in range(a, b):
                    failures[i] = outcome
            else:
                results[a:b] = outcome
        if first_fatal is not None:
            for i, e in list(failures.items()):
                if isinstance(e, _Skipped):
                    failures[i] = first_fatal
        return results, failures

    def _uses_http_client(self) -> bool:
        return True

    def _raise_failures(self, n: int, failures: dict[int, BaseException], result: EmbedResult) -> None:
        """Nothing succeeded → the first error itself; some did → :class:`PartialBatchError` keeping them."""
        first = failures[min(failures)]
        if len(failures) == n:
            raise first
        reasons = {i: str(e) for i, e in failures.items()}
        result.failed = reasons
        kinds = sorted({type(e).__name__ for e in failures.values()})
        raise PartialBatchError(
            f"{self.spec}: {len(failures)} of {n} inputs failed after retries (items {_ranges_text(list(failures))}; "
            f"{', '.join(kinds)}; first: {first}). The other {n - len(failures)} vectors are kept in .result "
            "(failed rows are NaN, .failed maps item index to its error): re-embed only the failed items",
            self.name, failures, result,
        )

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        """Split by items and tokens, send ``concurrency`` requests at once, keep order, keep partial results."""
        return self.run_remote(texts, kind, token_counts, self.request_fn())

    def run_remote(self, texts: Sequence[str], kind: Kind, token_counts: Sequence[int],
                   fn: Callable[[Sequence[str], Kind], list[Any]]) -> Vectors:
        """:meth:`embed_many` with the one-request function ``fn`` (a backend binds per-call settings in it)."""
        texts2, counts2 = self.prepare_texts(texts, token_counts, kind)
        rows, failures = self.run_batches(texts2, counts2, kind, fn)
        if not failures:
            return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        good = [r for r in rows if r is not None]
        dim = len(good[0]) if good else (self._dimension or 0)
        arr = np.full((len(texts), dim), np.nan, dtype=np.float32)
        for i, r in enumerate(rows):
            if r is not None:
                arr[i] = r
        self._raise_failures(len(texts), failures, self.partial_result(arr, token_counts))
        raise AssertionError("unreachable")  # pragma: no cover

    def partial_result(self, vectors: Vectors, token_counts: Sequence[int], **extra: Any) -> EmbedResult:
        """What :class:`PartialBatchError` carries: the vectors plus the same accounting :meth:`embed` gives."""
        truncated, seen = truncation(token_counts, self.max_input_tokens)
        return EmbedResult(vectors, truncated=truncated, n_tokens=sum(seen), token_counts=seen, extra=dict(extra))

    def _rows(self, batch: Sequence[str], kind: Kind) -> list[Any]:
        return list(self.embed_batch(batch, kind=kind))

    def request_fn(self) -> Callable[[Sequence[str], Kind], list[Any]]:
        """The one-request function :meth:`embed_many` runs on its worker threads (the provider's own settings;
        a backend with per-call settings passes its own function to :meth:`run_remote`)."""
        return self._rows

    def embed_lenient(self, items: Iterable[Any], *, kind: Kind = "document") -> EmbedResult:
        """Like :meth:`embed` but a partial failure returns what succeeded (``.failed`` names the rest)."""
        try:
            return self.embed(items, kind=kind)
        except PartialBatchError as exc:
            result: EmbedResult = exc.result
            return result

    # ------------------------------------------------------------------ vectors
    def check_rows(self, rows: Sequence[Any], n: int, expected_dim: int | None, *, where: str) -> np.ndarray:
        """Rows → ``(n, d)`` float32, checking count, equal lengths, expected dimension and finiteness."""
        if len(rows) != n:
            raise ProviderResponseError(
                f"{self.spec}: {where} returned {len(rows)} vectors for {n} inputs", self.name)
        lengths = {len(r) for r in rows}
        if 0 in lengths:
            raise ProviderResponseError(f"{self.spec}: {where} returned an empty vector", self.name)
        if len(lengths) > 1:
            raise ProviderResponseError(
                f"{self.spec}: {where} returned vectors of different lengths {sorted(lengths)}", self.name)
        arr = np.asarray(rows, dtype=np.float32).reshape(n, -1)
        if expected_dim is not None and arr.shape[1] != expected_dim:
            raise ProviderResponseError(
                f"{self.spec}: {where} returned {arr.shape[1]}-d vectors, expected {expected_dim}", self.name)
        if not np.isfinite(arr).all():
            raise ProviderResponseError(f"{self.spec}: {where} returned NaN/inf values", self.name)
        return arr
