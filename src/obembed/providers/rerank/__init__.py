"""Rerankers: a second stage that scores ``(query, document)`` pairs and reorders first-stage candidates.

``obembed.load_reranker("cross-encoder:./my-reranker")``, ``load_reranker("dashscope-rerank:gte-rerank-v2")``,
``load_reranker("cohere:rerank-v3.5")`` ...; see :mod:`.registry` for every backend and docs/rerank.md.
"""

from __future__ import annotations

from .base import Reranker, RerankHit, RerankResult, check_indexed_scores, order, validate_pairs
from .registry import RERANK_BACKENDS, RerankRegistry, default_rerank_registry, load_reranker, parse_rerank_spec

__all__ = [
    "RERANK_BACKENDS",
    "RerankHit",
    "RerankRegistry",
    "RerankResult",
    "Reranker",
    "check_indexed_scores",
    "default_rerank_registry",
    "load_reranker",
    "order",
    "parse_rerank_spec",
    "validate_pairs",
]
