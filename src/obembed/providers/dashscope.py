"""``dashscope-sdk:MODEL`` — DashScope's native text-embedding API through the ``dashscope`` package.

* ``text_type`` is ``query`` for :meth:`embed_query` / :meth:`embed_queries` and ``document`` for
  :meth:`embed_documents` (the compatible-mode endpoint cannot say which);
* ``dimensions`` (sent as the SDK's singular ``dimension``), ``output_type`` (``dense``; ``dense&sparse`` keeps the
  sparse vectors in ``EmbedResult.extra["sparse"]``, from the same requests; :meth:`embed_sparse` returns them,
  ``sparse`` alone gives only them), ``instruct``. With a sparse ``output_type`` the provider is a
  :class:`~obembed.providers.sparse.SparseEmbedder` (``embed_both`` for ingest); each ``sparse_embedding``
  entry (``{"index": token id, "value": weight, "token": text}``) is checked (ids ints below
  :data:`SPARSE_DIMENSION`, weights finite ≥ 0) before anything uses it;
* ``base_address`` is passed on every call (``region="intl"`` or a test server); the SDK's module globals are
  never touched;
* the SDK *returns* errors (``status_code != 200``): they are checked and mapped to the obembed error tree, and
  retried when transient (throttling, 5xx), since the SDK has no backoff of its own;
* results are placed by ``text_index``, counts and dimensions checked; 10 inputs per request (v3/v4), adapted
  when the server says "should not be larger than N".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import SecretStr

from ..errors import (
    ConfigError,
    MissingDependencyError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderResponseError,
    ProviderTimeoutError,
    redact,
)
from ..types import EmbedResult, Kind, TruncatePolicy, Vectors
from ._http import RemoteProvider, make_status_error
from ._preset import Preset
from .base import l2_normalize, validate_texts
from .openai_compat import dashscope_facts
from .sparse import SparseVector, check_sparse_output

__all__ = ["DASHSCOPE_BASE_ADDRESSES", "DASHSCOPE_NATIVE", "SPARSE_DIMENSION", "DashScopeSDKProvider"]

log = logging.getLogger(__name__)

DASHSCOPE_BASE_ADDRESSES = {
    "cn": "https://dashscope.aliyuncs.com/api/v1",
    "intl": "https://dashscope-intl.aliyuncs.com/api/v1",
}
DASHSCOPE_NATIVE = Preset(base_url=DASHSCOPE_BASE_ADDRESSES["cn"], regions=DASHSCOPE_BASE_ADDRESSES,
                          key_envs=("DASHSCOPE_API_KEY",), key_required=True)
"""DashScope's native API (``/api/v1``): the SDK embedder and the native reranker."""
_OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")
SPARSE_DIMENSION = 500_000
"""Upper bound of the sparse ids (the service's token ids; it does not publish its vocabulary size, and
seekdb's SPARSEVECTOR takes ids below this). A larger id is a :class:`ProviderResponseError`."""


class DashScopeSDKProvider(RemoteProvider):
    """DashScope native SDK (text_type, sparse)."""

    name = "dashscope-sdk"
    runtime = "http"
    default_concurrency = 16  # 10 inputs per request make many small requests; 429s halve it (Throttle)
    preset = DASHSCOPE_NATIVE

    def __init__(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None = None,
        api_key_env: str | None = None,
        base_address: str | None = None,
        region: str | None = None,
        dimensions: int | None = None,
        dimension: int | None = None,
        output_type: str = "dense",
        instruct: str | None = None,
        **kwargs: Any,
    ) -> None:
        facts = dashscope_facts(model)
        for key, value in (("max_batch_items", facts.max_items), ("max_input_tokens", facts.max_input_tokens)):
            if kwargs.get(key) is None and value is not None:
                kwargs[key] = value
        super().__init__(model, **kwargs)
        if dimensions is not None and dimension is not None and dimensions != dimension:
            raise ConfigError(f"dimensions={dimensions} and dimension={dimension} disagree; pass one")
        dims = dimensions if dimensions is not None else dimension
        if dims is not None:
            if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
                raise ConfigError(f"dimensions={dims!r} must be a positive integer")
            if facts.dims_mode == "fixed" and dims != facts.default_dim:
                raise ConfigError(f"{self.spec} has a fixed size of {facts.default_dim} dimensions, not {dims}")
            if facts.dims is not None and dims not in facts.dims:
                raise ConfigError(f"{self.spec} takes dimensions in {list(facts.dims)}, not {dims}")
        if output_type not in _OUTPUT_TYPES:
            raise ConfigError(f"output_type={output_type!r}; use one of {list(_OUTPUT_TYPES)}")
        if region is not None and region not in DASHSCOPE_BASE_ADDRESSES:
            raise ConfigError(f"region={region!r} is unknown; use one of {sorted(DASHSCOPE_BASE_ADDRESSES)}")
        self.base_address = (base_address.rstrip("/") if base_address
                             else DASHSCOPE_BASE_ADDRESSES[region or "cn"])
        self.credential = self.preset.key(self.spec, api_key, api_key_env)
        self.api_key_env = self.credential.env
        self.dimensions = dims
        self._send_dimension = dims is not None and facts.dims_mode == "server"
        self.output_type = output_type
        self.instruct = instruct
        self._dimension = dims or facts.default_dim
        self.options.update(base_address=redact(base_address) if base_address else None, region=region,
                            dimensions=dims, api_key_env=self.api_key_env,
                            output_type=output_type if output_type != "dense" else None, instruct=instruct)

    @cached_property
    def _text_embedding(self) -> Any:
        try:
            from dashscope import TextEmbedding
        except ImportError as exc:
            raise MissingDependencyError("dashscope", "dashscope", "dashscope-sdk: models") from exc
        return TextEmbedding

    def _uses_http_client(self) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        return self.credential.secrets()

    def _key(self) -> str:
        key = self.credential.get()
        assert key is not None  # the preset requires a key: get() raised without one
        return key

    # ------------------------------------------------------------------ one request
    def _call(self, texts: Sequence[str], kind: Kind) -> list[tuple[Any, Any]]:
        """One SDK call → ``[(dense or None, sparse dict or None)]`` in input order."""
        import requests

        text_embedding = self._text_embedding
        key = self._key()
        params: dict[str, Any] = {"text_type": kind}
        if self._send_dimension:
            params["dimension"] = self.dimensions
        if self.output_type != "dense":
            params["output_type"] = self.output_type
        if self.instruct and kind == "query":
            params["instruct"] = self.instruct
        secrets = self.secrets()
        try:
            resp = text_embedding.call(model=self.model, input=list(texts), api_key=key,
                                       base_address=self.base_address, request_timeout=self.timeout, **params)
        except requests.Timeout as exc:
            raise ProviderTimeoutError(redact(f"{self.spec}: no answer from {self.base_address} within "
                                              f"{self.timeout}s; raise timeout= or lower concurrency=", *secrets),
                                       self.name) from exc
        except requests.ConnectionError as exc:
            raise ProviderConnectionError(redact(f"{self.spec}: cannot reach {self.base_address}: "
                                                 f"{type(exc).__name__}; check base_address/region", *secrets),
                                          self.name) from exc
        except (ValueError, json.JSONDecodeError) as exc:  # a 200 whose body is not JSON
            raise ProviderResponseError(redact(f"{self.spec}: the reply is not valid JSON ({exc})", *secrets),
                                        self.name) from exc
        if resp.status_code != 200:  # the SDK returns errors instead of raising them
            err = make_status_error(int(resp.status_code), provider=self.spec, message=str(resp.message or ""),
                                    code=str(resp.code or ""), request_id=resp.request_id or None,
                                    headers=resp.headers or {}, secrets=secrets, key_env=self.api_key_env)
            if resp.status_code == 404 or str(resp.code or "").lower() == "modelnotfound":
                raise ModelNotFoundError(f"{err} (check the model name)") from err
            raise err
        return self._parse(resp.output, len(texts))

    def _parse(self, output: Any, n: int) -> list[tuple[Any, Any]]:
        items = output.get("embeddings") if isinstance(output, dict) else None
        if not isinstance(items, list):
            raise ProviderResponseError(f"{self.spec}: the reply has no output.embeddings list", self.name)
        if len(items) != n:
            raise ProviderResponseError(f"{self.spec} returned {len(items)} vectors for {n} inputs", self.name)
        rows: list[Any] = [None] * n
        for pos, item in enumerate(items):
            idx = item.get("text_index", pos) if isinstance(item, dict) else None
            if not isinstance(idx, int) or not 0 <= idx < n or rows[idx] is not None:
                raise ProviderResponseError(
                    f"{self.spec}: embeddings[{pos}] has text_index {idx!r}: not a unique index in 0..{n - 1}",
                    self.name)
            dense = item.get("embedding")
            sparse_raw = item.get("sparse_embedding")
            sparse = None
            if "sparse" in self.output_type:
                if not isinstance(sparse_raw, list) or not all(isinstance(e, dict) for e in sparse_raw):
                    raise ProviderResponseError(f"{self.spec}: input {idx} has no sparse_embedding list", self.name)
                sparse = check_sparse_output(((e.get("index"), e.get("value")) for e in sparse_raw),
                                             f"{self.spec}: input {idx}", dimension=SPARSE_DIMENSION,
                                             provider=self.name)
            rows[idx] = (dense, sparse)
        if "dense" in self.output_type:
            arr = self.check_rows([d for d, _ in rows], n, self._dimension, where="text-embedding")
            arr = l2_normalize(arr)
            rows = [(arr[i], s) for i, (_, s) in enumerate(rows)]
        return rows

    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        self._require_dense()
        return np.stack([d for d, _ in self._call(list(items), kind)])

    def _require_dense(self) -> None:
        if "dense" not in self.output_type:
            raise ConfigError(f"{self.spec} with output_type='sparse' gives no dense vectors: use embed_sparse(), "
                              "or output_type='dense&sparse'")

    # ------------------------------------------------------------------ many (dense, + sparse when asked)
    def embed_texts(self, texts: Sequence[str], *, kind: Kind, truncate: TruncatePolicy) -> EmbedResult:
        """As :meth:`Provider.embed_texts`; with ``output_type='dense&sparse'``, ``extra["sparse"]`` holds
        one ``{token id: weight}`` dict per input (from the same requests as the dense vectors)."""
        self._require_dense()
        counts = self.count_tokens(texts, kind=kind)
        over, seen = self.account(counts, truncate)
        vectors, sparse = self._dense_and_sparse(texts, kind, counts)
        extra: dict[str, Any] = {"sparse": sparse} if "sparse" in self.output_type else {}
        return EmbedResult(vectors, truncated=over, n_tokens=sum(seen), token_counts=seen, extra=extra)

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        self._require_dense()
        return self._dense_and_sparse(texts, kind, token_counts)[0]

    def _dense_and_sparse(self, texts: Sequence[str], kind: Kind, token_counts: Sequence[int]
                          ) -> tuple[Vectors, list[Any]]:
        texts2, counts2 = self.prepare_texts(texts, token_counts, kind)
        rows, failures = self.run_batches(texts2, counts2, kind, self._call)
        sparse = [r[1] if r is not None else None for r in rows]
        if not failures:
            return np.stack([r[0] for r in rows]).astype(np.float32), sparse
        dim = self._dimension or next(len(r[0]) for r in rows if r is not None)
        arr = np.full((len(texts), dim), np.nan, dtype=np.float32)
        for i, r in enumerate(rows):
            if r is not None:
                arr[i] = r[0]
        extra = {"sparse": sparse} if "sparse" in self.output_type else {}
        self._raise_failures(len(texts), failures, self.partial_result(arr, token_counts, **extra))
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def sparse_dimension(self) -> int:
        """:data:`SPARSE_DIMENSION` with a sparse ``output_type``, else 0 (no sparse output)."""
        return SPARSE_DIMENSION if "sparse" in self.output_type else 0

    def embed_both(self, items: Iterable[Any], *, kind: Kind = "document",
                   truncate: TruncatePolicy | None = None) -> EmbedResult:
        """Dense vectors with ``extra["sparse"]`` from the same requests (``output_type='dense&sparse'``)."""
        if self.output_type != "dense&sparse":
            raise ConfigError(f"{self.spec}: dense and sparse vectors together need output_type='dense&sparse' "
                              f"(it is {self.output_type!r})")
        res = self.embed(items, kind=kind, truncate=truncate)
        res.extra.setdefault("sparse", [])
        return res

    def embed_sparse(self, items: Iterable[Any], kind: Kind = "document") -> list[SparseVector]:
        """Sparse vectors ``{token id: weight}`` in input order (needs ``output_type`` with ``sparse``)."""
        if "sparse" not in self.output_type:
            raise ConfigError(f"{self.spec}: pass output_type='sparse' or 'dense&sparse' to get sparse vectors")
        texts = validate_texts(items)
        if not texts:
            return []
        counts = self.count_tokens(texts, kind=kind)
        texts2, counts2 = self.prepare_texts(texts, counts, kind)
        rows, failures = self.run_batches(texts2, counts2, kind, self._call)
        if failures:
            self._raise_failures(len(texts), failures,
                                 self.partial_result(np.zeros((len(texts), 0), np.float32), counts,
                                                     sparse=[r[1] if r else None for r in rows]))
        return [r[1] for r in rows]
