"""``hf:`` — raw transformers (``AutoTokenizer`` + ``AutoModel``) with the right pooling per model.

The guide's snippet takes the CLS token and stops; this reproduces sentence-transformers exactly when the
folder has ``modules.json`` (pooling mode, Normalize, ``max_seq_length``, prompts), else uses a family table
(CLS for BGE, mask-weighted mean for MiniLM/E5/GTE, last token for Qwen3-style), and L2-normalises.
Inputs are sorted by token length and batched by a padded-token budget (:func:`._batching.run_sorted`, as
``st:``); float32 on CPU with the thread rule of :mod:`._threads` (``threads=``, ``OBEMBED_THREADS``, else the
free cores, re-measured between batches). ``sparse=true``: the model's BGE-M3 sparse head (``sparse_linear.pt``)
gives lexical weights from the same last hidden states (:mod:`.bge_m3`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from ..errors import ConfigError, MissingDependencyError
from ..types import Kind, Vectors
from ._local import (
    LOCAL_POOLINGS,
    LocalModelConfig,
    LocalProvider,
    hub_error,
    hub_offline,
    pick_device,
    quiet_transformers,
    read_model_config,
    resolve_model,
)
from .base import l2_normalize
from .bge_m3 import SparseHead, SparseHeadMixin
from .sparse import SparseVector

__all__ = ["POOLINGS", "TransformersProvider", "pool"]

log = logging.getLogger(__name__)

POOLINGS = LOCAL_POOLINGS
"""The one pooling list (:data:`obembed.providers._local.LOCAL_POOLINGS`), re-exported."""


def pool(hidden: Any, mask: Any, mode: str) -> Any:
    """Pool token states ``(b, t, h)`` with attention ``mask`` ``(b, t)`` into ``(b, h)`` (torch tensors)."""
    import torch

    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode in ("mean", "mean_sqrt_len"):
        summed = (hidden * m).sum(1)
        n = m.sum(1).clamp(min=1e-9)
        return summed / (n.sqrt() if mode == "mean_sqrt_len" else n)
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(1).values
    if mode == "lasttoken":
        # the last position whose mask is 1: right and left padding alike
        positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0).expand_as(mask)
        last = (positions * mask).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ConfigError(f"pooling {mode!r} is not one of {POOLINGS}")


class TransformersProvider(SparseHeadMixin, LocalProvider):
    """raw transformers AutoModel + the model's own pooling, local."""

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_seq_length: int | None = None,
        token_budget: int = 2048,
        trust_remote_code: bool = False,
        threads: int | str | None = None,
        sparse: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if not isinstance(sparse, bool | str) or sparse == "":
            raise ConfigError(f"sparse={sparse!r}: use sparse=true (the model's sparse_linear.pt) or the path "
                              "of a sparse head file")
        self.sparse = sparse
        self.options.update(sparse=sparse or None)
        self.options.update(threads=threads)  # checked at first use (resolve_threads); never changes the vectors
        if pooling is not None and pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r} is not one of {POOLINGS}")
        self.device = device or self.settings.device
        self._pooling_opt = pooling
        self._normalize_opt = normalize
        self._max_len_opt = max_seq_length
        self.token_budget = int(token_budget)
        self.trust_remote_code = trust_remote_code
        self.options.update(pooling=pooling, normalize=normalize, max_seq_length=max_seq_length)

    @cached_property
    def _loaded(self) -> tuple[Any, Any, LocalModelConfig, str]:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError("transformers", "st", "hf: models") from exc
        path = resolve_model(self.model)
        device = pick_device(self.device)
        quiet_transformers()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=hub_offline(),
                                                      trust_remote_code=self.trust_remote_code)
            model = AutoModel.from_pretrained(path, local_files_only=hub_offline(), dtype=torch.float32,
                                              trust_remote_code=self.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise hub_error(self.model, exc) from exc
        model.eval().to(device)
        cfg = read_model_config(path, self.model) if _is_dir(path) else _hub_config(path, self.model)
        if cfg.dense_layers:
            raise ConfigError(f"{self.model} has Dense modules after pooling; load it with st: instead of hf:")
        if self._pooling_opt:
            cfg.pooling = self._pooling_opt
        if self._normalize_opt is not None:
            cfg.normalize = bool(self._normalize_opt)
        elif cfg.source != "modules.json":
            cfg.normalize = True
        max_len = self._max_len_opt or cfg.max_seq_length
        model_max = getattr(model.config, "max_position_embeddings", None)
        tok_max = tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None
        max_len = max_len or tok_max or model_max or 512
        if model_max and max_len > model_max:
            max_len = model_max
        cfg.max_seq_length = int(max_len)
        if cfg.pooling == "lasttoken" and tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.pooling = cfg.pooling
        self.normalized = cfg.normalize
        self.max_input_tokens = cfg.max_seq_length
        self.query_prefix = cfg.query_prefix
        self.document_prefix = cfg.document_prefix
        self._dimension = int(model.config.hidden_size)
        if self.sparse:
            from .bge_m3 import find_sparse_head

            self.__dict__["_head"] = SparseHead(find_sparse_head(self.sparse, self.model, path),
                                                int(model.config.hidden_size), tokenizer,
                                                int(model.config.vocab_size), device)
        log.debug("hf:%s pooling=%s normalize=%s max_len=%s (%s)", self.model, cfg.pooling, cfg.normalize,
                  max_len, cfg.source)
        return tokenizer, model, cfg, device

    def _sparse_head(self) -> SparseHead | None:
        if not self.sparse:
            return None
        self._loaded  # noqa: B018 - loads the model and the head
        head: SparseHead = self.__dict__["_head"]
        return head

    def _ensure_loaded(self) -> tuple[Any, Any, LocalModelConfig, str]:
        return self._loaded

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (callers on other threads copy it: fast tokenizers are not thread-safe)."""
        return self._loaded[0]

    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]:
        return self.count_with(self._loaded[0], self.prefixed(texts, kind))

    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        return self.embed_many(items, kind=kind, token_counts=self.count_tokens(items, kind=kind))

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        return self._run(texts, kind, token_counts, None)[0]

    def _dense_and_sparse(self, texts: Sequence[str], kind: Kind, token_counts: Sequence[int]
                          ) -> tuple[Vectors, list[SparseVector]]:
        return self._run(texts, kind, token_counts, self._require_head())

    def _run(self, texts: Sequence[str], kind: Kind, token_counts: Sequence[int], head: SparseHead | None
             ) -> tuple[Vectors, list[SparseVector]]:
        """Dense vectors (and, with ``head``, lexical weights from the same last hidden states)."""
        import torch

        from ._batching import run_sorted

        tokenizer, model, cfg, device = self._loaded
        self.apply_threads()
        sparse: list[SparseVector] = [{} for _ in texts] if head is not None else []
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        max_len = cfg.max_seq_length or 512
        lengths = [min(c, max_len) for c in token_counts]

        def encode(idx: list[int]) -> Any:
            with self._tok_lock:
                enc = tokenizer([prefix + texts[i] for i in idx], padding=True, truncation=True,
                                max_length=max_len, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state
                pooled = pool(hidden, enc["attention_mask"], cfg.pooling)
            if head is not None:
                for i, w in zip(idx, head.weights(hidden, enc["input_ids"], enc["attention_mask"]), strict=True):
                    sparse[i] = w
            vecs = pooled.float().cpu().numpy()
            return l2_normalize(vecs) if cfg.normalize else vecs

        # longest first (the memory peak up front); a batch's padded size within token_budget, <= batch_size * 4
        return run_sorted(lengths, encode, dimension=self._dimension, token_budget=self.token_budget,
                          max_items=self.batch_size * 4, before_batch=self.apply_threads), sparse


def _is_dir(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_dir()


def _hub_config(repo_id: str, name: str) -> LocalModelConfig:
    """For hub ids: the model's sentence-transformers files, fetched the way the model was (see
    :func:`._local.hub_config_folder`), else the family table."""
    try:
        from ._local import hub_config_folder

        folder = hub_config_folder(repo_id)
    except Exception as exc:
        log.debug("no sentence-transformers config for %s (%s); using the family table", name, exc)
        from ._local import family_config

        return family_config(name)
    return read_model_config(folder, name)  # a bad modules.json / pooling config is a ConfigError
