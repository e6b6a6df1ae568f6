"""Names, types and DDL of obembed's tables: one table per collection plus the metadata table.

Every identifier that reaches SQL goes through :func:`check_identifier` (a strict regex), and is then
backquoted; values never reach SQL text (they are bound parameters).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import ConfigError, InvalidInputError

__all__ = [
    "BUILTIN_COLUMNS",
    "DISTANCE_FUNCTIONS",
    "INDEX_TYPES",
    "META_TABLE",
    "check_collection_name",
    "check_column_type",
    "check_identifier",
    "collection_ddl",
    "default_ef_search",
    "ensure_table",
    "meta_table_ddl",
    "quote",
    "table_exists",
    "vector_index_ddl",
]

META_TABLE = "obembed_collections"
SCHEMA_VERSION = 1
VECTOR_COLUMN = "embedding"
VECTOR_INDEX = "vidx_embedding"
FULLTEXT_INDEX = "ftidx_content"
SPARSE_COLUMN = "sparse_embedding"
FULLTEXT_SEED_COLUMN = "fulltext_seed"
FULLTEXT_SEED_INDEX = "ftidx_seed"
"""A collection created with its FULLTEXT index deferred gets a FULLTEXT index at once on this always-NULL column.
It holds no words, but it makes the engine create the tables every FULLTEXT index of a table shares (row key <->
document id) with the table, kept as rows arrive (a B-tree entry each way per row). The deferred build over the
first load then builds only the word tables: measured over 1,000 rows 1.4 s and 1.5 CPU-s instead of 2.2 s and
2.5 CPU-s, the engine's whole load with its dumps 2.6 CPU-s instead of 3.4 (docs/storage.md, *Big first loads*)."""
SPARSE_INDEX = "sidx_sparse"
SPARSE_MAX_ID = 500_000
"""Sparse token ids run from 0 to ``SPARSE_MAX_ID - 1`` (the engine's SPARSEVECTOR limit; BGE-M3's vocabulary
has 250,002 ids)."""
SPARSE_VERSION_NEEDED = ("seekdb 1.4 (the embedded engine of pylibseekdb ≥ 1.4) or an OceanBase release with "
                         "SPARSEVECTOR and the vsag 'sindi' index (4.4.1 or later)")
BINARY_COLLATION = "utf8mb4_bin"
"""Collation of the key-like columns (id, source, content_hash): case- and accent-sensitive."""

ID_MAX = 512
"""Longest id, in characters (``varchar(512)``)."""
SOURCE_MAX = 4096
"""Longest source, in characters: ``varchar(4096)`` is the widest indexable utf8mb4 column (the engine's key limit
is 16384 bytes) and holds any path Linux opens (PATH_MAX = 4096 bytes with the NUL)."""
SOURCE_LEGACY = 2048
"""The source width of collections created before 4096: widened by the first longer source."""

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_RESERVED_PREFIX = "obembed_"

BUILTIN_COLUMNS: dict[str, str] = {
    "id": "varchar(512)",
    "content": "longtext",
    "source": f"varchar({SOURCE_MAX})",
    "chunk": "int",
    "content_hash": "varchar(128)",
    "metadata": "json",
    VECTOR_COLUMN: "vector",
    SPARSE_COLUMN: "sparsevector",
    FULLTEXT_SEED_COLUMN: "varchar(1)",
    "created_at": "timestamp(6)",
    "updated_at": "timestamp(6)",
}
"""Columns every collection table has; user columns may not reuse these names."""

# distance name -> (index DISTANCE= keyword, SQL distance function that the index answers)
DISTANCE_FUNCTIONS: dict[str, tuple[str, str]] = {
    "cosine": ("cosine", "cosine_distance"),
    "l2": ("l2", "l2_distance"),
    "ip": ("inner_product", "negative_inner_product"),
}
INDEX_TYPES = ("hnsw", "hnsw_sq", "hnsw_bq", "ivf_flat", "ivf_pq")
"""Vector index types offered (``ivf_sq8`` is left out on purpose: it returned wrong neighbours)."""
FULLTEXT_PARSERS = ("ngram", "ngram2", "ik", "space", "beng")
FULLTEXT_PENDING = "pending:"
"""Prefix of a ``fulltext_parser`` recorded for a FULLTEXT index to be built after the first load
(``pending:space``): the engine builds an index over loaded rows in a fraction of the CPU it spends keeping one
up to date row by row (docs/performance.md)."""

_TYPE_PATTERNS = [
    re.compile(r"^(varchar|char|varbinary|binary)\(\s*\d{1,5}\s*\)$"),
    re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint)(\(\s*\d{1,2}\s*\))?( unsigned)?$"),
    re.compile(r"^(float|double|real)$"),
    re.compile(r"^(decimal|numeric)(\(\s*\d{1,2}\s*(,\s*\d{1,2}\s*)?\))?$"),
    re.compile(r"^(bool|boolean|date|time|year|text|mediumtext|longtext|tinytext|json)$"),
    re.compile(r"^(datetime|timestamp)(\(\s*[0-6]\s*\))?$"),
]


def check_identifier(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a safe SQL identifier (letter, then letters/digits/_; ≤ 63), else raise."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise InvalidInputError(
            f"{what} {name!r} is not a safe identifier: use a letter followed by letters, digits or '_' "
            "(at most 63 characters; no spaces, quotes, backticks, dots or dashes), e.g. 'my_docs'"
        )
    return str(name)


def check_collection_name(name: object) -> str:
    """A collection name: a safe identifier that does not use obembed's reserved prefix."""
    name = check_identifier(name, "collection name")
    if name.lower().startswith(_RESERVED_PREFIX):
        raise InvalidInputError(
            f"collection name {name!r} starts with the reserved prefix {_RESERVED_PREFIX!r}; choose another name"
        )
    return str(name)


def check_column_type(column: str, sql_type: object) -> str:
    """A declared scalar column type, normalised to lower case, from a small allow-list."""
    if not isinstance(sql_type, str):
        raise InvalidInputError(f"column {column!r}: type must be a string such as 'varchar(64)' or 'int'")
    norm = " ".join(sql_type.strip().lower().split())
    if not any(p.match(norm) for p in _TYPE_PATTERNS):
        raise InvalidInputError(
            f"column {column!r}: type {sql_type!r} is not allowed; use one of varchar(n), char(n), int, bigint, "
            "smallint, tinyint, float, double, decimal(p,s), bool, date, datetime, timestamp, text, json"
        )
    return norm


def check_columns(columns: dict[str, str] | None) -> dict[str, str]:
    """Validate user scalar columns ``{name: type}``; names must be safe and not clash with built-ins."""
    out: dict[str, str] = {}
    for name, typ in (columns or {}).items():
        check_identifier(name, "column name")
        if name.lower() in BUILTIN_COLUMNS:
            raise InvalidInputError(
                f"column name {name!r} is built into every collection ({', '.join(BUILTIN_COLUMNS)}); "
                "choose another name"
            )
        if name.lower() in (n.lower() for n in out):
            raise InvalidInputError(f"column {name!r} is declared twice (names are case-insensitive)")
        out[name] = check_column_type(name, typ)
    return out


def quote(name: str) -> str:
    """Backquote an identifier that already passed :func:`check_identifier`."""
    check_identifier(name)
    return f"`{name}`"


def default_ef_search(dimension: int) -> int:
    """ef_search recorded in a new HNSW index: the engine's default (64) loses recall at high dimension."""
    return 128 if dimension <= 512 else 256


def index_params(index: str, dimension: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Index parameters with defaults filled in, validated (ints only)."""
    p: dict[str, Any] = {}
    if index.startswith("hnsw"):
        p = {"m": 16, "ef_construction": 200, "ef_search": default_ef_search(dimension)}
    elif index == "ivf_flat":
        p = {"nlist": 128}
    elif index == "ivf_pq":
        p = {"nlist": 128, "m": max(1, dimension // 8)}
    for k, v in (params or {}).items():
        check_identifier(k, "index parameter")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise InvalidInputError(f"index parameter {k}={v!r} must be a positive integer")
        p[k.lower()] = v
    return p


def vector_index_clause(distance: str, index: str, params: dict[str, Any]) -> str:
    if index not in INDEX_TYPES:
        raise ConfigError(f"index={index!r} is not supported; use one of {INDEX_TYPES} or None for no vector index")
    kw = DISTANCE_FUNCTIONS[distance][0]
    opts = ", ".join(f"{k}={int(v)}" for k, v in params.items())
    lib = "ob" if index.startswith("ivf") else "vsag"  # the engine builds IVF only with its own library
    return f"WITH (distance={kw}, type={index}, lib={lib}{', ' + opts if opts else ''})"


def vector_index_ddl(table: str, distance: str, index: str, params: dict[str, Any]) -> str:
    """``CREATE VECTOR INDEX`` for a table that was loaded first (synchronous: complete when it returns)."""
    return (f"CREATE VECTOR INDEX {quote(VECTOR_INDEX)} ON {quote(table)}({quote(VECTOR_COLUMN)}) "
            + vector_index_clause(distance, index, params))


def collection_ddl(
    table: str,
    dimension: int,
    distance: str,
    *,
    columns: dict[str, str],
    index: str | None,
    index_params: dict[str, Any],
    fulltext: str | None,
    sparse: bool = False,
    fulltext_seed: str | None = None,
) -> str:
    """``CREATE TABLE`` of one collection (INDEX-organised: the HNSW index is kept synchronously).
    ``fulltext_seed``: the parser of a deferred FULLTEXT index; the table gets the seed index
    (``FULLTEXT_SEED_COLUMN``) so that the later build is cheaper."""
    for parser in (fulltext, fulltext_seed):
        if parser is not None and parser not in FULLTEXT_PARSERS:
            raise ConfigError(f"fulltext parser {parser!r} is not supported; use one of {FULLTEXT_PARSERS}")
    # ids, sources (file paths) and hashes compare byte for byte: under the engine's default collation
    # (utf8mb4_general_ci) ids "A" and "a" would be one row and README.md / readme.md one source
    lines = [
        f"`id` varchar(512) COLLATE {BINARY_COLLATION} NOT NULL",
        "`content` longtext",
        f"`source` varchar({SOURCE_MAX}) COLLATE {BINARY_COLLATION}",
        "`chunk` int",
        f"`content_hash` varchar(128) COLLATE {BINARY_COLLATION}",
    ]
    lines += [f"{quote(c)} {t}" for c, t in columns.items()]
    lines += [
        "`metadata` json",
        f"{quote(VECTOR_COLUMN)} VECTOR({int(dimension)}) NOT NULL",
        *([f"{quote(SPARSE_COLUMN)} SPARSEVECTOR"] if sparse else []),
        *([f"{quote(FULLTEXT_SEED_COLUMN)} varchar(1) DEFAULT NULL"] if fulltext_seed else []),
        "`created_at` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
        "`updated_at` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)",
        "PRIMARY KEY (`id`)",
        "KEY `idx_source` (`source`)",
    ]
    if index:
        lines.append(f"VECTOR INDEX {quote(VECTOR_INDEX)} ({quote(VECTOR_COLUMN)}) "
                     + vector_index_clause(distance, index, index_params))
    if sparse:
        lines.append(f"VECTOR INDEX {quote(SPARSE_INDEX)} ({quote(SPARSE_COLUMN)}) "
                     "WITH (lib=vsag, type=sindi, distance=inner_product)")
    if fulltext:
        lines.append(f"FULLTEXT INDEX {quote(FULLTEXT_INDEX)} (`content`) WITH PARSER {fulltext}")
    if fulltext_seed:
        lines.append(f"FULLTEXT INDEX {quote(FULLTEXT_SEED_INDEX)} ({quote(FULLTEXT_SEED_COLUMN)}) "
                     f"WITH PARSER {fulltext_seed}")
    body = ",\n  ".join(lines)
    return f"CREATE TABLE {quote(table)} (\n  {body}\n) ORGANIZATION INDEX DEFAULT CHARSET = utf8mb4"


def fulltext_index_ddl(table: str, parser: str) -> str:
    """``CREATE FULLTEXT INDEX`` on a collection's ``content``, for a table created without one."""
    if parser not in FULLTEXT_PARSERS:
        raise ConfigError(f"fulltext parser {parser!r} is not supported; use one of {FULLTEXT_PARSERS}")
    return f"CREATE FULLTEXT INDEX {quote(FULLTEXT_INDEX)} ON {quote(table)} (`content`) WITH PARSER {parser}"


def meta_table_ddl() -> str:
    """The collections metadata table: one row per collection."""
    return f"""CREATE TABLE IF NOT EXISTS {quote(META_TABLE)} (
  `name` varchar(64) NOT NULL,
  `dimension` int NOT NULL,
  `distance` varchar(16) NOT NULL,
  `spec` varchar(512),
  `space` varchar(1024),
  `provider` json,
  `columns` json,
  `index_type` varchar(32),
  `index_params` json,
  `fulltext_parser` varchar(16),
  `obembed_version` varchar(32),
  `engine_version` varchar(128),
  `schema_version` int NOT NULL,
  `created_at` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  `updated_at` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`name`)
) DEFAULT CHARSET = utf8mb4"""


# ---------------------------------------------------------------------------------------------- side tables
class Executes(Protocol):
    """What runs SQL here: a :class:`~obembed.store.Store` or its session."""

    def execute(self, sql: str, params: Sequence[Any] | None = None, *, what: str = "query", fetch: bool = True,
                retry: bool = True) -> tuple[list[tuple[Any, ...]], int]: ...


def table_exists(db: Executes, table: str, what: str) -> bool:
    """Whether ``table`` exists in the current database. ``SHOW TABLES LIKE`` answers at once on a reopened
    engine, and its ``_`` is a wildcard, so the names it returns are compared (case aside) to ``table``."""
    rows, _ = db.execute("SHOW TABLES LIKE %s", (table,), what=f"find {what}")
    return any(str(r[0]).lower() == table.lower() for r in rows)


def ensure_table(db: Executes, table: str, ddl: str, what: str) -> bool:
    """Create one of obembed's side tables (metadata, migrations, AI models) with ``ddl`` when it is missing;
    True when it did. DDL only when missing: a reopened engine was seen to leave ``CREATE TABLE IF NOT EXISTS``
    on an existing table waiting for minutes, while reads answer at once (and opening stays cheaper)."""
    if table_exists(db, table, what):
        return False
    db.execute(ddl, what=f"create {what}", fetch=False)
    return True
