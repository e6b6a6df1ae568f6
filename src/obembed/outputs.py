"""Files obembed writes (``--output``, ``--plot``, ``--out``): checked before any work, so a typo in a path is a
one-line error at once, not a traceback after the model ran."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError

__all__ = ["PLOT_SUFFIXES", "check_output", "write_error"]

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
"""The file types plots are saved as (matplotlib picks the format from the suffix)."""


def check_output(path: str | os.PathLike[str], *, what: str = "output", suffixes: Sequence[str] = ()) -> Path:
    """``path`` as a :class:`Path` if a file can be written there, else :class:`ConfigError` saying why and what to
    do: a suffix not in ``suffixes`` (when given), a folder, a missing or read-only parent folder."""
    if "\x00" in os.fspath(path):
        raise ConfigError(f"{what} {str(path)!r:.200} is not a usable path (it contains a NUL character)")
    try:
        return _check_output(Path(path), path, what, suffixes)
    except (ValueError, OSError) as exc:  # a NUL in the path, a name the OS cannot even look at
        raise ConfigError(f"{what} {str(path)!r:.200} is not a usable path ({exc})") from None


def _check_output(p: Path, path: str | os.PathLike[str], what: str, suffixes: Sequence[str]) -> Path:
    if suffixes and p.suffix.lower() not in suffixes:
        got = f"a {p.suffix!r} file" if p.suffix else "no file type"
        raise ConfigError(f"{what} {str(path)!r}: {got}; use one of {', '.join(suffixes)} (e.g. "
                          f"{p.with_suffix(suffixes[0]).name!r})")
    if p.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a folder; give a file name inside it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{what} {str(path)!r}: the folder {str(parent)!r} does not exist; create it first "
                          f"(mkdir -p {parent}) or write somewhere else")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{what} {str(path)!r}: no permission to write there; choose a writable folder")
    return p


def write_error(exc: OSError, path: str | os.PathLike[str], what: str = "output") -> ConfigError:
    """The error to raise when writing ``path`` failed all the same (disk full, removed meanwhile ...)."""
    return ConfigError(f"{what} {str(path)!r} could not be written: {exc.strerror or exc}")
