"""Row values on their way in and out: vectors checked and packed as float32 bytes, scalar column values
checked, vectors parsed back from the engine's text, distances turned into scores."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from collections.abc import Mapping
from pathlib import PurePath

import numpy as np
import numpy.typing as npt

from ..errors import DimensionMismatchError, InvalidInputError
from ..types import check_unicode

__all__ = ["BASE_SELECT", "MAX_ABS_COMPONENT", "MIN_COSINE_NORM", "as_vector", "check_text", "metadata_json",
           "parse_sparse", "parse_vector", "scalar_value", "score", "sparse_literal",
           "vector_bytes", "vector_problems"]

MAX_ABS_COMPONENT = 1e15
"""Largest |component| a stored or query vector may have: beyond ~1e19 the engine's distance arithmetic
overflows (error 1264 on every cosine search of the table, like inf); 1e15 keeps every distance finite."""
MIN_COSINE_NORM = 1e-10
"""Smallest norm of a vector in a cosine collection: the engine's cosine distance of a zero or near-zero vector
is NULL (seen at norm 1e-30), which has no rank; measured fine down to 1e-18, refused below 1e-10."""

BASE_SELECT = ["id", "content", "source", "chunk", "content_hash", "metadata"]
"""The fixed columns every SELECT of a collection starts with (declared columns follow)."""


def vector_problems(arr: npt.NDArray[np.float32], distance: str | None) -> list[str | None]:
    """For each row of a 2-d float32 array: None if the engine can store and rank it, else why not (NaN/inf,
    zero, near-zero under cosine, components too large)."""
    out: list[str | None] = []
    finite: npt.NDArray[np.bool_] = np.asarray(np.isfinite(arr).all(axis=1))
    with np.errstate(all="ignore"):
        a64 = arr.astype(np.float64)
        norms = np.sqrt((a64 * a64).sum(axis=1))
        big = np.abs(a64).max(axis=1, initial=0.0)
    ok_list = [bool(x) for x in finite]
    for ok, n, b in zip(ok_list, norms.tolist(), big.tolist(), strict=True):
        if not ok:
            out.append("the vector contains NaN or inf (the engine would store it and it would poison searches)")
        elif n == 0.0:
            out.append("the vector is all zeros (it has no direction: its cosine distance is NULL and it cannot "
                       "be ranked)")
        elif distance == "cosine" and n < MIN_COSINE_NORM:
            out.append(f"the vector's norm {n:.3g} is below {MIN_COSINE_NORM:g} (the engine's cosine distance "
                       "of a near-zero vector is NULL and it cannot be ranked)")
        elif b > MAX_ABS_COMPONENT:
            out.append(f"a component is {b:.3g}, beyond ±{MAX_ABS_COMPONENT:g} (the engine's distances would "
                       "overflow)")
        else:
            out.append(None)
    return out


check_text = check_unicode  # the name store.collection imports: the one rule of obembed.types


_JSON_FALLBACK = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, uuid.UUID, PurePath)


def _json_default(v: object) -> object:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, _JSON_FALLBACK):
        return str(v)
    raise TypeError(f"a {type(v).__name__} ({v!r:.60}) has no JSON form; use a list, dict, str, number, bool or "
                    "None (a set: sorted(list(...)))")


def metadata_json(meta: object, what: str, index: int | None = None) -> str:
    """The ``metadata`` dict as JSON text: dates, Decimal, UUID and paths become strings; a set, bytes or any
    other object is refused (it would come back as some other value); no NaN/inf; valid UTF-8."""
    try:
        text = json.dumps(meta, ensure_ascii=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what}: 'metadata' is not JSON-serialisable ({exc})", index=index) from None
    return check_unicode(text, f"{what}: 'metadata'", index)


def as_vector(v: object, dimension: int, what: str, distance: str | None = None) -> npt.NDArray[np.float32]:
    try:
        arr = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what}: the vector is not numeric ({exc}); pass a list or array of floats") \
            from None
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and arr.shape[0] == 1 else arr
    if arr.ndim != 1:
        raise InvalidInputError(f"{what}: expected one vector of {dimension} floats, got shape {arr.shape}")
    if arr.shape[0] != dimension:
        raise DimensionMismatchError(
            f"{what}: the vector has {arr.shape[0]} dimensions, the collection holds {dimension}-d vectors; "
            "embed with the collection's model (see its metadata) or create another collection"
        )
    problem = vector_problems(arr.reshape(1, -1), distance)[0]
    if problem:
        raise InvalidInputError(f"{what}: {problem}; fix or drop the item")
    return arr


SCALARS = (str, int, float, decimal.Decimal, datetime.date, datetime.time, datetime.timedelta)


def scalar_value(v: object, ctype: str, what: str, index: int) -> object:
    """A declared column's value, checked: one scalar (or None). Containers and arbitrary objects are refused
    before they reach the driver (PyMySQL < 1.1.1 built SQL from dict keys: CVE-2024-36039); a ``json``
    column takes a dict/list (serialised here); bytes only go into binary/varbinary columns."""
    if v is None:
        return None
    if ctype == "json":
        if isinstance(v, str):  # JSON text, as before
            return check_unicode(v, what, index)
        try:
            text = json.dumps(v, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what}: the value is not JSON-serialisable ({exc})", index=index) from None
        return check_unicode(text, what, index)
    if isinstance(v, bytes | bytearray | memoryview):
        if ctype.startswith(("binary", "varbinary")):
            return bytes(v)
        raise InvalidInputError(f"{what}: got bytes; pass a str (decode it) or declare the column varbinary(n)",
                                index=index)
    if not isinstance(v, SCALARS):  # bool is an int
        raise InvalidInputError(
            f"{what}: got a {type(v).__name__}, not a single value; pass a str, number, bool, date or None "
            "(put structured data into 'metadata', or declare the column as json)", index=index)
    if isinstance(v, float) and not math.isfinite(v):
        raise InvalidInputError(f"{what} is {v}; use a finite number or None", index=index)
    if isinstance(v, str):
        check_unicode(v, what, index)
    return v


def parse_vector(text: object) -> npt.NDArray[np.float32]:
    if isinstance(text, bytes | bytearray):
        text = text.decode()
    s = str(text).strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    if not s:
        return np.zeros(0, dtype=np.float32)
    return np.array(s.split(","), dtype=np.float32)


def score(distance: str, d: float) -> float:
    if distance == "cosine":
        return 1.0 - d
    if distance == "ip":
        return -d
    return 1.0 / (1.0 + d)


def vector_bytes(vec: npt.ArrayLike) -> bytes:
    """A vector as the engine's binary input: little-endian float32."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def sparse_literal(v: object, what: str, *, max_id: int, index: int | None = None) -> str:
    """A sparse vector ``{token id: weight}`` checked and written as the engine's literal ``'{12:0.5,40:0.3}'``
    (ids ascending, weights as float32; zero weights left out). Refused: a non-dict, ids that are not ints in
    ``0..max_id-1``, weights that are not finite numbers ≥ 0 (NaN, inf, negative)."""
    if not isinstance(v, Mapping):
        raise InvalidInputError(f"{what}: a sparse vector must be a dict {{token id: weight}}, got "
                                f"{type(v).__name__}", index=index)
    items: list[tuple[int, float]] = []
    for key, w in v.items():
        if isinstance(key, bool) or not isinstance(key, int | np.integer) or not 0 <= int(key) < max_id:
            raise InvalidInputError(f"{what}: sparse token id {key!r:.40} is not an int in 0..{max_id - 1}; "
                                    "pass the model's token ids as ints", index=index)
        if isinstance(w, bool) or not isinstance(w, int | float | np.integer | np.floating):
            raise InvalidInputError(f"{what}: sparse weight of id {int(key)} is a {type(w).__name__}, not a number",
                                    index=index)
        f = float(np.float32(w))
        if not math.isfinite(f) or f < 0:
            raise InvalidInputError(f"{what}: sparse weight of id {int(key)} is {float(w)!r}; weights must be finite "
                                    "and ≥ 0 (lexical weights are ReLU outputs): fix or drop the item", index=index)
        if f > 0:
            items.append((int(key), f))
    items.sort()
    return "{" + ",".join(f"{i}:{w!r}" for i, w in items) + "}"


def parse_sparse(text: object) -> dict[int, float] | None:
    """The engine's sparse text ``{1:0.5,77:1.2}`` as a dict of float32 values (None for NULL)."""
    if text is None:
        return None
    if isinstance(text, bytes | bytearray):
        text = text.decode()
    s = str(text).strip().strip("{}").strip()
    if not s:
        return {}
    out: dict[int, float] = {}
    for part in s.split(","):
        k, _, w = part.partition(":")
        out[int(k)] = float(np.float32(w))
    return out
