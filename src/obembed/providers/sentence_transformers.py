"""``st:`` — local models through sentence-transformers (the guide's ``SentenceTransformer`` path).

* any hub name or local folder; the bundled ``all-MiniLM-L6-v2`` loads from its package with no network;
* device auto (cuda > mps > cpu) unless ``device=`` / ``OBEMBED_DEVICE``; float32 on CPU;
* ``encode_query`` / ``encode_document`` so a model's saved prompts (E5's ``query: `` ...) apply;
* ``truncate_dim`` slices then re-normalises (sentence-transformers alone would break unit length);
* inputs over ``max_seq_length`` are counted with the model's own tokenizer, never cut silently;
* ``sparse=true``: the model's BGE-M3 sparse head (``sparse_linear.pt``) gives lexical weights beside the dense
  vectors, from the same forward pass (:mod:`.bge_m3`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError
from ..types import Kind, Vectors
from ._local import (
    LocalProvider,
    canonical_pooling,
    document_prompt,
    hub_error,
    hub_offline,
    pick_device,
    quiet_transformers,
    resolve_model,
)
from .base import l2_normalize
from .bge_m3 import SparseHead, SparseHeadMixin
from .sparse import SparseVector

__all__ = ["SentenceTransformerProvider"]

log = logging.getLogger(__name__)


class SentenceTransformerProvider(SparseHeadMixin, LocalProvider):
    """sentence-transformers, local (any model name or folder)."""

    name = "st"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        truncate_dim: int | None = None,
        normalize: bool = True,
        max_seq_length: int | None = None,
        trust_remote_code: bool = False,
        threads: int | str | None = None,
        token_budget: int | None = None,
        sorted_batching: bool = True,
        sparse: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if not isinstance(sparse, bool | str) or sparse == "":
            raise ConfigError(f"sparse={sparse!r}: use sparse=true (the model's sparse_linear.pt) or the path "
                              "of a sparse head file")
        self.sparse = sparse
        self.options.update(sparse=sparse or None)
        # speed options (issue 9, see embed_many / docs/performance.md); they never change the vectors
        self.options.update(threads=threads, token_budget=token_budget,
                            sorted_batching=None if sorted_batching else False)
        if truncate_dim is not None and (not isinstance(truncate_dim, int) or truncate_dim < 1):
            raise ConfigError(f"truncate_dim={truncate_dim!r} must be a positive integer")
        self.device = device or self.settings.device
        self.truncate_dim = truncate_dim
        self.normalize = bool(normalize)
        self.normalized = self.normalize
        self._max_seq_length = max_seq_length
        self.trust_remote_code = trust_remote_code
        self.options.update(truncate_dim=truncate_dim, normalize=self.normalize,
                            max_seq_length=max_seq_length, trust_remote_code=trust_remote_code or None)

    @cached_property
    def st_model(self) -> Any:
        """The loaded ``SentenceTransformer`` (on first use)."""
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError("sentence-transformers", "st", "st: models") from exc
        path = resolve_model(self.model)
        device = pick_device(self.device)
        quiet_transformers()
        try:
            model = SentenceTransformer(
                path, device=device, trust_remote_code=self.trust_remote_code,
                local_files_only=hub_offline(), model_kwargs={"dtype": "float32"} if device == "cpu" else None,
            )
        except (OSError, ValueError) as exc:
            raise hub_error(self.model, exc) from exc
        except Exception as exc:  # the hub client raises its own tree (HfHubHTTPError, ...)
            if type(exc).__module__.startswith(("huggingface_hub", "requests", "httpx")):
                raise hub_error(self.model, exc) from exc
            raise
        if self._max_seq_length:
            model.max_seq_length = self._max_seq_length
        declared = model.get_embedding_dimension()
        full = int(declared) if declared else int(model.encode(["dimension probe"]).shape[1])
        if self.truncate_dim and self.truncate_dim > full:
            raise ConfigError(f"truncate_dim={self.truncate_dim} is larger than {self.model}'s dimension {full}")
        self._dimension = self.truncate_dim or full
        self.max_input_tokens = model.max_seq_length
        prompts = model.prompts or {}
        self.query_prefix = prompts.get("query", "") or ""
        self.document_prefix = document_prompt(prompts)
        modules = [type(m).__name__ for m in model]
        self.pooling = canonical_pooling(next((getattr(m, "pooling_mode", None) for m in model
                                               if type(m).__name__ == "Pooling"), None))
        if not self.normalize and "Normalize" in modules and not self.truncate_dim:
            self.normalized = True  # the model normalises by itself (a truncate_dim slice of it is not unit length)
        if self.sparse:
            from .bge_m3 import find_sparse_head

            first: Any = model[0]
            config = first.auto_model.config
            self.__dict__["_head"] = SparseHead(find_sparse_head(self.sparse, self.model, path),
                                                int(config.hidden_size), model.tokenizer, int(config.vocab_size),
                                                device)
        log.debug("loaded %s on %s (%s)", self.model, device, modules)
        return model

    def _sparse_head(self) -> SparseHead | None:
        if not self.sparse:
            return None
        self._ensure_loaded()
        head: SparseHead = self.__dict__["_head"]
        return head

    def _dense_and_sparse(self, texts: Sequence[str], kind: Kind, token_counts: Sequence[int]
                          ) -> tuple[Vectors, list[SparseVector]]:
        """Dense vectors and lexical weights from one ``encode`` per token-sorted batch (all its outputs)."""
        import torch

        from ._batching import DEFAULT_MAX_ITEMS, DEFAULT_TOKEN_BUDGET, run_sorted

        model = self._ensure_loaded()
        head = self._require_head()
        self.apply_threads()
        fn = model.encode_query if kind == "query" else model.encode_document
        limit = self.max_input_tokens or 512
        lengths = [min(int(c), limit) for c in token_counts]
        sparse: list[SparseVector] = [{} for _ in texts]

        def encode(idx: list[int]) -> np.ndarray:
            outs = fn([texts[i] for i in idx], batch_size=len(idx), output_value=None, convert_to_numpy=False,
                      show_progress_bar=False, normalize_embeddings=False)
            weights = head.weights(torch.stack([o["token_embeddings"] for o in outs]),
                                   torch.stack([o["input_ids"] for o in outs]),
                                   torch.stack([o["attention_mask"] for o in outs]))
            for i, w in zip(idx, weights, strict=True):
                sparse[i] = w
            dense: np.ndarray = torch.stack([o["sentence_embedding"] for o in outs]).float().cpu().numpy()
            return dense

        vecs = run_sorted(lengths, encode, dimension=self._dimension,
                          token_budget=int(self.options.get("token_budget") or DEFAULT_TOKEN_BUDGET),
                          max_items=DEFAULT_MAX_ITEMS, before_batch=self.apply_threads)
        return self._finish(vecs), sparse

    def _ensure_loaded(self) -> Any:
        return self.st_model

    @property
    def tokenizer(self) -> Any:
        return self.st_model.tokenizer

    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]:
        return self.count_with(self._ensure_loaded().tokenizer, self.prefixed(texts, kind))

    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        model = self._ensure_loaded()
        fn = model.encode_query if kind == "query" else model.encode_document
        vecs = fn(list(items), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False,
                  normalize_embeddings=False)
        vecs = np.asarray(vecs, dtype=np.float32)
        return self._finish(vecs)

    def _finish(self, vecs: np.ndarray) -> Vectors:
        if self.truncate_dim:
            vecs = vecs[:, : self.truncate_dim]
        if self.normalize:
            vecs = l2_normalize(vecs)
        return vecs

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        """Token-sorted batches across the whole input (see :mod:`._batching`), results in input order.

        sentence-transformers alone sorts by *character* length and only inside one ``encode()`` call; here
        the token counts the base class already made for truncation accounting order the whole input, and
        each ``encode()`` call gets one pre-sorted batch within a padded-token budget
        (option ``token_budget``, default 8192). ``sorted_batching=False`` restores one plain ``encode()`` call.
        """
        from ._batching import DEFAULT_MAX_ITEMS, DEFAULT_TOKEN_BUDGET, run_sorted

        model = self._ensure_loaded()
        self.apply_threads()
        if self.options.get("sorted_batching") is False:
            return self.embed_batch(texts, kind=kind)
        fn = model.encode_query if kind == "query" else model.encode_document
        limit = self.max_input_tokens or 512
        lengths = [min(int(c), limit) for c in token_counts]

        def encode(idx: list[int]) -> np.ndarray:
            batch = [texts[i] for i in idx]
            out: np.ndarray = fn(batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False,
                                 normalize_embeddings=False)
            return out

        vecs = run_sorted(lengths, encode, dimension=self._dimension,
                          token_budget=int(self.options.get("token_budget") or DEFAULT_TOKEN_BUDGET),
                          max_items=DEFAULT_MAX_ITEMS, before_batch=self.apply_threads)
        return self._finish(vecs)
