"""Filters (``where=``) compiled to SQL with bound parameters.

Two forms, both validated against the collection's known columns; values never enter SQL text:

* dict: ``{"lang": "ja", "year": {">=": 2020}, "metadata.author": "x", "$or": [{...}, {...}]}``
  (operators ``= != <> < <= > >= in not_in like not_like ilike between is_null`` and Mongo-style ``$eq $ne $gt
  $gte $lt $lte $in $nin $like $ilike $between $exists``; for lists stored in ``metadata``: ``contains`` (holds the
  value), ``any`` (holds one of the values), ``all`` (holds every value), ``is_empty`` (missing, null, ``""`` or
  ``[]``), each also with a ``$``; a list value means IN; ``None`` means IS NULL);
* expression string: ``"lang = 'ja' AND (year >= 2020 OR metadata.author IN ('a', 'b'))"`` with
  ``AND OR NOT``, parentheses, comparisons, ``[NOT] IN (...)``, ``[NOT] LIKE '...'``, ``IS [NOT] NULL``,
  ``BETWEEN a AND b``; literals are single-quoted strings (``''`` escapes a quote), numbers, TRUE/FALSE/NULL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidFilterError

__all__ = ["Where", "compile_where", "escape_like"]

Where = Mapping[str, Any] | str | None

_PATH_SEG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_OPS = {
    "=": "=", "==": "=", "$eq": "=", "eq": "=",
    "!=": "<>", "<>": "<>", "$ne": "<>", "ne": "<>",
    "<": "<", "$lt": "<", "lt": "<",
    "<=": "<=", "$lte": "<=", "lte": "<=",
    ">": ">", "$gt": ">", "gt": ">",
    ">=": ">=", "$gte": ">=", "gte": ">=",
    "in": "IN", "$in": "IN",
    "not_in": "NOT IN", "not in": "NOT IN", "$nin": "NOT IN", "nin": "NOT IN",
    "like": "LIKE", "$like": "LIKE", "not_like": "NOT LIKE", "not like": "NOT LIKE",
    "is_null": "IS NULL", "$exists": "EXISTS",
    "ilike": "ILIKE", "$ilike": "ILIKE",
    "between": "BETWEEN", "$between": "BETWEEN",
    "contains": "CONTAINS", "$contains": "CONTAINS",
    "any": "ANY", "$any": "ANY",
    "all": "ALL", "$all": "ALL",
    "is_empty": "IS_EMPTY", "$is_empty": "IS_EMPTY",
}
_JSON_OPS = {"CONTAINS": "contains", "ANY": "any", "ALL": "all"}
_MAX_IN = 10_000


class _Columns:
    """Resolves a filter key to a SQL expression: a known column, or ``metadata.<path>`` into the JSON column."""

    def __init__(self, columns: Iterable[str]) -> None:
        self.columns = {c.lower(): c for c in columns}

    def expr(self, key: Any, value: Any = None) -> tuple[str, list[Any]]:
        if not isinstance(key, str):
            raise InvalidFilterError(f"filter key {key!r} is not a column name")
        if key.lower().startswith("metadata."):
            segs = key.split(".")[1:]
            if not segs or not all(_PATH_SEG.match(s) for s in segs):
                raise InvalidFilterError(
                    f"filter key {key!r}: a JSON path is metadata.<field>[.<field>...] with fields made of "
                    "letters, digits and '_'"
                )
            path = "$." + ".".join(segs)
            if isinstance(value, bool) or isinstance(value, int | float):
                return "JSON_EXTRACT(`metadata`, %s)", [path]
            return "JSON_UNQUOTE(JSON_EXTRACT(`metadata`, %s))", [path]
        col = self.columns.get(key.lower())
        if col is None:
            raise InvalidFilterError(
                f"unknown filter column {key!r}; known columns: {', '.join(sorted(self.columns.values()))}, "
                "or metadata.<field> for the JSON column"
            )
        return f"`{col}`", []

    def json_expr(self, key: Any, op: str) -> tuple[str, list[Any]]:
        """The raw JSON value of ``metadata.<path>`` (list operators compare JSON, not text)."""
        if not isinstance(key, str) or not key.lower().startswith("metadata."):
            raise InvalidFilterError(
                f"filter on {key!r}: {op} applies to list values stored in the JSON metadata (metadata.<field>), "
                "not to a declared scalar column; use = / in / like on a column")
        self.expr(key)  # validates the path
        return "JSON_EXTRACT(`metadata`, %s)", ["$." + ".".join(key.split(".")[1:])]


def escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards (``%``, ``_``) and the escape character made literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _check_value(key: str, v: Any) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        if isinstance(v, float) and v != v:
            raise InvalidFilterError(f"filter on {key!r}: NaN is not a comparable value")
        if isinstance(v, float) and v in (math.inf, -math.inf):
            raise InvalidFilterError(f"filter on {key!r}: {v} is not a comparable value (a number literal beyond "
                                     "±1.8e308 reads as infinity); use a finite number")
        if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**64:
            raise InvalidFilterError(f"filter on {key!r}: {v} is outside the 64-bit range the engine compares")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidFilterError(f"filter on {key!r}: the value {v!r:.60} contains a lone surrogate, "
                                         "which is not valid Unicode text") from None
        return v
    raise InvalidFilterError(
        f"filter on {key!r}: value {v!r} of type {type(v).__name__} is not allowed; use str, int, float, bool or None"
    )


def _cmp(cols: _Columns, key: str, op: str, value: Any) -> tuple[str, list[Any]]:
    sql_op = _OPS.get(op.lower() if isinstance(op, str) else op)
    if sql_op is None:
        raise InvalidFilterError(f"filter on {key!r}: unknown operator {op!r}; use one of {sorted(set(_OPS))}")
    if sql_op in ("IN", "NOT IN"):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise InvalidFilterError(f"filter on {key!r}: {op} needs a list of values")
        vals = [_check_value(key, v) for v in value]
        if not vals:
            return ("1=0" if sql_op == "IN" else "1=1"), []
        if len(vals) > _MAX_IN:
            raise InvalidFilterError(f"filter on {key!r}: {op} with {len(vals)} values (at most {_MAX_IN})")
        lhs, lp = cols.expr(key, vals[0])
        pairs = [_rhs(lhs, v) for v in vals]
        return f"{lhs} {sql_op} ({', '.join(r for r, _ in pairs)})", lp + [v for _, v in pairs]
    if sql_op in _JSON_OPS:
        lhs, lp = cols.json_expr(key, op)
        if sql_op == "CONTAINS":
            _check_value(key, value)
            return f"JSON_CONTAINS({lhs}, CAST(%s AS JSON))", [*lp, json.dumps(value)]
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise InvalidFilterError(f"filter on {key!r}: {op} needs a list of values")
        vals = [_check_value(key, v) for v in value]
        if not vals:
            return ("1=1" if sql_op == "ALL" else "1=0"), []
        fn = "JSON_OVERLAPS" if sql_op == "ANY" else "JSON_CONTAINS"
        return f"{fn}({lhs}, CAST(%s AS JSON))", [*lp, json.dumps(vals)]
    if sql_op == "IS_EMPTY":
        want = value is None or bool(value)
        if isinstance(key, str) and key.lower().startswith("metadata."):
            x, xp = cols.json_expr(key, op)
            sql = (f"({x} IS NULL OR JSON_TYPE({x}) = 'NULL' OR (JSON_TYPE({x}) = 'ARRAY' AND JSON_LENGTH({x}) = 0) "
                   f"OR (JSON_TYPE({x}) = 'STRING' AND JSON_UNQUOTE({x}) = ''))")
            params = xp * 6
        else:
            x, params = cols.expr(key)
            sql = f"({x} IS NULL OR {x} = '')"
        return (sql if want else f"NOT {sql}"), params
    if sql_op == "BETWEEN":
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable) or len(list(value)) != 2:
            raise InvalidFilterError(f"filter on {key!r}: {op} needs [low, high]")
        lo, hi = (_check_value(key, v) for v in value)
        if lo is None or hi is None:
            raise InvalidFilterError(f"filter on {key!r}: {op} bounds must not be None")
        a, pa = _cmp(cols, key, ">=", lo)
        b, pb = _cmp(cols, key, "<=", hi)
        return f"({a} AND {b})", pa + pb
    if sql_op in ("IS NULL", "EXISTS"):
        lhs, lp = cols.expr(key)
        want_null = bool(value) if sql_op == "IS NULL" else not bool(value)
        return f"{lhs} IS {'' if want_null else 'NOT '}NULL", lp
    value = _check_value(key, value)
    lhs, lp = cols.expr(key, value)
    if value is None:
        if sql_op == "=":
            return f"{lhs} IS NULL", lp
        if sql_op == "<>":
            return f"{lhs} IS NOT NULL", lp
        raise InvalidFilterError(f"filter on {key!r}: {op} NULL is never true; use IS NULL / IS NOT NULL")
    if sql_op in ("LIKE", "NOT LIKE", "ILIKE") and not isinstance(value, str):
        raise InvalidFilterError(f"filter on {key!r}: {op} needs a string pattern")
    if sql_op == "ILIKE":
        return f"LOWER({lhs}) LIKE LOWER(%s)", [*lp, value]
    placeholder, param = _rhs(lhs, value)
    return f"{lhs} {sql_op} {placeholder}", [*lp, param]


def _rhs(lhs: str, value: Any) -> tuple[str, Any]:
    """Placeholder and parameter for a value; a JSON boolean compares only with a JSON true/false."""
    if isinstance(value, bool) and lhs.startswith("JSON_EXTRACT("):
        return "CAST(%s AS JSON)", "true" if value else "false"
    return "%s", value


def _compile_dict(cols: _Columns, where: Mapping[str, Any], depth: int = 0) -> tuple[str, list[Any]]:
    if depth > 32:
        raise InvalidFilterError("filter nested too deeply")
    parts: list[str] = []
    params: list[Any] = []
    for key, value in where.items():
        if isinstance(key, str) and key.lower() in ("$and", "$or", "and", "or"):
            if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
                raise InvalidFilterError(f"filter {key!r} needs a list of filter dicts")
            subs = [_compile_dict(cols, v, depth + 1) for v in value]
            if not subs:
                continue
            joiner = " AND " if key.lower().endswith("and") else " OR "
            parts.append("(" + joiner.join(f"({s})" for s, _ in subs) + ")")
            for _, p in subs:
                params += p
        elif isinstance(key, str) and key.lower() in ("$not", "not"):
            if not isinstance(value, Mapping):
                raise InvalidFilterError(f"filter {key!r} needs a filter dict")
            s, p = _compile_dict(cols, value, depth + 1)
            parts.append(f"NOT ({s})")
            params += p
        elif isinstance(value, Mapping):
            if not value:
                raise InvalidFilterError(f"filter on {key!r}: empty operator dict")
            for op, v in value.items():
                s, p = _cmp(cols, key, op, v)
                parts.append(s)
                params += p
        elif isinstance(value, list | tuple | set | frozenset):
            s, p = _cmp(cols, key, "in", list(value))
            parts.append(s)
            params += p
        else:
            s, p = _cmp(cols, key, "=", value)
            parts.append(s)
            params += p
    if not parts:
        return "1=1", []
    return " AND ".join(parts), params


# ------------------------------------------------------------------ expression strings
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<op><=|>=|<>|!=|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "BETWEEN", "TRUE", "FALSE"}


def _tokenize(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidFilterError(
                f"filter expression: unexpected text at position {pos}: {text[pos:pos + 20]!r} "
                "(allowed: column names, 'quoted strings', numbers, = != < <= > >=, AND OR NOT IN LIKE IS NULL "
                "BETWEEN, parentheses)"
            )
        pos = m.end()
        if m.group("str") is not None:
            out.append(("val", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            n = m.group("num")
            out.append(("val", float(n) if any(c in n for c in ".eE") else int(n)))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        elif m.group("punct") is not None:
            out.append((m.group("punct"), m.group("punct")))
        else:
            w = m.group("word")
            up = w.upper()
            if up in _KEYWORDS:
                if up in ("TRUE", "FALSE"):
                    out.append(("val", up == "TRUE"))
                elif up == "NULL":
                    out.append(("null", None))
                else:
                    out.append(("kw", up))
            else:
                out.append(("name", w))
    return out


class _Parser:
    def __init__(self, text: str, cols: _Columns) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.cols = cols
        self.depth = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: Any = None) -> Any:
        t = self.peek()
        if t is None or t[0] != kind or (value is not None and t[1] != value):
            want = value or kind
            got = "the end" if t is None else repr(t[1])
            raise InvalidFilterError(f"filter expression {self.text!r}: expected {want}, found {got}")
        self.i += 1
        return t[1]

    def accept(self, kind: str, value: Any = None) -> bool:
        t = self.peek()
        if t is not None and t[0] == kind and (value is None or t[1] == value):
            self.i += 1
            return True
        return False

    def parse(self) -> tuple[str, list[Any]]:
        if not self.toks:
            raise InvalidFilterError("filter expression is empty")
        sql, params = self.or_()
        if self.peek() is not None:
            raise InvalidFilterError(f"filter expression {self.text!r}: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return sql, params

    def or_(self) -> tuple[str, list[Any]]:
        sql, params = self.and_()
        parts = [sql]
        while self.accept("kw", "OR"):
            s, p = self.and_()
            parts.append(s)
            params += p
        return (" OR ".join(parts) if len(parts) > 1 else sql), params

    def and_(self) -> tuple[str, list[Any]]:
        sql, params = self.not_()
        parts = [sql]
        while self.accept("kw", "AND"):
            s, p = self.not_()
            parts.append(s)
            params += p
        return (" AND ".join(parts) if len(parts) > 1 else sql), params

    def not_(self) -> tuple[str, list[Any]]:
        if self.accept("kw", "NOT"):
            # a chain of NOTs nests like parentheses: bound it the same way (else RecursionError -> 500)
            self.depth += 1
            if self.depth > 32:
                raise InvalidFilterError(f"filter expression {self.text[:80]!r}: NOT/parentheses nested too deeply "
                                         "(at most 32 levels); simplify it")
            s, p = self.not_()
            self.depth -= 1
            return f"NOT ({s})", p
        return self.primary()

    def primary(self) -> tuple[str, list[Any]]:
        if self.accept("("):
            self.depth += 1
            if self.depth > 32:
                raise InvalidFilterError(f"filter expression {self.text[:80]!r}: NOT/parentheses nested too deeply "
                                         "(at most 32 levels); simplify it")
            s, p = self.or_()
            self.take(")")
            self.depth -= 1
            return f"({s})", p
        name = self.take("name")
        t = self.peek()
        if t is None:
            raise InvalidFilterError(f"filter expression {self.text!r}: {name!r} needs a comparison")
        if t == ("kw", "IS"):
            self.i += 1
            neg = self.accept("kw", "NOT")
            self.take("null")
            return _cmp(self.cols, name, "is_null", not neg)
        neg = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.take("(")
            vals = [self.value()]
            while self.accept(","):
                vals.append(self.value())
            self.take(")")
            return _cmp(self.cols, name, "not_in" if neg else "in", vals)
        if self.accept("kw", "LIKE"):
            return _cmp(self.cols, name, "not_like" if neg else "like", self.value())
        if self.accept("kw", "BETWEEN"):
            lo = self.value()
            self.take("kw", "AND")
            hi = self.value()
            a, pa = _cmp(self.cols, name, ">=", lo)
            b, pb = _cmp(self.cols, name, "<=", hi)
            s = f"({a} AND {b})"
            return (f"NOT {s}" if neg else s), pa + pb
        if neg:
            raise InvalidFilterError(f"filter expression {self.text!r}: NOT after a column needs IN, LIKE or BETWEEN")
        op = self.take("op")
        if self.accept("null"):
            return _cmp(self.cols, name, op, None)
        return _cmp(self.cols, name, op, self.value())

    def value(self) -> Any:
        t = self.peek()
        if t is None or t[0] != "val":
            got = "the end" if t is None else repr(t[1])
            raise InvalidFilterError(
                f"filter expression {self.text!r}: expected a literal ('text', number, TRUE/FALSE), found {got}"
            )
        self.i += 1
        return t[1]


def compile_where(where: Where, columns: Iterable[str]) -> tuple[str, list[Any]]:
    """Compile a filter to ``(sql, params)``; ``("", [])`` for no filter. Raises :class:`InvalidFilterError`."""
    if where is None:
        return "", []
    cols = _Columns(columns)
    if isinstance(where, str):
        if len(where) > 10_000:
            raise InvalidFilterError("filter expression longer than 10,000 characters")
        return _Parser(where, cols).parse()
    if isinstance(where, Mapping):
        if not where:
            return "", []
        return _compile_dict(cols, where)
    raise InvalidFilterError(f"where must be a dict or an expression string, not {type(where).__name__}")
