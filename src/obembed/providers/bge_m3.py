"""BGE-M3-style lexical weights from a model's own sparse head (``sparse_linear.pt``), for ``st:`` and ``hf:``.

A BGE-M3 folder ships ``sparse_linear.pt``: the state dict of a ``Linear(hidden, 1)``. The lexical weights of a
text are, as the model defines them (and FlagEmbedding's ``BGEM3FlagModel`` computes them)::

    w_t = ReLU(head(last_hidden_state_t))        one weight per token
    weights[id] = max(w_t for tokens t with that id, w_t > 0)
    the tokenizer's cls / eos / pad / unk ids dropped

Turn it on with the option ``sparse=true`` (``st:BAAI/bge-m3?sparse=true``, ``hf:./bge-m3?sparse=true``,
``-o sparse=true``); ``sparse=PATH`` reads the head from another file. The provider then implements
:class:`~obembed.providers.sparse.SparseEmbedder` and ``embed_both`` (dense and sparse from one forward pass,
what ingest uses when the collection has a sparse column). Dense vectors are the same with or without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelNotFoundError
from ..types import EmbedResult, Kind, TruncatePolicy, Vectors
from .base import validate_texts
from .sparse import SparseVector

__all__ = ["SPARSE_HEAD_FILE", "SparseHead", "SparseHeadMixin", "find_sparse_head", "lexical_weights"]

SPARSE_HEAD_FILE = "sparse_linear.pt"


def find_sparse_head(option: bool | str, model: str, resolved: str) -> Path:
    """The head file for the ``sparse`` option: ``True`` -> ``sparse_linear.pt`` in the model's folder (or, for a
    hub id, the hub's copy, fetched like the model under ``HF_HUB_OFFLINE``); a string -> that file."""
    if isinstance(option, str):
        p = Path(os.path.expanduser(option))
        if not p.is_file():
            raise ModelNotFoundError(f"sparse={option!r}: no such file; pass the path of a sparse head "
                                     f"({SPARSE_HEAD_FILE}, a Linear(hidden, 1) state dict) or sparse=true")
        return p
    folder = Path(resolved)
    if folder.is_dir():
        p = folder / SPARSE_HEAD_FILE
        if not p.is_file():
            raise ConfigError(f"{model} has no sparse head: {SPARSE_HEAD_FILE} is not in {folder} (BGE-M3 folders "
                              "ship it); drop sparse=true, or pass sparse=PATH of a head file")
        return p
    from ._local import hub_error, hub_offline

    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(resolved, SPARSE_HEAD_FILE, local_files_only=hub_offline()))
    except Exception as exc:
        if type(exc).__name__ == "EntryNotFoundError":
            raise ConfigError(f"{model} has no {SPARSE_HEAD_FILE} on the hub; drop sparse=true") from exc
        raise hub_error(model, exc) from exc


class SparseHead:
    """The loaded head: ``Linear(hidden, 1)`` plus the token ids it never weighs (cls/eos/pad/unk)."""

    def __init__(self, path: Path, hidden_size: int, tokenizer: Any, vocab_size: int, device: str = "cpu") -> None:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"the sparse head {path} could not be read ({type(exc).__name__}: {exc}); it must be "
                              "a torch state dict of Linear(hidden, 1)") from exc
        linear = torch.nn.Linear(hidden_size, 1)
        try:
            linear.load_state_dict(state)
        except Exception as exc:
            raise ConfigError(f"the sparse head {path} does not fit the model: it must be Linear({hidden_size}, 1) "
                              f"({str(exc).splitlines()[0][:200]})") from exc
        self.path = path
        self.linear = linear.float().eval().to(device)
        ids = {getattr(tokenizer, f"{name}_token_id", None) for name in ("cls", "eos", "pad", "unk")}
        self.drop_ids = sorted(int(i) for i in ids if i is not None)
        self.vocab_size = int(vocab_size)
        self._drop: Any = None

    def weights(self, hidden: Any, input_ids: Any, attention_mask: Any) -> list[SparseVector]:
        """One ``{token id: weight}`` per row of a batch: hidden ``(b, t, h)``, ids and mask ``(b, t)`` (torch)."""
        import torch

        with torch.inference_mode():
            w = torch.relu(self.linear(hidden.float())).squeeze(-1)
            if self._drop is None or self._drop.device != input_ids.device:
                self._drop = torch.tensor(self.drop_ids, dtype=input_ids.dtype, device=input_ids.device)
            keep = attention_mask.bool() & ~torch.isin(input_ids, self._drop)
            w = torch.where(keep, w, torch.zeros_like(w))
        return lexical_weights(w.cpu().numpy(), input_ids.cpu().numpy())


def lexical_weights(token_weights: np.ndarray, input_ids: np.ndarray) -> list[SparseVector]:
    """Max weight per token id, per row, weights > 0 only (``(b, t)`` arrays in, one dict per row out)."""
    b, t = token_weights.shape
    rows = np.repeat(np.arange(b, dtype=np.int64), t)
    ids = input_ids.reshape(-1).astype(np.int64)
    w = token_weights.reshape(-1).astype(np.float32)
    pos = w > 0
    rows, ids, w = rows[pos], ids[pos], w[pos]
    out: list[SparseVector] = [{} for _ in range(b)]
    if not len(w):
        return out
    order = np.lexsort((ids, rows))
    rows, ids, w = rows[order], ids[order], w[order]
    starts = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]) | (ids[1:] != ids[:-1])])
    top = np.maximum.reduceat(w, starts)
    for r, i, v in zip(rows[starts].tolist(), ids[starts].tolist(), top.tolist(), strict=True):
        out[r][i] = v
    return out


class SparseHeadMixin:
    """``sparse_dimension`` / ``embed_sparse`` / ``embed_both`` for a local provider with a sparse head.

    The provider implements ``_dense_and_sparse(texts, kind, token_counts) -> (vectors, sparse dicts)`` (one
    forward pass) and ``_sparse_head() -> SparseHead | None`` (None without ``sparse=``)."""

    spec: str

    def _sparse_head(self) -> SparseHead | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _dense_and_sparse(self, texts: Sequence[str], kind: Kind, token_counts: Sequence[int]
                          ) -> tuple[Vectors, list[SparseVector]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _require_head(self) -> SparseHead:
        head = self._sparse_head()
        if head is None:
            raise ConfigError(f"{self.spec} was loaded without its sparse head: load it with the option "
                              f"sparse=true (e.g. {self.spec}?sparse=true, or -o sparse=true) to get sparse vectors")
        return head

    @property
    def sparse_dimension(self) -> int:
        """The vocabulary size when the sparse head is on (token ids are the features), else 0."""
        head = self._sparse_head()
        return head.vocab_size if head is not None else 0

    def embed_sparse(self, items: Sequence[str], kind: Kind = "document") -> list[SparseVector]:
        """Lexical weights ``{token id: weight}``, one dict per text, in input order (one forward pass)."""
        self._require_head()
        texts = validate_texts(items)
        if not texts:
            return []
        counts = self.count_tokens(texts, kind=kind)  # type: ignore[attr-defined]
        return self._dense_and_sparse(texts, kind, counts)[1]

    def embed_both(self, items: Sequence[str], *, kind: Kind = "document",
                   truncate: TruncatePolicy | None = None) -> EmbedResult:
        """Dense vectors and lexical weights from one forward pass: an :class:`EmbedResult` whose
        ``extra["sparse"]`` holds one ``{token id: weight}`` per input (the accounting as :meth:`embed`)."""
        from .base import check_kind

        self._require_head()
        kind = check_kind(kind)
        texts = validate_texts(items)
        provider: Any = self
        if not texts:
            return EmbedResult(np.zeros((0, provider.dimension), np.float32), extra={"sparse": []})
        counts = provider.count_tokens(texts, kind=kind)
        over, seen = provider.account(counts, truncate or provider.truncate)
        vectors, sparse = self._dense_and_sparse(texts, kind, counts)
        vectors = provider.check_vectors(vectors, len(texts))
        return EmbedResult(vectors, truncated=over, n_tokens=sum(seen), token_counts=seen, extra={"sparse": sparse})
