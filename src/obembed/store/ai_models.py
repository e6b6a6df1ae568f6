"""In-database models: obembed's served models registered as the engine's AI models, so that SQL's
``AI_EMBED('<name>', text)`` calls ``obembed serve``'s ``/v1/embeddings`` and makes the vectors Python makes, and
``AI_RERANK('<name>', query, documents)`` calls its ``/v1/rerank`` with the reranker Python uses.

A registration is an engine AI model (``DBMS_AI_SERVICE.CREATE_AI_MODEL``) plus its endpoint (URL of the server,
a dedicated random access key) plus a row in ``obembed_ai_models`` recording what it stands for: the collection,
its vector space and dimension, the served model and the kind (document, query or rerank), and the SHA-256 of the
key (the server accepts the keys whose hash is recorded; the key itself is only in the engine's endpoint).

Names (what SQL calls):

* with a collection ``C``: ``obembed_C`` (document embeddings, the vectors ``obembed ingest`` stores) and, when
  the model embeds queries differently (a query prompt such as e5's ``query: ``), ``obembed_C_query``;
* without a collection: ``obembed_<model>`` (the served model name, lower case, other characters as ``_``) and
  ``obembed_<model>_query`` likewise; a reranker: ``obembed_<reranker>``;
* a derived name longer than 56 characters keeps 47 and adds ``_`` and 8 hex digits of the full one;
* ``name=`` replaces the ``obembed_C`` / ``obembed_<model>`` part: lower-case letters, digits and ``_``, a letter
  first, at most 56 characters.

The request body carries ``model: "<served name>::document"`` (or ``::query``): the server picks the model and the
prompt from it; a reranker's requests carry the served reranker's name. Bad input (a malformed name or URL, a name
held by another registration or by an AI model obembed did not make) is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import numpy as np

from ..errors import ConfigError, DimensionMismatchError, StoreError, redact
from ..providers.naming import served_names
from . import schema

if TYPE_CHECKING:
    from .seekdb import Store

__all__ = ["AI_TABLE", "EMBEDDINGS_PATH", "KIND_SEP", "NAME_MAX", "RERANK_PATH", "Registration", "check_models",
           "check_name", "check_url", "drop_models", "key_hashes", "key_registered", "list_models", "register_model",
           "register_reranker", "registration_names", "server_urls", "split_model_name"]

AI_TABLE = "obembed_ai_models"
KIND_SEP = "::"
"""``<served name>::query`` in the request body: embed with the query prompt (``::document``: the document one)."""
EMBEDDINGS_PATH = "/v1/embeddings"
RERANK_PATH = "/v1/rerank"
NAME_MAX = 56
"""Longest SQL name obembed registers (``_query`` still fits the engine's 64)."""
URL_MAX = 1024

Kind = Literal["document", "query", "rerank"]
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0," + str(NAME_MAX - 1) + "}")
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_ENGINE = {"document": ("dense_embedding", "openai"), "query": ("dense_embedding", "openai"),
           "rerank": ("rerank", "cohere")}
"""Kind -> (the engine's model type, the provider format the engine speaks to the endpoint)."""


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


def split_model_name(model: str) -> tuple[str, Literal["document", "query"] | None]:
    """``"minilm::query"`` -> ("minilm", "query"); a name without a kind -> (name, None)."""
    base, sep, kind = model.rpartition(KIND_SEP)
    if sep and kind in ("query", "document") and base:
        return base, kind  # type: ignore[return-value]
    return model, None


def _show(value: object, limit: int = 120) -> str:
    """``value`` for an error message: secrets redacted, quoted, long ones cut."""
    text = repr(redact(value) if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "...(" + str(len(text)) + " characters)"


def check_name(name: object) -> str:
    """``name`` if it can be the SQL name of a registration, else a ConfigError naming it and the rule."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(f"AI model name {_show(name)}: use lower-case letters, digits and _ (a letter first, at "
                          f"most {NAME_MAX} characters), e.g. name='obembed_docs'")
    return name


def check_url(url: object, path: str = EMBEDDINGS_PATH) -> str:
    """``url`` (trailing ``/`` removed) if the engine can call it as an obembed server's ``path`` endpoint, else a
    ConfigError naming the URL (credentials redacted) and the fix."""
    example = f"e.g. http://127.0.0.1:8000{path}"
    what = f"registration URL {_show(url)}"
    if not isinstance(url, str):
        raise ConfigError(f"{what}: give the server's {path} URL as a string, {example}")
    if len(url) > URL_MAX:
        raise ConfigError(f"{what}: longer than {URL_MAX} characters; give the server's {path} URL, {example}")
    if not url.isascii() or not _URL_CHARS.fullmatch(url):
        raise ConfigError(f"{what}: spaces, control or non-ASCII characters are not allowed (percent-encode them, "
                          f"punycode a host name), {example}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{what}: not a valid URL ({redact(str(exc))}), {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what}: give an http:// or https:// URL with a host, {example}")
    if port == 0:
        raise ConfigError(f"{what}: port 0 cannot be called, {example}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{what}: no user or password in the URL (the engine shows URLs to anyone who reads "
                          f"DBA_OB_AI_MODEL_ENDPOINTS; each registration gets its own key), {example}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ConfigError(f"{what}: no query string or fragment, {example}")
    if not parts.path.rstrip("/").endswith(path):
        raise ConfigError(f"{what}: give the server's {path} URL, {example}")
    return url.rstrip("/")


def server_urls(url: str) -> tuple[str, str]:
    """(embeddings URL, rerank URL) of the server at ``url``: its base (``http://HOST:PORT``, maybe with a path
    prefix of a proxy) or its ``/v1/embeddings`` or ``/v1/rerank`` URL."""
    base = url.rstrip("/")
    for suffix in (EMBEDDINGS_PATH, RERANK_PATH):
        base = base.removesuffix(suffix)
    return base + EMBEDDINGS_PATH, base + RERANK_PATH


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s or "model"


def _derived_name(stem: str) -> str:
    """``obembed_<stem>``, cut to NAME_MAX with a hash of the whole stem (two long stems never share a name)."""
    base = "obembed_" + _slug(stem)
    if len(base) > NAME_MAX:
        base = base[:NAME_MAX - 9] + "_" + hashlib.sha256(stem.encode()).hexdigest()[:8]
    return base


def registration_names(*, collection: str | None, served_name: str, has_prompts: bool,
                       name: str | None = None) -> list[tuple[str, Kind]]:
    """The SQL names of an embedding registration and their prompt kinds (document first)."""
    if name is not None:
        base = check_name(name)
    else:
        base = _derived_name(collection if collection else served_name.rsplit("/", 1)[-1])
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
  PRIMARY KEY (`name`),
  KEY `idx_key_sha256` (`key_sha256`)
) DEFAULT CHARSET = utf8mb4"""


def _table_exists(store: Store) -> bool:
    return schema.table_exists(store, AI_TABLE, "the AI model table")


def _ensure_table(store: Store) -> None:
    schema.ensure_table(store, AI_TABLE, _ddl(), "the AI model table")


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


def _rows(store: Store, *, create: bool = True) -> list[Registration]:
    if create:
        _ensure_table(store)
    elif not _table_exists(store):
        return []
    rows, _ = store.execute(
        f"SELECT `name`, `endpoint`, `model_name`, `kind`, `collection`, `space`, `dimension`, `url`, `key_sha256` "
        f"FROM {schema.quote(AI_TABLE)} ORDER BY `name`", what="list AI model registrations")
    return [Registration(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5], int(r[6]), str(r[7]), str(r[8]))
            for r in rows]


def _apply(store: Store, wanted: list[Registration]) -> list[Registration]:
    """Create or renew the engine models, endpoints and records of ``wanted`` (keys not set yet); an unchanged
    registration is kept with its key. Every name is checked against the others first: nothing is written when one
    is held by another registration or by an AI model obembed did not make."""
    existing = {r.name: r for r in _rows(store)}
    engine = _engine_models(store)
    endpoints = _engine_endpoints(store)
    for w in wanted:
        old = existing.get(w.name)
        if old is not None and (old.collection != w.collection or (old.kind == "rerank") != (w.kind == "rerank")):
            held = f"collection {old.collection!r}" if old.collection else f"model {old.model_name!r} ({old.kind})"
            raise ConfigError(f"AI model name {w.name!r} is registered for {held}; pass another name (--name / "
                              f"name=) or drop that registration first (obembed db models drop {w.name})")
        if old is None and w.name in engine and not w.name.startswith("obembed_"):
            raise ConfigError(f"the database already has an AI model named {w.name!r} that obembed did not "
                              "register; pass another name (--name / name=) or drop it "
                              f"(CALL DBMS_AI_SERVICE.DROP_AI_MODEL('{w.name}'))")
    out: list[Registration] = []
    for w in wanted:
        old = existing.get(w.name)
        if (old is not None and (old.model_name, old.url, old.space, old.collection, old.dimension, old.kind)
                == (w.model_name, w.url, w.space, w.collection, w.dimension, w.kind)
                and engine.get(w.name) == w.model_name and endpoints.get(w.endpoint) == (w.name, w.url)):
            out.append(old)  # unchanged: keep it and its key
            continue
        key = "obk_" + secrets.token_urlsafe(32)
        w.key, w.key_sha256 = key, _sha(key)
        model_type, provider = _ENGINE[w.kind]
        _drop_engine(store, w.name, w.endpoint, engine, endpoints)
        try:
            _call(store, "CREATE_AI_MODEL", w.name, json.dumps({"type": model_type, "model_name": w.model_name}),
                  what=f"register AI model {w.name!r}")
            _call(store, "CREATE_AI_MODEL_ENDPOINT", w.endpoint,
                  json.dumps({"ai_model_name": w.name, "url": w.url, "access_key": key, "provider": provider}),
                  what=f"register the endpoint of AI model {w.name!r}")
            store.execute(f"REPLACE INTO {schema.quote(AI_TABLE)} (`name`, `endpoint`, `model_name`, `kind`, "
                          "`collection`, `space`, `dimension`, `url`, `key_sha256`) VALUES (%s, %s, %s, %s, %s, %s, "
                          "%s, %s, %s)", (w.name, w.endpoint, w.model_name, w.kind, w.collection, w.space,
                                          w.dimension, w.url, w.key_sha256),
                          what=f"record AI model {w.name!r}", fetch=False)
        except StoreError:
            _undo(store, w.name, w.endpoint)  # not half registered: no model without endpoint or record
            raise
        out.append(w)
    return out


def _undo(store: Store, name: str, endpoint: str) -> None:
    try:
        _drop_engine(store, name, endpoint, _engine_models(store), _engine_endpoints(store))
        store.execute(f"DELETE FROM {schema.quote(AI_TABLE)} WHERE `name` = %s", (name,), fetch=False,
                      what=f"drop AI model {name!r}")
    except StoreError:
        pass  # the first error is the one to report; `obembed db models list` shows what is left


def register_model(store: Store, url: str, provider: Any, *, collection: str | None = None,
                   served_name: str | None = None, name: str | None = None) -> list[Registration]:
    """Register ``provider`` (served at ``url``, an ``.../v1/embeddings`` URL, under ``served_name``) as the
    engine's AI model(s) for ``collection``; returns one :class:`Registration` per SQL name (document, and query
    when the model has a query prompt). Idempotent: an unchanged registration is kept (its ``key`` is None);
    a changed one (URL, model, space) gets a new key. A collection of another dimension or vector space is refused,
    so are a malformed URL or name and a name held by another registration (nothing is written then).
    """
    url = check_url(url, EMBEDDINGS_PATH)
    if name is not None:
        check_name(name)
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
    served = served_name or served_names(provider)[0]  # the name `obembed serve -m SPEC` serves it under
    names = registration_names(collection=collection, served_name=served, has_prompts=_has_prompts(provider),
                               name=name)
    return _apply(store, [Registration(n, f"{n}_ep", f"{served}{KIND_SEP}{kind}", kind, collection, space, dim, url,
                                       "") for n, kind in names])


def register_reranker(store: Store, url: str, reranker: Any, *, served_name: str | None = None,
                      name: str | None = None) -> list[Registration]:
    """Register a reranker served at ``url`` (an ``.../v1/rerank`` URL, ``obembed serve --rerank-model SPEC``)
    as the engine's rerank model, so SQL's ``AI_RERANK('<name>', query, documents)`` scores with it; returns the one
    :class:`Registration` (name ``obembed_<reranker>`` or ``name``). Idempotent like :func:`register_model`."""
    url = check_url(url, RERANK_PATH)
    served = served_name or served_names(reranker)[0]  # the name the server's /v1/rerank answers to
    sql_name = check_name(name) if name is not None else _derived_name(served.rsplit("/", 1)[-1])
    spec = str(getattr(reranker, "spec", "") or served)
    return _apply(store, [Registration(sql_name, f"{sql_name}_ep", served, "rerank", None, spec, 0, url, "")])


def _drop_engine(store: Store, name: str, endpoint: str, engine: dict[str, str],
                 endpoints: dict[str, tuple[str, str]]) -> None:
    for ep in {endpoint, *(e for e, (m, _) in endpoints.items() if m == name)}:
        if ep in endpoints:
            _call(store, "DROP_AI_MODEL_ENDPOINT", ep, what=f"drop the endpoint of AI model {name!r}")
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
    regs = _rows(store, create=False)
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
    dropped. An unknown name is an error naming the registered ones. A running server refuses a dropped
    registration's key from then on (it checks each key against the records, see
    ``ServerState.registered_key_ok``)."""
    regs = list_models(store)
    by_name = {r.name: r for r in regs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"no AI model registration named {', '.join(map(_show, unknown))}; registered: "
                          f"{', '.join(by_name) or 'none'} (obembed db models list)")
    chosen = [r for r in regs if r.name in names or all_ or (stale and r.status != "ok")]
    engine = _engine_models(store)
    endpoints = _engine_endpoints(store)
    for r in chosen:
        store.execute(f"DELETE FROM {schema.quote(AI_TABLE)} WHERE `name` = %s", (r.name,), fetch=False,
                      what=f"drop AI model {r.name!r}")  # first: its key is refused from now on
        _drop_engine(store, r.name, r.endpoint, engine, endpoints)
    return [r.name for r in chosen]


def check_models(store: Store, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Call each registration through SQL (``SELECT AI_EMBED(name, 'obembed check')``, a reranker with
    ``AI_RERANK``) and report: ``ok`` with the vector's dimension (a reranker: the documents scored), or the engine's
    error (server down, wrong key, ...)."""
    out: list[dict[str, Any]] = []
    for r in list_models(store):
        if names and r.name not in names:
            continue
        item: dict[str, Any] = {"name": r.name, "kind": r.kind, "url": r.url, "status": r.status}
        try:
            if r.kind == "rerank":
                rows, _ = store.execute("SELECT AI_RERANK(%s, 'obembed check', %s)",
                                        (r.name, json.dumps(["obembed check", "another document"])),
                                        what=f"AI_RERANK({r.name!r})")
                scored = json.loads(str(rows[0][0]))
                item["scored"] = len(scored)
                item["ok"] = r.status == "ok" and len(scored) == 2 and all("relevance_score" in s for s in scored)
                if not item["ok"] and r.status == "ok":
                    item["error"] = f"the server answered {str(rows[0][0])[:200]!r}, not two scored documents"
                out.append(item)
                continue
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
    return {r.key_sha256 for r in _rows(store, create=False)}


def key_registered(store: Store, digest: str) -> bool:
    """Whether ``digest`` (SHA-256 hex of an access key) is the key of a registration recorded now: one indexed
    read, so a server can check every request (a dropped registration's key is refused at once)."""
    try:
        rows, _ = store.execute(f"SELECT 1 FROM {schema.quote(AI_TABLE)} WHERE `key_sha256` = %s LIMIT 1", (digest,),
                                what="check an access key")
    except StoreError:
        if not _table_exists(store):
            return False  # nothing was ever registered here
        raise
    return bool(rows)
