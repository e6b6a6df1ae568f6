"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

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


def load_provider(spec: str | None, options: tuple[str, ...] = (), *, purpose: str = "oneshot") -> Any:
    """Build the provider for a command. ``purpose`` is ``oneshot`` (embed/search/similarity: fast start
    matters) or ``bulk`` (ingest/eval/serve: throughput matters)."""
    import obembed

    return obembed.load(spec, **option_pairs(options))


def echo_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
