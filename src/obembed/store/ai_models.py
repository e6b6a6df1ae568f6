"""In-database models: obembed's served models registered as the engine's AI models, so that SQL's
``AI_EMBED('<name>', text)`` calls ``obembed serve``'s ``/v1/embeddings`` and makes the vectors Python makes.

A registration is an engine AI model (``DBMS_AI_SERVICE.CREATE_AI_MODEL``) plus its endpoint (URL of the server,
a dedicated random access key) plus a row in ``obembed_ai_models`` recording what it stands for: the collection,
its vector space and dimension, the served model and the prompt kind (document or query), and the SHA-256 of the
key (the server accepts the keys whose hash is recorded; the key itself is only in the engine's endpoint).

Names (what SQL calls):

* with a collection ``C``: ``obembed_C`` (document embeddings, the vectors ``obembed ingest`` stores) and, when
  the model embeds queries differently (a query prompt such as e5's ``query: ``), ``obembed_C_query``;
* without a collection: ``obembed_<model>`` (the served model name, lower case, other characters as ``_``) and
  ``obembed_<model>_query`` likewise;
* ``name=`` replaces the ``obembed_C`` / ``obembed_<model>`` part.

The request body carries ``model: "<served name>::document"`` (or ``::query``): the server picks the model and the
prompt from it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigError, DimensionMismatchError, StoreError, redact
from . import schema

if TYPE_CHECKING:
    from .seekdb import Store

__all__ = ["AI_TABLE", "KIND_SEP", "Registration", "check_models", "drop_models", "key_hashes", "list_models",
           "register_model", "registration_names", "split_model_name"]

AI_TABLE = "obembed_ai_models"
KIND_SEP = "::"
"""``<served name>::query`` in the request body: embed with the query prompt (``::document``: the document one)."""

Kind = Literal["document", "query"]
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass
class Registration:
    """One AI model of the engine that calls an obembed server. ``key`` is set only on the object that
    :func:`register_model` returns for a new or renewed registration (never read back, never printed)."""

    name: str
    endpoint: str
    model_name: str
    kind: str
    collection: str | None
    space: str | None
    dimension: int
    url: str
    key_sha256: str = field(repr=False)
    status: str = "ok"
    key: str | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "endpoint": self.endpoint, "model_name": self.model_name, "kind": self.kind,
                "collection": self.collection, "space": self.space, "dimension": self.dimension, "url": self.url,
                "status": self.status}


def split_model_name(model: str) -> tuple[str, Kind | None]:
    """``"minilm::query"`` -> ("minilm", "query"); a name without a kind -> (name, None)."""
    base, sep, kind = model.rpartition(KIND_SEP)
    if sep and kind in ("query", "document") and base:
        return base, kind  # type: ignore[return-value]
    return model, None


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s or "model"


def registration_names(*, collection: str | None, served_name: str, has_prompts: bool,
                       name: str | None = None) -> list[tuple[str, Kind]]:
    """The SQL names of a registration and their prompt kinds (document first)."""
    base = name or ("obembed_" + (collection.lower() if collection else _slug(served_name.rsplit("/", 1)[-1])))
    base = base[:56]
    if not _NAME_RE.match(base):
        raise ConfigError(f"AI model name {base!r}: use lower-case letters, digits and _ (starting with a letter, "
                          "at most 56 characters), e.g. name='obembed_docs'")
    out: list[tuple[str, Kind]] = [(base, "document")]
    if has_prompts:
        out.append((base + "_query", "query"))
    return out


def _ddl() -> str:
    return f"""CREATE TABLE IF NOT EXISTS {schema.quote(AI_TABLE)} (
  `name` varchar(64) NOT NULL,
  `endpoint` varchar(80) NOT NULL,
  `model_name` varchar(512) NOT NULL,
  `kind` varchar(16) NOT NULL,
  `collection` varchar(64),
  `space` varchar(1024),
  `dimension` int NOT NULL,
  `url` varchar(1024) NOT NULL,
  `key_sha256` char(64) NOT NULL,
  `created_at` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`name`)
) DEFAULT CHARSET = utf8mb4"""


def _ensure_table(store: Store) -> None:
    store.execute(_ddl(), what="create the AI model table", fetch=False)


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _has_prompts(provider: Any) -> bool:
    """True when the model embeds a query differently from a document (a query prompt/prefix)."""
    probe = "obembed prompt probe"
    q = np.asarray(provider.embed_query(probe), np.float32)
    d = np.asarray(provider.embed_documents([probe])[0], np.float32)
    return not np.allclose(q, d, atol=1e-6)


def _engine_models(store: Store) -> dict[str, str]:
    """The engine's AI models: name -> model_name."""
    rows, _ = store.execute("SELECT `NAME`, `MODEL_NAME` FROM oceanbase.DBA_OB_AI_MODELS",
                            what="list the engine's AI models")
    return {str(r[0]): str(r[1]) for r in rows}


def _engine_endpoints(store: Store) -> dict[str, tuple[str, str]]:
    """The engine's AI model endpoints: endpoint name -> (model name, url). The key column is never read."""
    rows, _ = store.execute("SELECT `ENDPOINT_NAME`, `AI_MODEL_NAME`, `URL` FROM oceanbase.DBA_OB_AI_MODEL_ENDPOINTS",
                            what="list the engine's AI model endpoints")
    return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}


def _call(store: Store, proc: str, *args: str, what: str) -> None:
    marks = ", ".join(["%s"] * len(args))
    store.execute(f"CALL DBMS_AI_SERVICE.{proc}({marks})", list(args), what=what, fetch=False, retry=False)


def _rows(store: Store) -> list[Registration]:
    _ensure_table(store)
    rows, _ = store.execute(
        f"SELECT `name`, `endpoint`, `model_name`, `kind`, `collection`, `space`, `dimension`, `url`, `key_sha256` "
        f"FROM {schema.quote(AI_TABLE)} ORDER BY `name`", what="list AI model registrations")
    return [Registration(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5], int(r[6]), str(r[7]), str(r[8]))
            for r in rows]


def register_model(store: Store, url: str, provider: Any, *, collection: str | None = None,
                   served_name: str | None = None, name: str | None = None) -> list[Registration]:
    """Register ``provider`` (served at ``url``, an ``.../v1/embeddings`` URL, under ``served_name``) as the
    engine's AI model(s) for ``collection``; returns one :class:`Registration` per SQL name (document, and query
    when the model has a query prompt). Idempotent: an unchanged registration is kept (its ``key`` is None);
    a changed one (URL, model, space) gets a new key. A collection of another dimension or vector space is refused.
    """
    if not url.startswith(("http://", "https://")) or not url.rstrip("/").endswith("/v1/embeddings"):
        raise ConfigError(f"registration URL {redact(url)!r}: give the server's embeddings URL, "
                          "e.g. http://127.0.0.1:8000/v1/embeddings")
    dim = int(provider.dimension)
    space = provider.space
    if collection is not None:
        coll = store.collection(collection)
        if coll.dimension != dim:
            raise DimensionMismatchError(
                f"cannot register {provider.spec} for collection {collection!r}: the model gives {dim}-d vectors, the "
                f"collection's embedding column is VECTOR({coll.dimension}); register the collection's own model "
                f"({coll.spec or f'a {coll.dimension}-d model'})")
        if coll.space and space and coll.space != space:
            raise DimensionMismatchError(
                f"cannot register {provider.spec} for collection {collection!r}: the collection holds vectors of "
                f"{coll.spec} (space {coll.space}), the model is another vector space ({space}); register "
                f"{coll.spec}")
        space = coll.space or space
    if served_name is None:
        from ..server.state import model_names

        served_name = model_names(provider)[0]  # the name `obembed serve -m SPEC` serves it under
    served = served_name
    names = registration_names(collection=collection, served_name=served, has_prompts=_has_prompts(provider),
                               name=name)
    _ensure_table(store)
    existing = {r.name: r for r in _rows(store)}
    engine = _engine_models(store)
    endpoints = _engine_endpoints(store)
    out: list[Registration] = []
    for sql_name, kind in names:
        model_name = f"{served}{KIND_SEP}{kind}"
        endpoint = f"{sql_name}_ep"
        old = existing.get(sql_name)
        if (old is not None and old.model_name == model_name and old.url == url and old.space == space
                and old.collection == collection and old.dimension == dim and engine.get(sql_name) == model_name
                and endpoints.get(endpoint) == (sql_name, url)):
            out.append(old)  # unchanged: keep it and its key
            continue
        key = "obk_" + secrets.token_urlsafe(32)
        reg = Registration(sql_name, endpoint, model_name, kind, collection, space, dim, url, _sha(key), key=key)
        _drop_engine(store, sql_name, endpoint, engine, endpoints)
        _call(store, "CREATE_AI_MODEL", sql_name, json.dumps({"type": "dense_embedding", "model_name": model_name}),
              what=f"register AI model {sql_name!r}")
        _call(store, "CREATE_AI_MODEL_ENDPOINT", endpoint,
              json.dumps({"ai_model_name": sql_name, "url": url, "access_key": key, "provider": "openai"}),
              what=f"register the endpoint of AI model {sql_name!r}")
        store.execute(f"REPLACE INTO {schema.quote(AI_TABLE)} (`name`, `endpoint`, `model_name`, `kind`, `collection`, "
                      "`space`, `dimension`, `url`, `key_sha256`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                      (sql_name, endpoint, model_name, kind, collection, space, dim, url, reg.key_sha256),
                      what=f"record AI model {sql_name!r}", fetch=False)
        out.append(reg)
    return out


def _drop_engine(store: Store, name: str, endpoint: str, engine: dict[str, str],
                 endpoints: dict[str, tuple[str, str]]) -> None:
    if endpoint in endpoints:
        _call(store, "DROP_AI_MODEL_ENDPOINT", endpoint, what=f"drop the endpoint of AI model {name!r}")
    if name in engine:
        _call(store, "DROP_AI_MODEL", name, what=f"drop AI model {name!r}")


def _stale_reason(store: Store, reg: Registration, engine: dict[str, str],
                  endpoints: dict[str, tuple[str, str]]) -> str | None:
    if engine.get(reg.name) != reg.model_name:
        return "the engine has no such AI model (dropped outside obembed)"
    if endpoints.get(reg.endpoint, ("", ""))[0] != reg.name:
        return "the engine has no endpoint for it"
    if reg.collection is not None:
        try:
            coll = store.collection(reg.collection)
        except StoreError:
            return f"collection {reg.collection!r} no longer exists"
        if coll.dimension != reg.dimension:
            return f"collection {reg.collection!r} is now VECTOR({coll.dimension}), registered {reg.dimension}-d"
        if coll.space and reg.space and coll.space != reg.space:
            return f"collection {reg.collection!r} now holds another vector space ({coll.spec})"
    return None


def list_models(store: Store) -> list[Registration]:
    """Every registration, with ``status`` "ok" or "stale: <why>"; engine models named ``obembed_*`` that
    obembed has no record of are listed as stale too."""
    regs = _rows(store)
    engine = _engine_models(store)
    endpoints = _engine_endpoints(store)
    for r in regs:
        why = _stale_reason(store, r, engine, endpoints)
        r.status = "ok" if why is None else f"stale: {why}"
    known = {r.name for r in regs}
    for n, model_name in sorted(engine.items()):
        if n.startswith("obembed_") and n not in known:
            ep = next((e for e, (m, _) in endpoints.items() if m == n), "")
            url = endpoints.get(ep, ("", ""))[1]
            regs.append(Registration(n, ep, model_name, "?", None, None, 0, url, "",
                                     status="stale: not recorded by obembed"))
    return regs


def drop_models(store: Store, names: Sequence[str] = (), *, stale: bool = False, all_: bool = False) -> list[str]:
    """Drop registrations by name, every stale one (``stale=True``) or all (``all_=True``); returns the names
    dropped. An unknown name is an error naming the registered ones."""
    regs = list_models(store)
    by_name = {r.name: r for r in regs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"no AI model registration named {', '.join(map(repr, unknown))}; registered: "
                          f"{', '.join(by_name) or 'none'} (obembed db models list)")
    chosen = [r for r in regs if r.name in names or all_ or (stale and r.status != "ok")]
    engine = _engine_models(store)
    endpoints = _engine_endpoints(store)
    for r in chosen:
        eps = [e for e, (m, _) in endpoints.items() if m == r.name] or ([r.endpoint] if r.endpoint else [])
        for ep in eps:
            if ep in endpoints:
                _call(store, "DROP_AI_MODEL_ENDPOINT", ep, what=f"drop the endpoint of AI model {r.name!r}")
        if r.name in engine:
            _call(store, "DROP_AI_MODEL", r.name, what=f"drop AI model {r.name!r}")
        store.execute(f"DELETE FROM {schema.quote(AI_TABLE)} WHERE `name` = %s", (r.name,), fetch=False,
                      what=f"drop AI model {r.name!r}")
    return [r.name for r in chosen]


def check_models(store: Store, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Call each registration through SQL (``SELECT AI_EMBED(name, 'obembed check')``) and report: ``ok`` with
    the vector's dimension, or the engine's error (server down, wrong key, ...)."""
    out: list[dict[str, Any]] = []
    for r in list_models(store):
        if names and r.name not in names:
            continue
        item: dict[str, Any] = {"name": r.name, "url": r.url, "status": r.status}
        try:
            rows, _ = store.execute("SELECT AI_EMBED(%s, 'obembed check')", (r.name,), what=f"AI_EMBED({r.name!r})")
            vec = json.loads(str(rows[0][0]))
            item["dimension"] = len(vec)
            item["ok"] = r.status == "ok" and (r.dimension in (0, len(vec)))
            if r.dimension and len(vec) != r.dimension:
                item["error"] = f"the server answered {len(vec)}-d vectors, registered {r.dimension}-d"
        except StoreError as exc:
            item["ok"] = False
            item["error"] = redact(str(exc))
        out.append(item)
    return out


def key_hashes(store: Store) -> set[str]:
    """SHA-256 hex digests of the registered access keys (what the server accepts)."""
    return {r.key_sha256 for r in _rows(store)}
