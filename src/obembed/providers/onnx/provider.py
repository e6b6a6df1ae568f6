"""The ``onnx:`` provider on top of the export and the runtime."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...types import EmbedResult, Kind, TruncatePolicy, Vectors
from ..base import Provider
from .export import ensure_export, precision_name
from .runtime import ModelFacts, Runner, local_folder, read_facts

__all__ = ["OnnxProvider"]

log = logging.getLogger(__name__)


class OnnxProvider(Provider):
    """onnxruntime export of a local st/hf model: fast start, same vectors (fp32) or int8."""

    name = "onnx"
    requested_spec: str | None = None
    """Set by the fast-start path: the st:/hf: spec this provider stands in for (same vectors, same space)."""

    def __init__(
        self,
        model: str,
        *,
        precision: str = "fp32",
        threads: int | str | None = None,
        max_seq_length: int | None = None,
        token_budget: int | None = None,
        normalize: bool | None = None,
        export: bool = True,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        device = kwargs.pop("device", None)
        if device not in (None, "cpu"):
            raise ConfigError(f"onnx: runs on the CPU; device={device!r} is not supported (use st: for {device})")
        super().__init__(model, **kwargs)
        from .._threads import resolve_threads

        # made now (the option is checked now), so the thread measurement's window runs while the model loads
        self._advisor = resolve_threads(threads)
        self.precision = precision_name(precision)
        self.runtime = f"onnx-{self.precision}"
        self._threads = threads
        self._max_len_opt = max_seq_length
        self.token_budget = int(token_budget) if token_budget else None
        self.allow_export = bool(export)
        self.cache_dir = cache_dir or self.settings.cache_dir
        self._normalize_opt = normalize
        self.options.update(precision=self.precision, max_seq_length=max_seq_length, normalize=normalize)
        if threads is not None:
            self.options["threads"] = threads
        facts = self._facts
        self._dimension = facts.dimension
        self.pooling = facts.config.pooling
        if normalize is not None:
            facts.normalize = bool(normalize)
        self.normalized = facts.normalize
        self.max_input_tokens = facts.max_seq_length
        self.query_prefix = facts.config.query_prefix
        self.document_prefix = facts.config.document_prefix

    @cached_property
    def _facts(self) -> ModelFacts:
        return read_facts(self.model, local_folder(self.model), max_seq_length=self._max_len_opt)

    @cached_property
    def _runner(self) -> Runner:
        path, manifest = ensure_export(self.model, self.precision, cache_dir=self.cache_dir,
                                       create=self.allow_export, max_seq_length=self._max_len_opt)
        self.export_manifest = manifest
        # the folder's own tokenizer.json first: the manifest records the path of the folder that made the
        # export, which may be another copy of the same files (or gone since)
        tok = self._facts.folder / "tokenizer.json"
        if not tok.exists():
            tok = Path(manifest.get("tokenizer") or tok)
        return Runner(path, self._facts, tok, self._threads, advisor=self._advisor)

    def load(self) -> OnnxProvider:
        """Export (if needed) and open the session now rather than on first use."""
        self._runner  # noqa: B018
        return self

    @property
    def verification(self) -> dict[str, Any]:
        """How the export compared with torch when it was made (min/mean cosine on the probe set)."""
        return dict(self._runner_manifest()["files"][self.precision]["verified"])

    def _runner_manifest(self) -> dict[str, Any]:
        self._runner  # noqa: B018
        return self.export_manifest

    @property
    def space(self) -> str:
        from .._local import local_space, provider_identity

        return local_space(self.model, self.pooling, self.normalized, self.dimension, self.precision,
                           query_prefix=self.query_prefix, document_prefix=self.document_prefix,
                           max_seq_length=self.max_input_tokens,
                           identity=provider_identity(self))

    # -------------------------------------------------------------- tokenise once
    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]:
        return [len(e.ids) for e in self._encode_full(texts, kind)]

    def _encode_full(self, texts: Sequence[str], kind: Kind) -> list[Any]:
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        batch = [prefix + t for t in texts] if prefix else list(texts)
        return self._runner.tok.encode_full(batch)

    def embed_texts(self, texts: Sequence[str], *, kind: Kind, truncate: TruncatePolicy) -> EmbedResult:
        """As :meth:`Provider.embed_texts`, tokenising each text once: the counts and the model input come from
        the same encodings."""
        encs = self._encode_full(texts, kind)
        over, seen = self.account([len(e.ids) for e in encs], truncate)
        vectors = self._embed_encodings(texts, kind, encs)
        return EmbedResult(vectors, truncated=over, n_tokens=sum(seen), token_counts=seen)

    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        texts = list(items)
        return self._embed_encodings(texts, kind, self._encode_full(texts, kind))

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        return self._embed_encodings(texts, kind, self._encode_full(texts, kind))

    def _embed_encodings(self, texts: Sequence[str], kind: Kind, full: Sequence[Any]) -> Vectors:
        from .._batching import DEFAULT_MAX_ITEMS, ONNX_TOKEN_BUDGET, run_sorted

        runner = self._runner
        encs = list(full)
        limit = runner.tok.max_len
        long_idx = [i for i, e in enumerate(encs) if len(e.ids) > limit]
        if long_idx:  # only the over-long ones are tokenised a second time, with the cut
            prefix = self.query_prefix if kind == "query" else self.document_prefix
            for i, e in zip(long_idx, runner.tok.encode_cut([prefix + texts[i] for i in long_idx]), strict=True):
                encs[i] = e
        lengths = [len(e.ids) for e in encs]
        # runner.session() per batch: the thread advisor re-measures the machine every few seconds of a long job
        return run_sorted(lengths, lambda idx: runner.embed([encs[i] for i in idx], runner.session()),
                          dimension=self._dimension,
                          token_budget=self.token_budget or ONNX_TOKEN_BUDGET, max_items=DEFAULT_MAX_ITEMS)
