"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["echo_json", "load_provider", "model_option", "option_pairs", "provider_factory"]


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
                  purpose: str = "oneshot") -> Any:
    """Build the provider for a command. ``purpose`` is ``oneshot`` (embed/search/similarity: fast start
    matters) or ``bulk`` (ingest/eval/serve: throughput matters).

    For a local ``st:``/``hf:`` model on the CPU, both purposes get the verified fp32 ONNX export of the same
    model when it reproduces torch (cosine >= 0.9999, checked when the export was made): the same vector
    space, a first vector in ~0.5 s instead of ~10 s (no torch import), and the faster path for long jobs on
    this machine (docs/performance.md). ``OBEMBED_FAST_START=0`` turns it off, ``cached`` uses an existing
    export only. Anything else, or any failure, falls back to the spec as written.
    """
    import obembed

    from ..settings import get_settings

    opts = dict(options) if isinstance(options, dict) else option_pairs(options)
    settings = get_settings()
    resolved = spec or settings.model
    if purpose in ("oneshot", "bulk"):
        from ..providers.onnx import fast_provider

        fast = fast_provider(resolved, opts, purpose=purpose, settings=settings)
        if fast is not None:
            return fast
    return obembed.load(resolved, settings=settings, **opts)


def provider_factory(purpose: str = "oneshot") -> Callable[..., Any]:
    """A ``provider_factory(spec, **options)`` for :func:`obembed.store.connect` that takes the fast path too."""

    def factory(spec: str, **options: Any) -> Any:
        return load_provider(spec, options, purpose=purpose)

    return factory


def echo_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
