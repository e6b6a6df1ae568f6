"""Row values on their way in and out: vectors checked and packed as float32 bytes, scalar column values
checked, vectors parsed back from the engine's text, distances turned into scores."""

from __future__ import annotations

import datetime
import decimal
import json
import math

import numpy as np
import numpy.typing as npt

from ..errors import DimensionMismatchError, InvalidInputError

__all__ = ["BASE_SELECT", "as_vector", "parse_vector", "scalar_value", "score", "vector_bytes"]

BASE_SELECT = ["id", "content", "source", "chunk", "content_hash", "metadata"]
"""The fixed columns every SELECT of a collection starts with (declared columns follow)."""


def as_vector(v: object, dimension: int, what: str) -> npt.NDArray[np.float32]:
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
    if not np.isfinite(arr).all():
        raise InvalidInputError(
            f"{what}: the vector contains NaN or inf (the engine would store it and it would poison searches); "
            "fix or drop the item"
        )
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
            return v
        try:
            return json.dumps(v, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what}: the value is not JSON-serialisable ({exc})", index=index) from None
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
