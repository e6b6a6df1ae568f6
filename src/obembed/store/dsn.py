"""DSNs: ``mysql://user:pass@host:port/db`` parsed into PyMySQL arguments, and redacted for messages."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from ..errors import ConfigError, redact
from . import schema

__all__ = ["DEFAULT_DATABASE", "is_dsn", "parse_dsn", "redact_dsn"]

DEFAULT_DATABASE = "obembed"


def is_dsn(target: str) -> bool:
    """A connect target with ``://`` is a DSN; anything else is a folder path."""
    return "://" in target


def redact_dsn(dsn: str) -> str:
    """``dsn`` fit for reprs, logs and messages: the netloc rebuilt from its parts as ``user:***@host:port``.

    Built with :func:`urllib.parse.urlsplit` (which splits the userinfo at the *last* ``@``), so OceanBase
    users such as ``user@tenant`` or ``user@tenant#cluster`` and passwords holding ``@`` or ``:`` are handled.
    """
    try:
        parts = urlsplit(_escape_hash(dsn))
        host = parts.hostname or ""
        port = parts.port
        user = parts.username
        has_password = parts.password is not None
    except ValueError:
        return redact(dsn)
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    if user is not None or has_password:
        netloc = f"{user or ''}{':***' if has_password else ''}@{netloc}"
    out = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return redact(out)  # the query too (a password=... option, should anyone add one)


def _escape_hash(dsn: str) -> str:
    """A DSN has no fragment: a ``#`` belongs to the login (OceanBase ``user@tenant#cluster``) or the password."""
    return dsn.replace("#", "%23")


def parse_dsn(dsn: str) -> dict[str, Any]:
    """``mysql://user:pass@host:port/db?charset=...`` → PyMySQL connect arguments (+ ``database``)."""
    try:
        parts = urlsplit(_escape_hash(dsn))
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket: mysql://u:p@[::1/x
        raise ConfigError(f"DSN {redact_dsn(dsn)!r} is not a valid URL ({exc}); use mysql://user:pass@host:2881/db "
                          "(an IPv6 host in brackets: mysql://user:pass@[::1]:2881/db)") from None
    if parts.scheme.lower() not in ("mysql", "mysql+pymysql", "oceanbase", "seekdb"):
        raise ConfigError(
            f"DSN {redact_dsn(dsn)!r}: scheme {parts.scheme!r} is not supported; use mysql://user:pass@host:2881/db"
        )
    if not parts.hostname:
        raise ConfigError(f"DSN {redact_dsn(dsn)!r} has no host; use mysql://user:pass@host:2881/db")
    try:
        port = parts.port or 2881
    except ValueError as exc:
        raise ConfigError(f"DSN {redact_dsn(dsn)!r} has a bad port; use mysql://user:pass@host:2881/db") from exc
    db = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
    schema.check_identifier(db, "database name in the DSN")
    opts: dict[str, Any] = {
        "host": parts.hostname,
        "port": port,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": db,
    }
    q = parse_qs(parts.query)
    if "connect_timeout" in q:
        try:
            opts["connect_timeout"] = float(q["connect_timeout"][0])
        except ValueError:
            raise ConfigError(f"DSN {redact_dsn(dsn)!r}: connect_timeout must be a number of seconds") from None
    if "unix_socket" in q:  # a seekdb on this machine by its socket: mysql://root@localhost/db?unix_socket=/x.sock
        opts["unix_socket"] = q["unix_socket"][0]
    unknown = set(q) - {"connect_timeout", "unix_socket"}
    if unknown:
        raise ConfigError(f"DSN {redact_dsn(dsn)!r}: unknown option(s) {sorted(unknown)}; known: connect_timeout, "
                          "unix_socket")
    return opts
