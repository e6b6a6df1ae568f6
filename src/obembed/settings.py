"""Configuration, in one place: :class:`Settings` is the one reader of the ``OBEMBED_*`` variables.

Precedence, highest first: CLI flags > keyword arguments > environment (``OBEMBED_*``) > ``.env`` > defaults.

A plain class (no pydantic at import time): building it is on the path of every first vector, and
pydantic-settings cost ~0.2 s of CPU to import there (docs/performance.md, "Start-up"). Every field is read
from ``OBEMBED_<FIELD>`` (any case), then from a ``.env`` file in the working folder, else its default; a value
that does not parse is a :class:`~obembed.errors.ConfigError` naming the variable and what it takes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["DEFAULT_MODEL", "FIELDS", "Settings", "get_settings"]

DEFAULT_MODEL = "st:all-MiniLM-L6-v2"
ENV_PREFIX = "OBEMBED_"
TruncateName = Literal["truncate", "error", "chunk"]


@dataclass(frozen=True)
class Field:
    """One setting: its default, how a text value parses (raising ``ValueError`` with what it takes), its meaning."""

    default: Any
    parse: Callable[[str], Any]
    description: str


def _text(raw: str) -> str:
    return raw


def _number(kind: type[int] | type[float], *, low: float, strict: bool = False) -> Callable[[str], Any]:
    what = "an integer" if kind is int else "a number"
    bound = f"> {low:g}" if strict else f">= {low:g}"

    def parse(raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except (TypeError, ValueError):
            raise ValueError(f"takes {what} {bound}") from None
        if value != value or value < low or (strict and value == low):  # NaN, or out of range
            raise ValueError(f"takes {what} {bound}")
        return value

    return parse


def _choice(*names: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in names:
            raise ValueError(f"takes one of {', '.join(names)}")
        return value

    return parse


def _secret(raw: str) -> SecretStr:
    from pydantic import SecretStr  # only when a DSN is configured

    return SecretStr(raw)


def _threads(raw: str) -> str:
    value = raw.strip().lower()
    if value in ("", "auto"):
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise ValueError("is not a number; use a positive integer or 'auto'") from None
    if n < 1:
        raise ValueError("must be at least 1 (or 'auto')")
    return str(n)


FIELDS: dict[str, Field] = {
    "model": Field(DEFAULT_MODEL, _text, "default provider spec"),
    "db_path": Field("./obembed.db", _text, "folder of the embedded seekdb"),
    "engine_idle": Field(0.0, _number(float, low=0), "keep the embedded engine warm this many idle seconds "
                         "after a command (0: off); see `obembed engine`"),
    "dsn": Field(None, _secret, "mysql://user:pass@host:port/db for a seekdb server / OceanBase"),
    "device": Field(None, _text, "torch device for local models (cpu, cuda, mps); auto when unset"),
    "truncate": Field("truncate", _choice("truncate", "error", "chunk"), "policy for over-long inputs"),
    "batch_size": Field(32, _number(int, low=1), "texts per provider batch"),
    "timeout": Field(60.0, _number(float, low=0, strict=True), "HTTP timeout in seconds for remote providers"),
    "max_retries": Field(5, _number(int, low=0), "retries of a failed remote request"),
    "cache_dir": Field(None, _text, "where derived artefacts (ONNX exports) are cached"),
    "fast_start": Field("auto", _text, "the verified ONNX fast path of obembed.load for local st:/hf: models on "
                        "the CPU: auto (use the export, make it when missing), cached (only an existing export), "
                        "off (always torch)"),
    "threads": Field("auto", _threads, "threads of a local model: a positive integer, or auto (the measured "
                     "rule of docs/performance.md)"),
    "ingest_write_delay": Field(0.0, _number(float, low=0), "test hook: seconds to sleep before each ingest write"),
    "ray_block_marks": Field(None, _text, "test hook: a file where each Ray embedding actor appends its pid per "
                             "block it holds"),
}
"""Every setting; ``OBEMBED_<NAME>`` sets it (the table in the README lists the user-facing ones)."""


def _dotenv(path: str = ".env") -> dict[str, str]:
    """The ``OBEMBED_*`` entries of a ``.env`` file in the working folder (keys lower-cased); {} without one."""
    if not os.path.isfile(path):
        return {}
    from dotenv import dotenv_values

    return {k.lower(): v for k, v in dotenv_values(path).items() if v is not None}


def _read_environ(environ: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in environ.items() if k[:len(ENV_PREFIX)].upper() == ENV_PREFIX}


class Settings:
    """obembed settings; every field can be set as ``OBEMBED_<FIELD>`` in the environment (or ``.env``).

    ``Settings(fast_start="off")`` overrides a field by keyword (a string is parsed like the variable; any other
    value is taken as given). The environment and ``.env`` are read once, when the object is built
    (``_environ=`` / ``_env_file=`` name others, for tests).
    """

    model: str
    db_path: str
    engine_idle: float
    dsn: SecretStr | None
    device: str | None
    truncate: TruncateName
    batch_size: int
    timeout: float
    max_retries: int
    cache_dir: str | None
    fast_start: str
    threads: str
    ingest_write_delay: float
    ray_block_marks: str | None

    def __init__(self, *, _environ: Mapping[str, str] | None = None, _env_file: str | None = ".env",
                 **values: Any) -> None:
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            from .errors import ConfigError

            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        env = _read_environ(os.environ if _environ is None else _environ)
        dotenv = _dotenv(_env_file) if _env_file else {}
        for name, spec in FIELDS.items():
            key = (ENV_PREFIX + name).lower()
            if name in values:
                value, source = values[name], f"{name}="
            elif key in env:
                value, source = env[key], ENV_PREFIX + name.upper()
            elif key in dotenv:
                value, source = dotenv[key], f"{ENV_PREFIX}{name.upper()} (.env)"
            else:
                object.__setattr__(self, name, spec.default)
                continue
            if isinstance(value, str):
                try:
                    value = spec.parse(value)
                except ValueError as exc:
                    from .errors import ConfigError

                    shown = "(hidden)" if name == "dsn" else repr(value)
                    raise ConfigError(f"{source} {shown}: {name} {exc}") from None
            elif name == "dsn" and value is not None and not hasattr(value, "get_secret_value"):
                value = _secret(str(value))
            object.__setattr__(self, name, value)

    @property
    def fast_start_mode(self) -> Literal["auto", "cached", "off"]:
        """:attr:`fast_start` normalised (``0``/``false``/``no``/``never`` mean off; unknown values mean auto)."""
        mode = self.fast_start.strip().lower()
        if mode in ("0", "off", "false", "no", "never", "torch"):
            return "off"
        return "cached" if mode == "cached" else "auto"

    @property
    def cache_base(self) -> Path:
        """The folder of obembed's derived artefacts: :attr:`cache_dir`, else ``$XDG_CACHE_HOME/obembed``, else
        ``~/.cache/obembed`` (ONNX exports live in ``<base>/onnx``, measured speeds in ``<base>``)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        xdg = os.environ.get("XDG_CACHE_HOME")
        return Path(xdg) / "obembed" if xdg else Path.home() / ".cache" / "obembed"

    @property
    def threads_fixed(self) -> int | None:
        """:attr:`threads` as a number when fixed, None for ``auto``."""
        return None if self.threads == "auto" else int(self.threads)

    def as_dict(self) -> dict[str, Any]:
        """Every field and its value (the DSN stays a ``SecretStr``: printing it shows no password)."""
        return {name: getattr(self, name) for name in FIELDS}

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from env and .env (cached; tests build their own ``Settings``)."""
    return Settings()
