"""Filter compilation (no database): both forms, bound parameters only, injection refused."""

from __future__ import annotations

import pytest

from obembed.errors import InvalidFilterError
from obembed.store import compile_where

COLS = ["id", "content", "source", "chunk", "lang", "year"]


@pytest.mark.parametrize(
    ("where", "sql", "params"),
    [
        (None, "", []),
        ({}, "", []),
        ({"lang": "ja"}, "`lang` = %s", ["ja"]),
        ({"lang": None}, "`lang` IS NULL", []),
        ({"year": {">=": 2020, "<": 2024}}, "`year` >= %s AND `year` < %s", [2020, 2024]),
        ({"year": {"$gte": 2020}}, "`year` >= %s", [2020]),
        ({"lang": ["ja", "zh"]}, "`lang` IN (%s, %s)", ["ja", "zh"]),
        ({"lang": {"not_in": ["en"]}}, "`lang` NOT IN (%s)", ["en"]),
        ({"metadata.author": "x"}, "JSON_UNQUOTE(JSON_EXTRACT(`metadata`, %s)) = %s", ["$.author", "x"]),
        ({"metadata.a.b": 3}, "JSON_EXTRACT(`metadata`, %s) = %s", ["$.a.b", 3]),
        ({"$or": [{"lang": "ja"}, {"year": {">": 1}}]}, "((`lang` = %s) OR (`year` > %s))", ["ja", 1]),
        ("lang = 'ja' AND year >= 2020", "`lang` = %s AND `year` >= %s", ["ja", 2020]),
        ("lang = 'it''s'", "`lang` = %s", ["it's"]),
        ("(lang = 'ja' OR lang = 'zh') AND NOT year < 2000",
         "(`lang` = %s OR `lang` = %s) AND NOT (`year` < %s)", ["ja", "zh", 2000]),
        ("lang IN ('ja', 'zh') AND source LIKE 'docs/%'", "`lang` IN (%s, %s) AND `source` LIKE %s",
         ["ja", "zh", "docs/%"]),
        ("year BETWEEN 2000 AND 2010", "(`year` >= %s AND `year` <= %s)", [2000, 2010]),
        ("lang IS NOT NULL", "`lang` IS NOT NULL", []),
        ("metadata.score > 0.5", "JSON_EXTRACT(`metadata`, %s) > %s", ["$.score", 0.5]),
        ("LANG = 'ja'", "`lang` = %s", ["ja"]),
        ({"metadata.ok": True}, "JSON_EXTRACT(`metadata`, %s) = CAST(%s AS JSON)", ["$.ok", "true"]),
        ("metadata.ok = FALSE", "JSON_EXTRACT(`metadata`, %s) = CAST(%s AS JSON)", ["$.ok", "false"]),
    ],
)
def test_compile(where, sql, params):
    assert compile_where(where, COLS) == (sql, params)


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("lang = 'ja'; DROP TABLE t", "unexpected text"),
        ("lang = 'ja' -- comment", "unexpected text"),
        ("lang = 'ja' OR 1=1", "expected name"),
        ("lang = 'ja' UNION SELECT * FROM mysql.user", "unexpected"),
        ("lang = 'ja' UNION", "unexpected 'UNION'"),
        ("lang = `x`", "unexpected text"),
        ("lang = \"x\"", "unexpected text"),
        ("sleep(5) = 0", "needs a comparison|expected|unexpected"),
        ("secret_column = 1", "unknown filter column"),
        ("lang = 'unterminated", "unexpected text"),
        ("lang = ", "expected a literal"),
        ("", "empty"),
        ({"lang; DROP TABLE x": 1}, "unknown filter column"),
        ({"lang`": 1}, "unknown filter column"),
        ({"metadata.a') OR ('1'='1": 1}, "JSON path"),
        ({"metadata.": 1}, "JSON path"),
        ({"lang": {"; DROP": 1}}, "unknown operator"),
        ({"lang": {"=": {"nested": 1}}}, "not allowed"),
        ({"lang": object()}, "not allowed"),
        ({"year": {"<": None}}, "NULL is never true"),
        ({"$or": "lang = 'x'"}, "list of filter dicts"),
        (42, "dict or an expression string"),
    ],
)
def test_refused(where, match):
    with pytest.raises(InvalidFilterError, match=match):
        compile_where(where, COLS)


def test_values_never_enter_sql_text():
    evil = "x' OR '1'='1"
    sql, params = compile_where({"lang": evil, "metadata.k": evil}, COLS)
    assert evil not in sql
    assert "'" not in sql
    assert params.count(evil) == 2
    sql, params = compile_where("lang = 'x'' OR ''1''=''1'", COLS)
    assert sql == "`lang` = %s"
    assert params == [evil]
