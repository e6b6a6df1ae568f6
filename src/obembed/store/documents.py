"""A collection seen as documents: an id, a text, a vector and a flat metadata dict.

This is the policy the framework adapters (``obembed.integrations.langchain`` / ``.llama_index``) share, kept here
so that both (and anything else that thinks in documents) behave the same:

* **Metadata round-trips.** A metadata key that is a declared column goes into that typed column; the
  ``source_key`` (LangChain's ``"source"``) goes into the built-in ``source`` column when it is a string; every
  other key into the JSON ``metadata`` column. Reading merges them back. Values the JSON column cannot hold exactly
  (dates, sets, objects) are refused, naming the document and the key, unless a typed column is declared for them.
* **Field filters.** Mongo-style dicts over metadata fields (``{"year": {"$gte": 2020}, "$or": [...]}``) become
  obembed filters with bound values: a declared column by name, ``source_key`` the ``source`` column, any other
  field ``metadata.<field>``. An operator outside :data:`FIELD_OPERATORS`, or a field that is neither a declared
  column nor present in any stored document's metadata (a typo would otherwise match nothing, silently), is an
  :class:`~obembed.errors.InvalidFilterError` naming it. An expression string passes through unchanged.
* **Searches** a framework expects beside plain kNN: hybrid (RRF), full-text only, maximal marginal relevance.
* **Ids** are checked before anything is embedded: strings, unique within one call.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidFilterError, InvalidInputError
from . import schema
from .base import Hit
from .filters import Where, compile_where

__all__ = ["FIELD_OPERATORS", "DocumentCollection", "check_ids", "maximal_marginal_relevance"]

FIELD_OPERATORS: frozenset[str] = frozenset({
    "$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$like", "$ilike", "$between", "$exists",
    "$contains", "$any", "$all", "$is_empty",
})
"""Operators a field filter may use (``{"field": {"$op": value}}``)."""
LOGICAL_OPERATORS: frozenset[str] = frozenset({"$and", "$or", "$not"})
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63})*$")
_MAX_SOURCE = 2048
_MAX_DEPTH = 32


def check_ids(ids: Sequence[Any]) -> list[str]:
    """``ids`` as a list of strings; an id that is not a non-empty string (≤ 512 characters) or that appears
    twice is an :class:`InvalidInputError` naming it (checked before any embedding or write)."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, rid in enumerate(ids):
        if not isinstance(rid, str) or not rid or len(rid) > 512:
            raise InvalidInputError(f"id {i} is {rid!r:.80}; ids must be non-empty strings of at most 512 characters",
                                    index=i)
        if rid in seen:
            raise InvalidInputError(f"id {rid!r} appears twice in one call (items {seen[rid]} and {i}); ids must be "
                                    "unique: merge the two documents or give them distinct ids", index=i)
        seen[rid] = i
        out.append(rid)
    return out


def maximal_marginal_relevance(query: Any, candidates: Any, k: int, lambda_mult: float = 0.5) -> list[int]:
    """Indexes of ``k`` candidates picked by maximal marginal relevance (cosine similarity):
    each pick maximises ``lambda_mult * sim(query, c) - (1 - lambda_mult) * max sim(c, picked)``.
    ``lambda_mult`` 1 is plain relevance order, 0 maximal diversity."""
    if not 0.0 <= float(lambda_mult) <= 1.0:
        raise InvalidInputError(f"lambda_mult={lambda_mult!r} must be between 0 and 1")
    cand = np.asarray(candidates, dtype=np.float32)
    if cand.ndim != 2 or cand.shape[0] == 0 or k <= 0:
        return []
    q = np.asarray(query, dtype=np.float32).reshape(-1)

    def unit(x: np.ndarray) -> np.ndarray:
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        return np.asarray(x / np.where(n == 0, 1.0, n), dtype=np.float32)

    cand = unit(cand)
    rel = cand @ unit(q)
    picked = [int(np.argmax(rel))]
    max_sim = cand @ cand[picked[0]]
    while len(picked) < min(k, cand.shape[0]):
        score = lambda_mult * rel - (1.0 - lambda_mult) * max_sim
        score[picked] = -np.inf
        nxt = int(np.argmax(score))
        picked.append(nxt)
        max_sim = np.maximum(max_sim, cand @ cand[nxt])
    return picked


class DocumentCollection:
    """Documents (id, text, vector, flat metadata) over one obembed :class:`~obembed.store.Collection`."""

    def __init__(self, collection: Any, *, source_key: str | None = "source") -> None:
        self.collection = collection
        self.source_key = source_key
        self._fields: set[str] | None = None
        self._lock = threading.Lock()

    @property
    def columns(self) -> dict[str, str]:
        """Declared (typed) columns: ``{name: sql type}``."""
        return dict(self.collection.columns)

    # ------------------------------------------------------------------------------------------- writing
    def rows(self, ids: Sequence[str], texts: Sequence[str], vectors: Any,
             metadatas: Sequence[Mapping[str, Any] | None] | None = None,
             sources: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
        """The collection rows for these documents (checked; nothing is written)."""
        n = len(texts)
        ids = check_ids(ids)
        if len(ids) != n:
            raise InvalidInputError(f"got {len(ids)} ids for {n} texts; pass one id per text")
        if metadatas is not None and len(metadatas) != n:
            raise InvalidInputError(f"got {len(metadatas)} metadata dicts for {n} texts; pass one per text")
        if len(vectors) != n:
            raise InvalidInputError(f"the embedding model returned {len(vectors)} vectors for {n} texts")
        out = []
        for i in range(n):
            text = texts[i]
            if not isinstance(text, str):
                raise InvalidInputError(f"document {i} (id {ids[i]!r}): the text is a {type(text).__name__}, "
                                        "not a str", index=i)
            row: dict[str, Any] = {"id": ids[i], "content": text, "vector": vectors[i]}
            md = metadatas[i] if metadatas is not None else None
            json_md = self._split_metadata(i, ids[i], md, row)
            if sources is not None:
                row["source"] = sources[i]
            row["metadata"] = json_md or None
            out.append(row)
        return out

    def _split_metadata(self, i: int, rid: str, md: Mapping[str, Any] | None, row: dict[str, Any]) -> dict[str, Any]:
        if md is None:
            return {}
        if not isinstance(md, Mapping):
            raise InvalidInputError(f"document {i} (id {rid!r}): metadata is a {type(md).__name__}, not a dict",
                                    index=i)
        cols = self.collection.columns
        json_md: dict[str, Any] = {}
        for key, v in md.items():
            if not isinstance(key, str) or not key:
                raise InvalidInputError(f"document {i} (id {rid!r}): metadata key {key!r} is not a non-empty str",
                                        index=i)
            if key in cols:
                row[key] = v
                if v is None:  # keep "present but None" apart from "absent"
                    json_md[key] = None
            elif key == self.source_key and isinstance(v, str) and len(v) <= _MAX_SOURCE:
                row["source"] = v
            else:
                try:
                    json.dumps(v, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    raise InvalidInputError(
                        f"document {i} (id {rid!r}): metadata[{key!r}] is a {type(v).__name__} that JSON cannot "
                        f"hold exactly ({exc}); pass str, number, bool, None, list or dict, or declare a typed "
                        f"column for it (columns={{{key!r}: 'datetime'}} when the collection is created)",
                        index=i) from None
                json_md[key] = v
        return json_md

    def upsert(self, ids: Sequence[str], texts: Sequence[str], vectors: Any,
               metadatas: Sequence[Mapping[str, Any] | None] | None = None,
               sources: Sequence[str | None] | None = None) -> list[str]:
        """Write (insert or replace by id) documents; every row is checked before anything is written."""
        rows = self.rows(ids, texts, vectors, metadatas, sources)
        if not rows:
            return []
        self.collection.upsert(rows)
        with self._lock:
            if self._fields is not None:
                for r in rows:
                    self._fields.update(r["metadata"] or ())
        return [r["id"] for r in rows]

    # ------------------------------------------------------------------------------------------- reading
    def metadata_of(self, row: Hit | Mapping[str, Any]) -> dict[str, Any]:
        """The document's flat metadata from a search hit or a :meth:`Collection.get` row."""
        values: Mapping[str, Any]
        if isinstance(row, Hit):
            md, values, source = dict(row.metadata or {}), row.columns, row.source
        else:
            md, values, source = dict(row.get("metadata") or {}), row, row.get("source")
        for c in self.collection.columns:
            v = values.get(c)
            if v is not None:
                md[c] = v
        if self.source_key and source is not None and self.source_key not in md:
            md[self.source_key] = source
        return md

    def get(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Rows by id, in the order asked; missing ids are left out."""
        return list(self.collection.get(list(ids)))

    def iter_rows(self, filter: Any = None, batch_size: int = 1000, **restrict: Any) -> Any:
        """All rows (matching a field filter, ``ids=``/``sources=``), ``batch_size`` at a time, without vectors."""
        return self.collection.iter_rows(batch_size, include_vectors=False, where=self.where(filter, **restrict))

    # ------------------------------------------------------------------------------------------- filters
    def fields(self, refresh: bool = False) -> set[str]:
        """Top-level keys present in the JSON metadata of at least one stored document (cached)."""
        with self._lock:
            if self._fields is None or refresh:
                rows, _ = self.collection.store.execute(
                    f"SELECT DISTINCT JSON_KEYS(`metadata`) FROM {schema.quote(self.collection.name)} "
                    "WHERE `metadata` IS NOT NULL", what=f"list metadata fields of {self.collection.name!r}")
                found: set[str] = set()
                for (keys,) in rows:
                    if keys:
                        found.update(json.loads(keys))
                self._fields = found
            return set(self._fields)

    def _target(self, key: str) -> str:
        if key in self.collection.columns:
            return key
        if self.source_key is not None and key == self.source_key:
            return "source"
        if not _FIELD.match(key):
            raise InvalidFilterError(
                f"filter field {key!r} is not a metadata field name (letters, digits and '_', '.' for nested "
                "fields)")
        top = key.split(".")[0]
        if top not in self.fields() and top not in self.fields(refresh=True):
            declared = ", ".join(sorted(self.collection.columns)) or "none"
            seen = sorted(self.fields())
            shown = ", ".join(seen[:30]) + (" ..." if len(seen) > 30 else "") if seen else "none yet"
            raise InvalidFilterError(
                f"filter field {key!r} is neither a declared column (declared: {declared}) nor in the metadata of "
                f"any stored document (fields seen: {shown}); check the spelling, or declare it as a column when "
                "the collection is created")
        return f"metadata.{key}"

    def where(self, filter: Any = None, *, ids: Sequence[str] | None = None,
              sources: Sequence[str] | None = None) -> Where:
        """A field filter (Mongo-style dict) as an obembed ``where``, optionally restricted to some ids and/or
        sources; an expression string passes unchanged."""
        parts: list[Any] = []
        if filter is not None and not isinstance(filter, str | Mapping):
            raise InvalidFilterError(f"a filter is a dict of metadata fields, not a {type(filter).__name__}")
        if filter:
            parts.append(filter if isinstance(filter, str) else self._translate(filter, 0))
        if ids is not None:
            parts.append({"id": {"$in": list(ids)}})
        if sources is not None:
            parts.append({"source": {"$in": list(sources)}})
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]  # type: ignore[no-any-return]
        if any(isinstance(p, str) for p in parts):
            raise InvalidFilterError("an expression-string filter cannot be combined with ids or sources; use a dict")
        return {"$and": parts}

    def _translate(self, flt: Mapping[str, Any], depth: int) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise InvalidFilterError(f"filter nested more than {_MAX_DEPTH} levels deep; simplify it")
        out: dict[str, Any] = {}
        ands: list[dict[str, Any]] = []
        for key, value in flt.items():
            if not isinstance(key, str):
                raise InvalidFilterError(f"filter key {key!r} is not a field name")
            if key.startswith("$"):
                if key not in LOGICAL_OPERATORS:
                    raise InvalidFilterError(
                        f"unknown filter operator {key!r} at the top of a condition; use $and, $or, $not, or a "
                        f"field name with one of {', '.join(sorted(FIELD_OPERATORS))}")
                if key == "$not":
                    if not isinstance(value, Mapping):
                        raise InvalidFilterError("$not needs a filter dict")
                    ands.append({"$not": self._translate(value, depth + 1)})
                else:
                    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
                        raise InvalidFilterError(f"{key} needs a list of filter dicts")
                    if value:
                        ands.append({key: [self._translate(v, depth + 1) for v in value]})
                continue
            target = self._target(key)
            if isinstance(value, Mapping):
                if not value:
                    raise InvalidFilterError(f"filter on {key!r}: empty operator dict")
                for op in value:
                    if op not in FIELD_OPERATORS:
                        raise InvalidFilterError(
                            f"filter on {key!r}: unknown operator {op!r}; use one of "
                            f"{', '.join(sorted(FIELD_OPERATORS))}")
                cond: Any = dict(value)
            else:
                cond = value
            if target in out:  # e.g. "source" given twice through two spellings
                ands.append({target: cond})
            else:
                out[target] = cond
        if ands:
            out["$and"] = ands
        return out

    # ------------------------------------------------------------------------------------------- searching
    def search(self, vector: Any, k: int, filter: Any = None, *, exact: bool | None = None,
               **restrict: Any) -> list[Hit]:
        """The ``k`` nearest documents to ``vector``; ``exact`` as in :meth:`Collection.search` (None: the
        collection's policy); ``restrict``: ``ids=``, ``sources=``."""
        hits: list[Hit] = self.collection.search(vector, k, where=self.where(filter, **restrict), exact=exact)
        return hits

    def hybrid_search(self, text: str, vector: Any, k: int, filter: Any = None,
                      weights: tuple[float, float] = (1.0, 1.0), **restrict: Any) -> list[Hit]:
        """Vector and full-text search fused by RRF (the collection needs a FULLTEXT index)."""
        hits: list[Hit] = self.collection.hybrid_search(text, k, where=self.where(filter, **restrict), vector=vector,
                                                        weights=weights)
        return hits

    def text_search(self, text: str, k: int, filter: Any = None, **restrict: Any) -> list[Hit]:
        """Full-text only (``MATCH ... AGAINST``), best first; ``score`` is the engine's relevance."""
        coll = self.collection
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("a full-text search needs a non-empty text")
        if not coll._fulltext_ready():
            raise coll._no_fulltext("text search")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k={k!r} must be a positive int")
        wsql, wparams = compile_where(self.where(filter, **restrict), coll._filter_columns)
        sql = (f"SELECT {coll._select_cols()}, MATCH(`content`) AGAINST(%s) AS `_ft` FROM "
               f"{schema.quote(coll.name)} WHERE MATCH(`content`) AGAINST(%s)" + (f" AND ({wsql})" if wsql else "")
               + f" ORDER BY `_ft` DESC LIMIT {int(k)}")
        rows, _ = coll.store.execute(sql, [text, text, *wparams], what=f"full-text search {coll.name!r}")
        hits: list[Hit] = coll._hits(rows)
        for h, r in zip(hits, rows, strict=True):
            h.distance = None
            h.score = float(r[-1])
        return hits

    def mmr_search(self, vector: Any, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                   filter: Any = None, **restrict: Any) -> list[Hit]:
        """``fetch_k`` nearest documents re-ranked by :func:`maximal_marginal_relevance`, ``k`` kept."""
        hits = self.search(vector, max(int(fetch_k), int(k)), filter, **restrict)
        if not hits:
            return []
        rows = {r["id"]: r["vector"] for r in self.collection.get([h.id for h in hits], include_vectors=True)}
        hits = [h for h in hits if h.id in rows]  # deleted meanwhile
        order = maximal_marginal_relevance(vector, np.stack([rows[h.id] for h in hits]) if hits else [], k,
                                           lambda_mult)
        return [hits[i] for i in order]

    # ------------------------------------------------------------------------------------------- deleting
    def delete(self, ids: Sequence[str] | None = None, filter: Any = None,
               sources: Sequence[str] | None = None) -> int:
        """Delete by ids and/or field filter and/or sources; returns how many rows went. Unknown ids are no error."""
        where = self.where(filter, sources=sources)
        if ids is None and where is None:
            raise InvalidInputError("delete needs ids or a filter; use clear() to delete every document")
        if ids is not None:
            ids = list(ids)
            if not ids:
                return 0
        n: int = self.collection.delete(ids, where=where)
        return n

    def clear(self) -> int:
        """Delete every document (the collection, its model and its indexes stay)."""
        _, n = self.collection.store.execute(f"DELETE FROM {schema.quote(self.collection.name)}",
                                             what=f"clear {self.collection.name!r}", fetch=False)
        with self._lock:
            self._fields = None
        return int(n)
