"""The reranker contract: score ``(query, document)`` pairs, keep the original indexes, order with stable ties.

A backend implements one method, :meth:`Reranker.score_many` (all documents of one query, already validated);
the base class does the rest: input checks (a clear error naming the bad document), the empty list (an empty
result, no call), the count / index / finiteness checks of what came back, and the ordering
(score descending, ties in input order, so a re-run gives the same order).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from ...errors import ConfigError, InvalidInputError, ProviderResponseError
from ...settings import Settings, get_settings

__all__ = ["RerankHit", "RerankResult", "Reranker", "check_indexed_scores", "order", "validate_pairs"]

log = logging.getLogger(__name__)

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RerankHit:
    """One scored document: ``index`` into the documents given, ``score`` from the reranker (higher = better)."""

    index: int
    score: float


@dataclass
class RerankResult:
    """Scores in input order plus what happened while making them (never silent about truncation)."""

    scores: Scores
    """``(n,)`` float64, ``scores[i]`` belongs to ``documents[i]``."""
    truncated: list[int] = field(default_factory=list)
    """Documents whose (query, document) pair was cut to the model's maximum length."""
    n_tokens: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    """Document index -> reason, for a partial result (:class:`~obembed.errors.PartialBatchError`)."""

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def ranking(self, top_n: int | None = None) -> list[RerankHit]:
        """Hits ordered by score (descending), ties in input order; at most ``top_n``."""
        return order(self.scores, top_n)


def order(scores: Sequence[float] | np.ndarray, top_n: int | None = None) -> list[RerankHit]:
    """Indexes sorted by score descending; equal scores keep their input order (a stable sort)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = [int(i) for i in np.nonzero(~np.isfinite(arr))[0][:10]]
        raise ProviderResponseError(f"cannot order NaN/inf scores (documents {bad})")
    idx = np.argsort(-arr, kind="stable")
    if top_n is not None:
        if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 0:
            raise ConfigError(f"top_n={top_n!r} must be a non-negative integer (or None for all)")
        idx = idx[:top_n]
    return [RerankHit(int(i), float(arr[i])) for i in idx]


def validate_pairs(query: Any, documents: Iterable[Any]) -> tuple[str, list[str]]:
    """Check the query is a non-empty string and every document one; errors name the bad item and the fix."""
    if not isinstance(query, str):
        raise InvalidInputError(f"the rerank query is a {type(query).__name__}, not a string; pass the query text")
    if not query.strip():
        raise InvalidInputError("the rerank query is empty or whitespace-only; pass the query text")
    if isinstance(documents, str):
        raise InvalidInputError("expected a list of documents, got a single string; wrap it in a list")
    docs = list(documents)
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise InvalidInputError(
                f"document {i} is a {'None' if d is None else type(d).__name__}, not a string; "
                "convert it with str() or drop it", index=i)
        if not d.strip():
            raise InvalidInputError(
                f"document {i} is empty or whitespace-only; a reranker gives no meaningful score for it: drop it",
                index=i)
    return query, docs


def check_indexed_scores(pairs: Iterable[tuple[Any, Any]], n: int, *, who: str, where: str) -> Scores:
    """``(index, score)`` pairs from a reply -> ``(n,)`` scores in input order.

    Refused, with an error naming ``where`` (the request): an index that is not an integer in ``0..n-1``, a
    repeated index, a missing one (fewer scores than documents), a score that is not a finite number.
    Nothing is reordered or filled in silently.
    """
    out = np.full(n, np.nan, dtype=np.float64)
    seen = np.zeros(n, dtype=bool)
    count = 0
    for pos, (idx, score) in enumerate(pairs):
        count += 1
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < n:
            raise ProviderResponseError(
                f"{who}: {where}: result {pos} has index {idx!r}, not an index of the {n} documents sent "
                f"(0..{n - 1}); nothing was reordered", who)
        if seen[idx]:
            raise ProviderResponseError(
                f"{who}: {where}: index {idx} appears twice in the results; nothing was reordered", who)
        if isinstance(score, bool) or not isinstance(score, int | float) or not np.isfinite(score):
            raise ProviderResponseError(
                f"{who}: {where}: the score of document {idx} is {score!r}, not a finite number", who)
        seen[idx] = True
        out[idx] = float(score)
    if count != n or not seen.all():
        missing = [int(i) for i in np.nonzero(~seen)[0][:10]]
        raise ProviderResponseError(
            f"{who}: {where}: {int(seen.sum())} scores for {n} documents (missing {missing}"
            f"{', ...' if int((~seen).sum()) > 10 else ''}); nothing was reordered", who)
    return out


class Reranker(ABC):
    """Base class of every reranker backend. Subclasses implement :meth:`score_many`."""

    name: ClassVar[str] = ""
    """Registry name, the part of the spec before the colon."""
    secret_options: ClassVar[frozenset[str]] = frozenset({"api_key", "password", "token"})
    runtime: str = ""
    """Which execution path produced the scores (``torch``, ``onnx-fp32``, ``http``)."""

    def __init__(self, model: str, *, settings: Settings | None = None, **options: Any) -> None:
        if options:
            raise ConfigError(
                f"bad option for {self.name}:{model}: unknown option(s) {sorted(options)}; "
                f"see docs/rerank.md for {self.name}:'s options")
        self.model = model
        self.settings = settings or get_settings()
        self.options: dict[str, Any] = {}

    # ----------------------------------------------------------------- contract
    @abstractmethod
    def score_many(self, query: str, documents: Sequence[str]) -> RerankResult:
        """Score every document against ``query`` (validated, at least one); scores in input order."""

    def load(self) -> Self:
        """Load what scoring needs now rather than on first use (a local model, its ONNX export); nothing for
        a remote reranker. Returns self."""
        return self

    # ----------------------------------------------------------------- facts
    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"

    def public_options(self) -> dict[str, Any]:
        """Options safe to persist and show (secrets removed)."""
        return {k: v for k, v in sorted(self.options.items()) if k not in self.secret_options and v is not None}

    def info(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": self.name, "model": self.model, "options": self.public_options(),
                "runtime": self.runtime}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.public_options().items())
        return f"{type(self).__name__}({self.model!r}{', ' if opts else ''}{opts})"

    def close(self) -> None:
        """Release what the reranker holds (HTTP connections); it can still be used afterwards."""
        return None

    # ----------------------------------------------------------------- derived API
    def score(self, query: str, documents: Iterable[str]) -> RerankResult:
        """Scores of ``documents`` for ``query`` in input order, with truncation accounting.

        An empty document list gives an empty result without calling the backend.
        """
        query, docs = validate_pairs(query, documents)
        if not docs:
            return RerankResult(np.zeros(0, dtype=np.float64))
        result = self.score_many(query, docs)
        scores = np.asarray(result.scores, dtype=np.float64)
        if scores.shape != (len(docs),):
            raise ProviderResponseError(
                f"{self.spec} returned {scores.shape[0] if scores.ndim else 0} scores for {len(docs)} documents",
                self.name)
        if not np.isfinite(scores).all():
            bad = [int(i) for i in np.nonzero(~np.isfinite(scores))[0][:10]]
            raise ProviderResponseError(f"{self.spec} returned NaN/inf scores for documents {bad}", self.name)
        result.scores = scores
        return result

    def rerank(self, query: str, documents: Iterable[str], top_n: int | None = None) -> list[RerankHit]:
        """Documents ordered by relevance to ``query``: ``[RerankHit(index, score)]``, best first, ties stable."""
        if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 0):
            raise ConfigError(f"top_n={top_n!r} must be a non-negative integer (or None for all)")
        return self.score(query, documents).ranking(top_n)

    def __enter__(self) -> Reranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
