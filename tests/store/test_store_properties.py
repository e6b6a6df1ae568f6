"""Property tests of the store over whole classes of input (issue 20): ids and sources (any Unicode, blanks at the
ends, case and normalisation variants, lengths around the limits), contents (surrogates, NULs, control
characters, large), vectors (zero, subnormal, huge, NaN/inf, wrong dimension), filters (any value, any nesting).

Invariants: a call either raises an obembed error naming the item, or stores the rows so that ``get`` returns
exactly what was upserted and ``count`` equals the number of distinct ids; search raises only obembed errors; a
failed call leaves every row stored before it unchanged. Example counts come from the hypothesis profile
(OBEMBED_HYPOTHESIS_PROFILE=thorough for many more; see docs/reliability.md).
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from obembed.errors import InvalidFilterError, ObembedError
from obembed.store import schema

pytestmark = pytest.mark.seekdb

D = 4
SENTINEL = {"id": "sentinel", "vector": [1.0, 0.0, 0.0, 0.0], "content": "stays", "source": "s.txt",
            "metadata": {"k": 1}}


@pytest.fixture(scope="module")
def pcoll(store):
    import uuid

    name = f"props_{uuid.uuid4().hex[:8]}"
    c = store.create_collection(name, D, columns={"year": "int", "lang": "varchar(16)"})
    c.upsert([SENTINEL])
    yield c
    store.drop_collection(name, missing_ok=True)


def attempt(fn, *args, **kwargs):
    """``(result, None)`` or ``(None, the obembed error)``; any other exception propagates (the test fails)."""
    try:
        return fn(*args, **kwargs), None
    except ObembedError as exc:
        note(str(exc))
        return None, exc


def same_json(a, b) -> bool:
    """Equal, except that a float may come back rounded to 15 significant digits (the engine's JSON prints
    doubles that way: 9.912089474007059e+176 reads back as 9.91208947400706e+176); docs/reliability.md."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-14, abs_tol=0.0) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _reset(c) -> None:
    c.delete(where="id <> 'sentinel'")


def _sentinel_unchanged(c) -> None:
    got = c.get(["sentinel"], include_vectors=True)
    assert len(got) == 1
    assert (got[0]["content"], got[0]["source"], got[0]["metadata"]) == ("stays", "s.txt", {"k": 1})
    assert np.allclose(got[0]["vector"], SENTINEL["vector"])


def _variants(s: str) -> list[str]:
    return [s, s + " ", " " + s, s.upper(), s.lower(), unicodedata.normalize("NFD", s),
            unicodedata.normalize("NFC", s), s + "\t", s + "\u00a0"]


texts = st.text(st.characters(codec=None), max_size=40)  # any code point, lone surrogates included
ids = st.one_of(texts, texts.flatmap(lambda s: st.sampled_from(_variants(s) or [s])),
                st.integers(505, 520).map(lambda n: "i" * n), st.just(""))


@given(st.lists(ids, min_size=1, max_size=6))
def test_ids_are_exact_or_refused(pcoll, batch):
    _reset(pcoll)
    rows = [{"id": i, "vector": [0.0, 1.0, float(k + 1), 0.0], "content": i} for k, i in enumerate(batch)]
    n, exc = attempt(pcoll.upsert, rows)
    if exc is not None:
        assert "row " in str(exc)
        assert pcoll.count() == 1
    else:
        assert n == len(batch)
        assert pcoll.count() == len(set(batch)) + 1  # duplicates in a batch are refused, so here all distinct
        got = pcoll.get(batch)
        assert [(r["id"], r["content"]) for r in got] == [(i, i) for i in batch]
    _sentinel_unchanged(pcoll)


sources = st.one_of(texts, texts.map(lambda s: s + " "), st.integers(2040, 4100).map(lambda n: "/" + "p" * (n - 1)))
contents = st.one_of(st.none(), texts, st.text(st.characters(max_codepoint=0x1F), max_size=30),
                     st.integers(10_000, 300_000).map(lambda n: "ab\x00" * (n // 3)))
metadata = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats() | texts,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                        max_leaves=8)


@given(sources, contents, st.dictionaries(texts, metadata, max_size=3), st.integers(-2**31, 2**31 - 1))
def test_rows_read_back_exactly_or_are_refused(pcoll, source, content, meta, year):
    _reset(pcoll)
    row = {"id": "r", "vector": [0.0, 1.0, 0.0, 0.0], "source": source, "content": content, "metadata": meta,
           "year": year}
    _, exc = attempt(pcoll.upsert, [row])
    if exc is not None:
        assert "row 0 (id 'r')" in str(exc)
        assert pcoll.count() == 1
    else:
        got = pcoll.get(["r"])[0]
        assert (got["source"], got["content"], got["year"]) == (source, content, year)
        assert same_json(got["metadata"], meta)
        assert list(pcoll.hashes(source)) == ["r"]
    _sentinel_unchanged(pcoll)


floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, -0.0, 1e-45, 1e-38,
                                                                                     1e-30, 1e15, 1e19, 3e38])


@given(st.lists(st.lists(floats, min_size=3, max_size=5), min_size=1, max_size=4))
def test_vectors_stored_are_searchable_or_refused(pcoll, vectors):
    _reset(pcoll)
    rows = [{"id": f"v{k}", "vector": v} for k, v in enumerate(vectors)]
    _, exc = attempt(pcoll.upsert, rows)
    if exc is not None:
        assert "row " in str(exc)
        assert pcoll.count() == 1
    else:
        assert pcoll.count() == len(vectors) + 1
        for v in vectors:  # every stored vector also works as a query, and ranks every row
            hits = pcoll.search(v, k=10, exact=True)
            assert len(hits) == len(vectors) + 1
            assert all(np.isfinite(h.distance) for h in hits)
    _sentinel_unchanged(pcoll)
    for q in vectors:  # index or exact, refused or answered: only obembed errors
        hits, exc = attempt(pcoll.search, q, k=3)
        assert exc is not None or all(np.isfinite(h.distance) for h in hits)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts | st.binary(max_size=4) | st.just(set())
keys = st.sampled_from(["year", "lang", "id", "source", "metadata.k", "metadata.a.b", "nope", "metadata.", 3])
ops = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$like", "$exists", "$bad"])
leaf = st.one_of(st.dictionaries(keys, scalars, min_size=1, max_size=2),
                 st.dictionaries(keys, st.dictionaries(ops, scalars | st.lists(scalars, max_size=3), min_size=1,
                                                       max_size=2), min_size=1, max_size=2))
filters = st.recursive(leaf, lambda inner: st.one_of(
    st.dictionaries(st.sampled_from(["$and", "$or"]), st.lists(inner, max_size=3), min_size=1, max_size=1),
    st.dictionaries(st.just("$not"), inner, min_size=1, max_size=1)), max_leaves=6)
expressions = st.one_of(texts, st.builds(lambda k, op, v: f"{k} {op} {v}",
                                         st.sampled_from(["year", "lang", "metadata.k", "x"]),
                                         st.sampled_from(["=", "<", ">=", "!=", "LIKE", "IN"]),
                                         st.sampled_from(["1e400", "-1e400", "'a'", "(1, 2)", "NULL", "1.5",
                                                          "99999999999999999999999", "'it''s'"])))


@given(st.one_of(filters, expressions))
def test_filters_give_results_or_filter_errors(pcoll, where):
    hits, exc = attempt(pcoll.search, [1.0, 0.0, 0.0, 0.0], k=5, where=where, exact=True)
    n, exc2 = attempt(pcoll.count, where)
    # never an engine error for a filter the compiler accepted: only InvalidFilterError, from both calls alike
    assert exc is None or isinstance(exc, InvalidFilterError), exc
    assert type(exc) is type(exc2)
    if exc is None:
        assert len(hits) == min(5, n)


def test_bounds_are_where_the_docs_say(pcoll):
    # the edges of the generated classes, asserted directly so the normal suite always covers them
    _reset(pcoll)
    pcoll.upsert([{"id": "i" * schema.ID_MAX, "vector": [0, 1, 0, 0], "source": "/" + "p" * (schema.SOURCE_MAX - 1)}])
    assert pcoll.count() == 2
    with pytest.raises(ObembedError, match="at most 512"):
        pcoll.upsert([{"id": "i" * (schema.ID_MAX + 1), "vector": [0, 1, 0, 0]}])
    _reset(pcoll)
