"""What the store hands back: :class:`Hit` (one search result)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Hit"]


@dataclass
class Hit:
    """One search result.

    ``distance`` is what the engine computed (cosine distance, l2 distance, or negative inner product;
    ``None`` for a hybrid hit found only by full-text); ``score`` grows with similarity: ``1 - d`` for
    cosine, the inner product for ip, ``1 / (1 + d)`` for l2, the RRF score for hybrid search.
    """

    id: str
    content: str | None = None
    source: str | None = None
    chunk: int | None = None
    distance: float | None = None
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (dates as ISO strings)."""
        d = asdict(self)
        d["columns"] = {k: _jsonable(v) for k, v in self.columns.items()}
        return d


def _jsonable(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    try:
        from decimal import Decimal

        if isinstance(v, Decimal):
            return float(v)
    except ImportError:  # pragma: no cover
        pass
    return v
