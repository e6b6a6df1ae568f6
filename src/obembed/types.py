"""The vocabulary shared by every layer: vectors, kinds, distances, policies, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from .errors import InvalidInputError

__all__ = ["Distance", "EmbedResult", "Kind", "Metric", "TruncatePolicy", "Vector", "Vectors", "check_unicode"]

Vector: TypeAlias = npt.NDArray[np.float32]
"""One embedding, shape ``(d,)``, float32."""
Vectors: TypeAlias = npt.NDArray[np.float32]
"""Many embeddings, shape ``(n, d)``, float32, rows in input order."""
Kind: TypeAlias = Literal["query", "document"]
Distance: TypeAlias = Literal["cosine", "l2", "ip"]
"""The distance a vector index uses: cosine, euclidean (l2), inner product (ip)."""
Metric: TypeAlias = Literal["cosine", "dot", "l2"]
"""A similarity metric for :func:`obembed.similarity`."""
TruncatePolicy: TypeAlias = Literal["truncate", "error", "chunk"]
"""What to do with an input longer than the model's max input tokens."""


@dataclass
class EmbedResult:
    """Vectors plus what happened while making them (never silent about truncation)."""

    vectors: Vectors
    truncated: list[int] = field(default_factory=list)
    """Input indexes that were cut to the model's max input tokens."""
    n_tokens: int = 0
    """Tokens counted (the model's tokenizer when it has one, a conservative estimate otherwise)."""
    token_counts: list[int] = field(default_factory=list)
    """Tokens the model saw per input (after the cut), in input order; ``sum(token_counts) == n_tokens``."""
    failed: dict[int, str] = field(default_factory=dict)
    """Input index -> reason, for batch work that skips bad items."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_truncated(self) -> int:
        return len(self.truncated)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def check_unicode(text: str, what: str, index: int | None = None) -> str:
    """``text`` if it is valid Unicode text (encodable as UTF-8), else :class:`InvalidInputError` naming ``what``
    and the position: the one rule of every layer (model inputs, HTTP bodies, stored strings).

    A lone surrogate such as ``"\\ud800"`` (JSON allows it, Python keeps it) is no character: tokenizers, the engine
    and every remote API refuse it. Policy: refused, never silently replaced (files are decoded with
    ``errors="replace"`` when read, so they never hold one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} contains {text[exc.start:exc.end]!r} at position {exc.start}, a lone surrogate that is not "
            "valid Unicode text (no model takes it and it cannot be stored as UTF-8); remove it, or decode the "
            "source with errors='replace'", index=index) from None
    return text
