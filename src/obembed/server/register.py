"""``obembed serve --register``: register the served models (and the served reranker) in the server's store as
the database's AI models (:mod:`obembed.store.ai_models`) and accept their access keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..store.ai_models import register_model, register_reranker, server_urls
from .routes.rerank import reranker_names
from .state import ServerState

__all__ = ["register_served"]


def register_served(state: ServerState, url: str, collections: Sequence[str] = ()) -> list[Any]:
    """Register each served model for the collections of its vector space (``collections``: only these, and each
    must match a served model), or under its own name when no collection holds its vectors; and the reranker, when
    the server has one, as the engine's rerank model. ``url``: the server as the database reaches it
    (``http://HOST:PORT``, or its ``/v1/embeddings`` URL). Returns the registrations; their keys are accepted by
    this server."""
    embeddings_url, rerank_url = server_urls(url)
    state.store()  # opened now: a server without a store cannot register
    if collections:
        metas = [state.run_store(lambda s, n=n: s.collection(n).metadata) for n in collections]
    else:
        metas = [state.run_store(lambda s, n=c["name"]: s.collection(n).metadata)
                 for c in state.run_store(lambda s: s._list_meta())]
    out: list[Any] = []
    matched: set[str] = set()
    for meta in metas:
        m = state.served_for(meta)
        if m is None:
            if collections:
                served = ", ".join(x.name for x in state.models)
                raise ConfigError(f"collection {meta['name']!r} holds vectors of {meta.get('spec')}, which this "
                                   f"server does not serve ({served}); serve it with -m {meta.get('spec')}")
            continue
        matched.add(m.name)
        out += state.run_store(lambda s, m=m, meta=meta: register_model(
            s, embeddings_url, m.provider, collection=meta["name"], served_name=m.name))
    for m in state.models:
        if m.name not in matched:
            out += state.run_store(lambda s, m=m: register_model(s, embeddings_url, m.provider, served_name=m.name))
    if state.reranker is not None:
        reranker = state.reranker
        out += state.run_store(lambda s: register_reranker(s, rerank_url, reranker,
                                                           served_name=reranker_names(reranker)[0]))
    state.registered_keys |= {r.key_sha256 for r in out}
    return out
