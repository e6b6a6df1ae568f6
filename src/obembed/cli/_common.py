"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..providers.base import Provider

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["echo_json", "load_provider", "model_option", "option_pairs"]


def model_option(f: F) -> F:
    """``--model SPEC`` and ``--option k=v`` (repeatable), the same on every command."""
    f = click.option(
        "-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
        help="Provider option, e.g. -o dimensions=512 -o device=cpu (repeatable).",
    )(f)
    return click.option(
        "-m", "--model", "model", default=None, metavar="SPEC", envvar="OBEMBED_MODEL",
        help="Provider spec BACKEND:MODEL (default: $OBEMBED_MODEL or st:all-MiniLM-L6-v2).",
    )(f)


def option_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("a=1", "b=x")`` -> ``{"a": 1, "b": "x"}`` with the same coercion as spec query strings."""
    from ..providers.base import coerce_option

    out: dict[str, Any] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{p!r} is not KEY=VALUE", param_hint="--option")
        out[key.strip()] = coerce_option(value.strip())
    return out


def load_provider(spec: str | None, options: tuple[str, ...] | dict[str, Any] = (), *,
                  purpose: str = "oneshot") -> Provider:
    """Build the provider for a command through :func:`obembed.load` (the library decides the runtime:
    the verified ONNX export of a local CPU model, else torch). ``purpose`` (``oneshot``/``bulk``) is kept
    for callers; both take the same path."""
    import obembed

    opts = dict(options) if isinstance(options, dict) else option_pairs(options)
    return obembed.load(spec, **opts)


def echo_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
