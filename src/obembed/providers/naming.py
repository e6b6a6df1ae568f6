"""The names a served model answers to.

One rule for embedding models and rerankers: an alias (``obembed serve -m NAME=SPEC``), the model's last path part,
the model name, the spec; the first is the name the server reports and the name an in-database registration
(:mod:`obembed.store.ai_models`) puts in the engine's requests. The server (which answers to these names) and the
store (which records them) both read it here, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

__all__ = ["served_names"]


def served_names(model: Any, alias: str | None = None) -> list[str]:
    """The names ``model`` (an embedding provider or a reranker: anything with ``.model`` and ``.spec``) is
    served under, first the one the server reports; no duplicates, no empty names."""
    names = [alias] if alias else []
    name = str(getattr(model, "model", "") or "")
    names += [name.rstrip("/").rsplit("/", 1)[-1], name, str(getattr(model, "spec", "") or "")]
    out: list[str] = []
    for n in names:
        if n and n not in out:
            out.append(n)
    return out
