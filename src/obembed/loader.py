"""``obembed.load``: a spec becomes a provider, through the fastest path that gives the same vectors.

This is the one place that decides between torch and the verified fp32 ONNX export of a local model;
the CLI, the server, eval and the benchmarks all call :func:`load`.

The rule (:func:`choose_runtime`):

* ``runtime="torch"``: the spec as written (``st:``/``hf:`` run torch).
* ``runtime="onnx"``: the verified fp32 export, made if missing; an error says why when it can't be used.
* ``runtime=None`` (``"auto"``): the export for a local ``st:``/``hf:`` model on the CPU when every option
  leaves the vectors unchanged and the export reproduces torch (cosine >= 0.9999 on the probe set, checked
  when it was made); torch on a GPU, for an option that changes the vectors, for a model the export can't
  run (Dense layers, remote code), or with ``OBEMBED_FAST_START=off``. ``OBEMBED_FAST_START=cached`` uses
  an existing export only. Any failure of the fast path falls back to torch (logged).

The provider says which path it took: ``provider.runtime`` (``torch``, ``onnx-fp32``, ``http`` ...). The
fast path keeps the ``st:``/``hf:`` vector space, so collections written by either path stay one space.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .errors import ConfigError, ObembedError
from .settings import Settings, get_settings

if TYPE_CHECKING:
    from .providers.base import Provider

__all__ = ["Runtime", "RuntimeChoice", "choose_runtime", "gpu_present", "load"]

log = logging.getLogger(__name__)

Runtime: TypeAlias = Literal["auto", "torch", "onnx"]
RUNTIMES = ("auto", "torch", "onnx")

_SAME_VECTOR_OPTIONS = frozenset({
    "device", "truncate", "batch_size", "threads", "token_budget", "max_seq_length", "settings",
    "sorted_batching", "normalize", "trust_remote_code",
})
"""Options the ONNX path honours identically; any other option (``truncate_dim``, ``pooling``, ``precision``,
``prompt_name`` ...) may change the vectors, so it keeps the spec's own backend."""


@dataclass(frozen=True)
class RuntimeChoice:
    """What :func:`choose_runtime` decided: ``onnx`` (the fast path) or ``spec`` (the spec as written), and why."""

    path: Literal["onnx", "spec"]
    reason: str
    create_export: bool = False


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA (or WSL) GPU, without importing torch."""
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/dxg")


def choose_runtime(
    spec: str,
    options: dict[str, Any] | None = None,
    *,
    runtime: str | None = None,
    settings: Settings | None = None,
    gpu: bool | None = None,
) -> RuntimeChoice:
    """Decide the path for ``spec`` with ``options`` (pure: reads no model files; ``gpu`` defaults to the machine)."""
    from .registry import parse_spec

    settings = settings or get_settings()
    wanted = (runtime or "auto").lower()
    if wanted not in RUNTIMES:
        raise ConfigError(f"runtime={runtime!r} is not one of {', '.join(RUNTIMES)}")
    parsed = parse_spec(spec)
    if wanted == "torch":
        if parsed.backend == "onnx":
            raise ConfigError(f"{spec} runs onnxruntime; for torch use st:{parsed.model} or hf:{parsed.model}")
        return RuntimeChoice("spec", "runtime='torch' asked for")
    if parsed.backend not in ("st", "hf"):
        if wanted == "onnx" and parsed.backend != "onnx":
            raise ConfigError(f"runtime='onnx' needs a local st:/hf: model; {parsed.backend}: is not one")
        return RuntimeChoice("spec", f"{parsed.backend}: has one runtime")
    opts = {**parsed.options, **{k: v for k, v in (options or {}).items() if v is not None}}
    device = opts.get("device") or settings.device
    reason = ""
    if set(opts) - _SAME_VECTOR_OPTIONS:
        reason = f"option(s) {sorted(set(opts) - _SAME_VECTOR_OPTIONS)} may change the vectors"
    elif opts.get("trust_remote_code"):
        reason = "trust_remote_code: the model's own code runs in torch"
    elif device not in (None, "cpu"):
        reason = f"device={device!r}: torch runs on the accelerator"
    elif device is None and (gpu_present() if gpu is None else gpu):
        reason = "a GPU is present: torch is faster there"
    if reason:
        if wanted == "onnx":
            raise ConfigError(f"runtime='onnx' can't give {spec}'s vectors: {reason}; use runtime='torch'")
        return RuntimeChoice("spec", reason)
    mode = settings.fast_start_mode
    if wanted == "auto" and mode == "off":
        return RuntimeChoice("spec", "OBEMBED_FAST_START=off")
    return RuntimeChoice("onnx", "local model on the CPU", create_export=wanted == "onnx" or mode == "auto")


def load(
    spec: str | None = None,
    *,
    runtime: str | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> Provider:
    """Build a provider from a spec such as ``st:BAAI/bge-m3`` or ``dashscope:text-embedding-v3?dimensions=512``.

    With no spec, the configured default (``OBEMBED_MODEL``, else ``st:all-MiniLM-L6-v2``, offline).
    Keyword options override the spec's query-string options. ``runtime``: ``None``/``"auto"`` (the fastest
    path with the same vectors), ``"torch"`` or ``"onnx"``; ``provider.runtime`` says which was taken.
    """
    from .registry import default_registry

    settings = settings or get_settings()
    resolved = spec or settings.model
    choice = choose_runtime(resolved, options, runtime=runtime, settings=settings)
    if choice.path == "onnx":
        try:
            return _fast_provider(resolved, options, settings=settings, create=choice.create_export)
        except ObembedError as exc:
            if runtime == "onnx":
                raise
            log.info("fast start unavailable for %s (%s: %s); using torch", resolved, type(exc).__name__, exc)
        except Exception as exc:  # the torch path always works: fall back to it
            if runtime == "onnx":
                raise ConfigError(f"runtime='onnx' failed for {resolved}: {type(exc).__name__}: {exc}") from exc
            log.info("fast start unavailable for %s (%s: %s); using torch", resolved, type(exc).__name__, exc)
    else:
        log.debug("load %s through its own backend: %s", resolved, choice.reason)
    return default_registry().create(resolved, settings=settings, **options)


def _fast_provider(spec: str, options: dict[str, Any], *, settings: Settings, create: bool) -> Provider:
    """The fp32 ``onnx:`` provider standing in for a local ``st:``/``hf:`` spec (same vectors, same space)."""
    from .providers.onnx import FP32_MIN_COSINE, OnnxProvider, ensure_export, local_folder, read_facts
    from .registry import parse_spec

    parsed = parse_spec(spec)
    opts = {**parsed.options, **{k: v for k, v in options.items() if v is not None}}
    folder = local_folder(parsed.model)
    facts = read_facts(parsed.model, folder, max_seq_length=opts.get("max_seq_length"))  # Dense etc. refused
    if parsed.backend == "st" and facts.config.source != "modules.json":
        # sentence-transformers reads a folder without modules.json as mean pooling with no prompts,
        # whereas the family table (hf:/onnx:) may say CLS and prefixes: not the same vectors
        raise ConfigError(f"{folder} has no modules.json: st: and onnx: would read it differently")
    ensure_export(parsed.model, "fp32", cache_dir=settings.cache_dir, create=create,
                  max_seq_length=opts.get("max_seq_length"))
    kwargs = {k: v for k, v in opts.items() if k not in ("device", "sorted_batching", "trust_remote_code", "normalize")}
    # the same unit-length rule as the backend it stands in for: st: normalises unless normalize=False
    # (then only a Normalize module does); hf: follows the model's files unless told otherwise
    normalize = opts.get("normalize")
    if parsed.backend == "st":
        normalize = True if normalize is None or normalize else None
    provider = OnnxProvider(parsed.model, precision="fp32", export=False, settings=settings, normalize=normalize,
                            **kwargs)
    if provider.verification["min_cosine"] < FP32_MIN_COSINE:
        raise ConfigError(f"the ONNX export of {parsed.model} does not reproduce torch closely enough")
    provider.requested_spec = f"{parsed.backend}:{parsed.model}"
    return provider
