"""Remote rerankers: the ``/v1/rerank`` family (Cohere, Jina, SiliconFlow, infinity, any compatible server),
Hugging Face TEI's ``/rerank`` and DashScope's native ``text-rerank`` API (``gte-rerank-v2``).

Built on the same plumbing as the remote embedding providers (:mod:`obembed.providers._http`): one
``httpx.Client`` with explicit timeouts, error replies mapped to the obembed error tree (401/403, 429 vs
out-of-quota, 5xx) with secrets removed, transient failures retried with backoff (or the server's
retry-after), at most ``concurrency`` requests in flight (halved on a 429), and a batch-size refusal
("should not be larger than N", TEI's "maximum allowed batch size N") shrinking the request size on the fly.

A query with more documents than one request takes (``max_documents``) is sent as several requests with
the same query; a cross-encoder scores each pair on its own, so the scores stay comparable. Every reply is
checked: an index outside the documents sent, a repeated or missing index, or a score that is not a finite
number is a :class:`~obembed.errors.ProviderResponseError` naming the request (its request id when the
server gives one); nothing is reordered silently. When some requests fail after retries and others succeed,
:class:`~obembed.errors.PartialBatchError` keeps the scores that came back (``.result``, NaN where missing).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import numpy as np
from pydantic import SecretStr

from ...errors import (
    ConfigError,
    ModelNotFoundError,
    PartialBatchError,
    ProviderResponseError,
    ProviderStatusError,
    redact,
)
from ...settings import Settings
from ...types import Kind, Vectors
from .._http import BatchLimitError, RemoteProvider, request, response_json, status_error
from .._preset import Preset, normalize_base_url
from ..base import estimate_tokens
from ..dashscope import DASHSCOPE_NATIVE
from .base import Reranker, RerankResult, check_indexed_scores

__all__ = [
    "CohereReranker",
    "DashScopeReranker",
    "InfinityReranker",
    "JinaReranker",
    "RemoteReranker",
    "RerankAPIReranker",
    "SiliconFlowReranker",
    "TEIReranker",
    "normalize_rerank_url",
]

_TEI_BATCH = re.compile(r"maximum allowed batch size\s*(?:is\s*)?(\d+)", re.I)
DASHSCOPE_RERANK_PATH = "/services/rerank/text-rerank/text-rerank"


def normalize_rerank_url(url: str, path: str = "/rerank") -> str:
    """``https://host/v1``, ``.../v1/`` and ``.../v1/rerank`` -> ``https://host/v1`` (the base, no endpoint)."""
    return normalize_base_url(url, path)


class _Fanout(RemoteProvider):
    """The request machinery of the remote embedding providers, driven by a reranker: each "text" is one
    document, each call scores a slice of them against the bound query."""

    name = "rerank"

    def __init__(self, owner: RemoteReranker, **kwargs: Any) -> None:
        self._owner = owner
        super().__init__(owner.model, **kwargs)

    @property
    def spec(self) -> str:
        return self._owner.spec

    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:  # pragma: no cover - never called
        raise NotImplementedError("a reranker's fan-out does not embed")

    def secrets(self) -> tuple[str, ...]:
        return self._owner.secrets()


class RemoteReranker(Reranker):
    """Base of the HTTP rerankers; subclasses say where (``endpoint``), what to send and how to read the reply."""

    runtime = "http"
    preset: ClassVar[Preset] = Preset()
    """Default base URL, regions and key variables of the service (see :mod:`.._preset`)."""
    endpoint_path: ClassVar[str] = "/rerank"
    default_max_documents: ClassVar[int] = 1000
    default_concurrency: ClassVar[int] = 4

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        region: str | None = None,
        api_key: str | SecretStr | None = None,
        api_key_env: str | None = None,
        max_documents: int | None = None,
        max_batch_tokens: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_max_time: float | None = None,
        retry_initial: float | None = None,
        retry_max_wait: float | None = None,
        retry_jitter: float | None = None,
        http_client: httpx.Client | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(model, settings=settings)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"{self.name}: needs a model name, e.g. {self.name}:MODEL")
        self.base_url = self.preset.resolve_base_url(
            self.name, model, base_url=base_url, region=region, endpoint=self.endpoint_path,
            example="?base_url=http://localhost:8000/v1 (CLI: --rerank '...?base_url=...')")
        self.endpoint = self.base_url + self.endpoint_path
        for key, value in (("max_documents", max_documents), ("max_batch_tokens", max_batch_tokens)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{key}={value!r} must be a positive integer")
        self.credential = self.preset.key(self.spec, api_key, api_key_env)
        self._fan = _Fanout(
            self, concurrency=concurrency or self.default_concurrency,
            max_batch_items=max_documents or self.default_max_documents, max_batch_tokens=max_batch_tokens,
            timeout=timeout, max_retries=max_retries, retry_max_time=retry_max_time, retry_initial=retry_initial,
            retry_max_wait=retry_max_wait, retry_jitter=retry_jitter, http_client=http_client,
            settings=self.settings)
        self.options.update(base_url=redact(base_url) if base_url else None, region=region,
                            api_key_env=api_key_env, max_documents=max_documents, max_batch_tokens=max_batch_tokens,
                            concurrency=concurrency)

    # ------------------------------------------------------------------ plumbing
    @property
    def api_key_env(self) -> str | None:
        return self.credential.env

    @property
    def max_documents(self) -> int:
        """Documents per request (lowered on the fly when the server says it takes fewer)."""
        return int(self._fan.max_batch_items or self.default_max_documents)

    @property
    def retry(self) -> Any:
        return self._fan.retry

    @property
    def throttle(self) -> Any:
        return self._fan.throttle

    @property
    def client(self) -> httpx.Client:
        return self._fan.client

    def close(self) -> None:
        self._fan.close()

    def secrets(self) -> tuple[str, ...]:
        return self.credential.secrets()

    # ------------------------------------------------------------------ one request
    def request_body(self, query: str, documents: Sequence[str]) -> dict[str, Any]:
        """The JSON body for one request."""
        return {"model": self.model, "query": query, "documents": list(documents)}

    def parse_results(self, data: Any, where: str) -> list[tuple[Any, Any]]:
        """``(index, score)`` pairs from a reply (``{"results": [{"index", "relevance_score"}]}``)."""
        items = data.get("results") if isinstance(data, dict) else None
        if not isinstance(items, list):
            keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
            raise ProviderResponseError(f"{self.spec}: {where} has no 'results' list (got {keys})", self.name)
        return [self._pair(item, pos, where, "relevance_score") for pos, item in enumerate(items)]

    def _pair(self, item: Any, pos: int, where: str, score_key: str) -> tuple[Any, Any]:
        if not isinstance(item, dict):
            raise ProviderResponseError(f"{self.spec}: {where}: result {pos} is not an object", self.name)
        score = item.get(score_key, item.get("score"))
        return item.get("index"), score

    def _status_error(self, resp: httpx.Response) -> ProviderStatusError:
        secrets = self.secrets()
        err = status_error(resp, self.spec, secrets=secrets, key_env=self.api_key_env)
        m = _TEI_BATCH.search(str(err))
        if m and resp.status_code in (400, 413, 422) and not isinstance(err, BatchLimitError):
            return BatchLimitError(str(err), self.spec, limit=int(m.group(1)), status_code=resp.status_code,
                                   request_id=err.request_id, body=err.body)
        if resp.status_code == 404 and "model" in str(err.body).lower():
            raise ModelNotFoundError(f"{err} (check the model name for {self.base_url})") from err
        return err

    def _request_id(self, resp: httpx.Response, data: Any) -> str | None:
        rid = resp.headers.get("x-request-id") or resp.headers.get("x-dashscope-request-id")
        if not rid and isinstance(data, dict):
            rid = data.get("request_id") or data.get("id")
        return str(rid) if rid else None

    def score_batch(self, query: str, documents: Sequence[str]) -> list[float]:
        """One request: the scores of ``documents`` (at most ``max_documents``) in their order."""
        resp = request(self.client, "POST", self.endpoint, provider=self.spec,
                       json_body=self.request_body(query, documents), headers=self.credential.headers(),
                       secrets=self.secrets(), key_env=self.api_key_env)
        if not resp.is_success:
            raise self._status_error(resp)
        data = response_json(resp, self.spec)
        rid = self._request_id(resp, data)
        where = (f"the reply to request {rid} ({len(documents)} documents)" if rid
                 else f"the reply from {self.endpoint_path} ({len(documents)} documents)")
        scores = check_indexed_scores(self.parse_results(data, where), len(documents), who=self.spec, where=where)
        return [float(s) for s in scores]

    # ------------------------------------------------------------------ many
    def score_many(self, query: str, documents: Sequence[str]) -> RerankResult:
        q_tokens = estimate_tokens(query)
        counts = [q_tokens + estimate_tokens(d) for d in documents]

        def call(batch: Sequence[str], kind: Kind) -> list[Any]:
            return self.score_batch(query, batch)

        rows, failures = self._fan.run_batches(list(documents), counts, "document", call)
        n = len(documents)
        scores = np.array([np.nan if r is None else float(r) for r in rows], dtype=np.float64)
        if not failures:
            return RerankResult(scores, n_tokens=sum(counts))
        first = failures[min(failures)]
        if len(failures) == n:
            raise first
        reasons = {i: str(e) for i, e in failures.items()}
        result = RerankResult(scores, n_tokens=sum(counts), failed=reasons)
        kinds = sorted({type(e).__name__ for e in failures.values()})
        raise PartialBatchError(
            f"{self.spec}: {len(failures)} of {n} documents could not be scored after retries ({', '.join(kinds)}; "
            f"first: {first}). The other scores are kept in .result (NaN where missing, .failed names the "
            "documents): rerank again, or order by the first-stage score", self.name, failures, result)


# ---------------------------------------------------------------------------------------------- /v1/rerank
class RerankAPIReranker(RemoteReranker):
    """Any server of the ``POST {base}/rerank`` shape (Cohere/Jina style), ``base_url`` required."""

    name = "rerank-api"
    preset = Preset(key_envs=("RERANK_API_KEY",))
    send_return_documents: ClassVar[bool] = True
    """Send ``return_documents: false`` (Jina and others return the texts by default; Cohere v2 has no field)."""

    def request_body(self, query: str, documents: Sequence[str]) -> dict[str, Any]:
        body = super().request_body(query, documents)
        if self.send_return_documents:
            body["return_documents"] = False
        return body


class CohereReranker(RerankAPIReranker):
    """Cohere rerank (v2 API), CO_API_KEY or COHERE_API_KEY."""

    name = "cohere"
    preset = Preset(base_url="https://api.cohere.com/v2", key_envs=("CO_API_KEY", "COHERE_API_KEY"),
                    key_required=True)
    send_return_documents = False
    default_max_documents = 1000


class JinaReranker(RerankAPIReranker):
    """Jina AI rerank, JINA_API_KEY."""

    name = "jina"
    preset = Preset(base_url="https://api.jina.ai/v1", key_envs=("JINA_API_KEY",), key_required=True)
    default_max_documents = 1000


class SiliconFlowReranker(RerankAPIReranker):
    """SiliconFlow rerank (BAAI/bge-reranker-v2-m3, Qwen3-Reranker ...), SILICONFLOW_API_KEY."""

    name = "siliconflow"
    preset = Preset(base_url="https://api.siliconflow.cn/v1",
                    regions={"cn": "https://api.siliconflow.cn/v1", "intl": "https://api.siliconflow.com/v1"},
                    key_envs=("SILICONFLOW_API_KEY",), key_required=True)
    default_max_documents = 500


class InfinityReranker(RerankAPIReranker):
    """infinity (michaelfeil/infinity) ``/rerank``, default http://localhost:7997, INFINITY_API_KEY if set."""

    name = "infinity"
    preset = Preset(base_url="http://localhost:7997", key_envs=("INFINITY_API_KEY",))
    default_max_documents = 256


class TEIReranker(RemoteReranker):
    """Hugging Face text-embeddings-inference ``/rerank`` (``texts``, a list of ``{index, score}``),
    default http://localhost:8080; 32 documents per request (TEI's ``--max-client-batch-size`` default)."""

    name = "tei"
    preset = Preset(base_url="http://localhost:8080", key_envs=("TEI_API_KEY",))
    default_max_documents = 32

    def __init__(self, model: str, *, raw_scores: bool = False, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.raw_scores = bool(raw_scores)
        self.options.update(raw_scores=True if self.raw_scores else None)

    def request_body(self, query: str, documents: Sequence[str]) -> dict[str, Any]:
        return {"query": query, "texts": list(documents), "truncate": True, "raw_scores": self.raw_scores,
                "return_text": False}

    def parse_results(self, data: Any, where: str) -> list[tuple[Any, Any]]:
        if not isinstance(data, list):
            raise ProviderResponseError(
                f"{self.spec}: {where} is not a list of {{index, score}} (got {type(data).__name__})", self.name)
        return [self._pair(item, pos, where, "score") for pos, item in enumerate(data)]


# ---------------------------------------------------------------------------------------------- DashScope
class DashScopeReranker(RemoteReranker):
    """DashScope native text-rerank API (gte-rerank-v2, qwen3-rerank), DASHSCOPE_API_KEY."""

    name = "dashscope-rerank"
    preset = DASHSCOPE_NATIVE
    endpoint_path = DASHSCOPE_RERANK_PATH
    default_max_documents = 500
    default_concurrency = 8

    def __init__(self, model: str, *, instruct: str | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.instruct = instruct
        self.options.update(instruct=instruct)

    def request_body(self, query: str, documents: Sequence[str]) -> dict[str, Any]:
        params: dict[str, Any] = {"return_documents": False, "top_n": len(documents)}
        if self.instruct:
            params["instruct"] = self.instruct
        return {"model": self.model, "input": {"query": query, "documents": list(documents)},
                "parameters": params}

    def parse_results(self, data: Any, where: str) -> list[tuple[Any, Any]]:
        output = data.get("output") if isinstance(data, dict) else None
        items = output.get("results") if isinstance(output, dict) else None
        if not isinstance(items, list):
            raise ProviderResponseError(f"{self.spec}: {where} has no output.results list", self.name)
        return [self._pair(item, pos, where, "relevance_score") for pos, item in enumerate(items)]
