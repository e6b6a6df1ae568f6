"""``openai-compatible:`` and its presets ``openai:``, ``dashscope:``, ``baichuan:``, ``doubao:``.

One client for every ``POST {base}/embeddings`` service, done the way the guide's ``RemoteEmbedding`` should have:

* ``base_url`` may be ``.../v1`` or the full ``.../v1/embeddings``;
* the API key comes from ``api_key=`` or an env var named per preset (``DASHSCOPE_API_KEY`` ...); it is never
  stored in options, shown in ``repr``/``info()``, logged, or left in an error message;
* ``dimensions`` is sent only to models that take it; presets without it (Doubao) slice client-side and
  re-normalise; fixed-size models refuse a different size with a clear error;
* ``encoding_format="float"`` is sent, yet base64 replies are decoded too; results are placed by ``index``;
  counts, indexes, dimensions and finiteness are checked;
* requests are split by the preset's items- and tokens-per-request limits, run concurrently, retried when
  transient, and DashScope's "should not be larger than N" shrinks the batch size on the fly.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import SecretStr

from ..errors import ConfigError, ModelNotFoundError, ProviderResponseError, redact
from ..types import Kind, Vectors
from ._http import RemoteProvider, request, response_json, status_error
from ._preset import Preset, normalize_base_url
from .base import l2_normalize

__all__ = [
    "BaichuanProvider",
    "DashScopeProvider",
    "DoubaoProvider",
    "ModelFacts",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "normalize_base_url",
]

log = logging.getLogger(__name__)

DimsMode = Literal["server", "client", "fixed"]


@dataclass(frozen=True)
class ModelFacts:
    """What a preset knows about one model."""

    default_dim: int | None = None
    """Length of the vectors the service returns when no ``dimensions`` is sent."""
    dims: tuple[int, ...] | None = None
    """Allowed ``dimensions`` values (None: any from 1 to ``max_dim``)."""
    max_dim: int | None = None
    dims_mode: DimsMode = "server"
    """server: send ``dimensions``; client: slice + re-normalise here; fixed: one size only."""
    max_items: int | None = None
    max_input_tokens: int | None = None
    max_batch_tokens: int | None = None


class OpenAICompatibleProvider(RemoteProvider):
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (``base_url``)."""

    name = "openai-compatible"
    preset: ClassVar[Preset] = Preset(key_envs=("OPENAI_COMPATIBLE_API_KEY",))
    """Default base URL, regions and key variable of the service (see :mod:`._preset`)."""
    default_concurrency = 4
    default_max_batch_items = 64

    @classmethod
    def model_facts(cls, model: str) -> ModelFacts:
        """Limits and dimension rules of ``model`` (presets override)."""
        return ModelFacts()

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        region: str | None = None,
        api_key: str | SecretStr | None = None,
        api_key_env: str | None = None,
        dimensions: int | None = None,
        encoding_format: Literal["float", "base64"] = "float",
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        facts = self.model_facts(model)
        for key, value in (("max_batch_items", facts.max_items), ("max_input_tokens", facts.max_input_tokens),
                           ("max_batch_tokens", facts.max_batch_tokens)):
            if kwargs.get(key) is None and value is not None:
                kwargs[key] = value
        super().__init__(model, **kwargs)
        self.facts = facts
        # -- where and who (the key itself is held by self.credential, never in self.options)
        self.base_url = self.preset.resolve_base_url(self.name, model, base_url=base_url, region=region,
                                                     endpoint="/embeddings")
        self.endpoint = self.base_url + "/embeddings"
        self.credential = self.preset.key(self.spec, api_key, api_key_env)
        self.api_key_env = self.credential.env
        # -- what
        if encoding_format not in ("float", "base64"):
            raise ConfigError(f"encoding_format={encoding_format!r}; use 'float' or 'base64'")
        self.encoding_format = encoding_format
        self.normalize = bool(normalize)
        self.normalized = self.normalize
        self.dimensions = self._check_dimensions(dimensions)
        self._send_dimensions = self.dimensions is not None and facts.dims_mode == "server"
        self._slice_to = self.dimensions if (self.dimensions is not None and facts.dims_mode == "client") else None
        self._server_dim: int | None = (
            self.dimensions if self._send_dimensions else facts.default_dim
        )
        self._dimension = self.dimensions or facts.default_dim
        self.options.update(
            base_url=redact(base_url) if base_url else None, region=region, dimensions=self.dimensions,
            api_key_env=self.api_key_env,
            encoding_format=encoding_format if encoding_format != "float" else None,
            normalize=None if self.normalize else False,
        )

    # ------------------------------------------------------------------ config checks
    def _check_dimensions(self, dimensions: Any) -> int | None:
        if dimensions is None:
            return None
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            raise ConfigError(f"dimensions={dimensions!r} must be a positive integer")
        f = self.facts
        if f.dims_mode == "fixed":
            if f.default_dim is not None and dimensions != f.default_dim:
                raise ConfigError(
                    f"{self.spec} has a fixed size of {f.default_dim} dimensions and takes no dimensions= "
                    f"(asked {dimensions}); drop the option or pick a model that supports it"
                )
            return dimensions
        if f.dims is not None and dimensions not in f.dims:
            raise ConfigError(f"{self.spec} takes dimensions in {list(f.dims)}, not {dimensions}")
        if f.max_dim is not None and dimensions > f.max_dim:
            raise ConfigError(f"{self.spec} has at most {f.max_dim} dimensions, not {dimensions}")
        return dimensions

    def secrets(self) -> tuple[str, ...]:
        return self.credential.secrets()

    # ------------------------------------------------------------------ one request
    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        headers = self.credential.headers()
        payload: dict[str, Any] = {"model": self.model, "input": list(items), "encoding_format": self.encoding_format}
        if self._send_dimensions:
            payload["dimensions"] = self.dimensions
        secrets = self.secrets()
        resp = request(self.client, "POST", self.endpoint, provider=self.spec, json_body=payload, headers=headers,
                       secrets=secrets, key_env=self.api_key_env)
        if not resp.is_success:
            err = status_error(resp, self.spec, secrets=secrets, key_env=self.api_key_env)
            if resp.status_code == 404 and isinstance(err.body, dict) and (
                    "model" in str(err.body.get("error", "")).lower()):
                raise ModelNotFoundError(f"{err} (check the model name for {self.base_url})") from err
            raise err
        return self.parse_reply(response_json(resp, self.spec), len(items))

    def parse_reply(self, data: Any, n: int) -> Vectors:
        """``{"data": [{"index", "embedding": [...] | base64}]}`` → ``(n, d)`` in input order, checked."""
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
            raise ProviderResponseError(f"{self.spec}: the reply has no 'data' list (got {keys})", self.name)
        if len(items) != n:
            raise ProviderResponseError(f"{self.spec} returned {len(items)} vectors for {n} inputs", self.name)
        rows: list[Any] = [None] * n
        for pos, item in enumerate(items):
            if not isinstance(item, dict):
                raise ProviderResponseError(f"{self.spec}: data[{pos}] is not an object", self.name)
            idx = item.get("index", pos)
            if not isinstance(idx, int) or not 0 <= idx < n or rows[idx] is not None:
                raise ProviderResponseError(
                    f"{self.spec}: data[{pos}] has index {idx!r}: not a unique index in 0..{n - 1}", self.name)
            rows[idx] = self._decode(item.get("embedding"), idx)
        arr = self.check_rows(rows, n, self._server_dim, where="the embeddings reply")
        if self._server_dim is None:
            self._server_dim = int(arr.shape[1])  # later replies must agree
        if self._slice_to is not None:
            if arr.shape[1] < self._slice_to:
                raise ProviderResponseError(
                    f"{self.spec} returned {arr.shape[1]}-d vectors, fewer than dimensions={self._slice_to}", self.name)
            arr = arr[:, : self._slice_to]
            return l2_normalize(arr)  # a slice of a unit vector is not unit length
        return l2_normalize(arr) if self.normalize else arr

    def _decode(self, emb: Any, idx: int) -> Any:
        if isinstance(emb, str):  # base64 of little-endian float32, as the official client asks by default
            try:
                raw = base64.b64decode(emb, validate=True)
                return np.frombuffer(raw, dtype="<f4")
            except (binascii.Error, ValueError) as exc:
                raise ProviderResponseError(
                    f"{self.spec}: the embedding of input {idx} is a string but not base64 float32", self.name
                ) from exc
        if isinstance(emb, list):
            return emb
        raise ProviderResponseError(f"{self.spec}: input {idx} has no embedding ({type(emb).__name__})", self.name)


# ---------------------------------------------------------------------------------------------- presets
_DASHSCOPE_V4_DIMS = (2048, 1536, 1024, 768, 512, 256, 128, 64)
_DASHSCOPE_V3_DIMS = (1024, 768, 512, 256, 128, 64)


def dashscope_facts(model: str) -> ModelFacts:
    """DashScope text-embedding models: v3/v4 take 10 inputs of ≤ 8192 tokens; v1/v2 25 of ≤ 2048, 1536-d fixed."""
    m = model.lower()
    if "v4" in m:
        return ModelFacts(default_dim=1024, dims=_DASHSCOPE_V4_DIMS, max_items=10, max_input_tokens=8192)
    if "v3" in m:
        return ModelFacts(default_dim=1024, dims=_DASHSCOPE_V3_DIMS, max_items=10, max_input_tokens=8192)
    if m.endswith(("v1", "v2")):
        return ModelFacts(default_dim=1536, dims_mode="fixed", max_items=25, max_input_tokens=2048)
    return ModelFacts(max_items=10, max_input_tokens=8192)


class DashScopeProvider(OpenAICompatibleProvider):
    """Alibaba DashScope / Qwen, compatible mode, DASHSCOPE_API_KEY."""

    name = "dashscope"
    preset = Preset(base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
                    regions={"cn": "https://dashscope.aliyuncs.com/compatible-mode/v1",
                             "intl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"},
                    key_envs=("DASHSCOPE_API_KEY",), key_required=True)
    default_concurrency = 16  # 10 inputs per request make many small requests; 429s halve it (Throttle)

    @classmethod
    def model_facts(cls, model: str) -> ModelFacts:
        return dashscope_facts(model)


class OpenAIProvider(OpenAICompatibleProvider):
    """OpenAI, OPENAI_API_KEY."""

    name = "openai"
    preset = Preset(base_url="https://api.openai.com/v1", key_envs=("OPENAI_API_KEY",), key_required=True)
    default_concurrency = 4

    @classmethod
    def model_facts(cls, model: str) -> ModelFacts:
        limits = ModelFacts(max_items=2048, max_input_tokens=8191, max_batch_tokens=300_000)
        if model == "text-embedding-3-small":
            return dataclasses.replace(limits, default_dim=1536, max_dim=1536)
        if model == "text-embedding-3-large":
            return dataclasses.replace(limits, default_dim=3072, max_dim=3072)
        if model == "text-embedding-ada-002":
            return dataclasses.replace(limits, default_dim=1536, dims_mode="fixed")
        return limits


class BaichuanProvider(OpenAICompatibleProvider):
    """Baichuan, BAICHUAN_API_KEY."""

    name = "baichuan"
    preset = Preset(base_url="https://api.baichuan-ai.com/v1", key_envs=("BAICHUAN_API_KEY",), key_required=True)
    default_concurrency = 4

    @classmethod
    def model_facts(cls, model: str) -> ModelFacts:
        # items per request are undocumented: 16 is conservative, and a "not larger than N" reply adapts it
        return ModelFacts(default_dim=1024, dims_mode="fixed", max_items=16, max_input_tokens=512)


class DoubaoProvider(OpenAICompatibleProvider):
    """Volcengine Ark / Doubao, ARK_API_KEY (dimensions sliced client-side, then re-normalised)."""

    name = "doubao"
    preset = Preset(base_url="https://ark.cn-beijing.volces.com/api/v3", key_envs=("ARK_API_KEY",), key_required=True)
    default_concurrency = 8

    @classmethod
    def model_facts(cls, model: str) -> ModelFacts:
        # no `dimensions` field: the 2048-d vectors are cut to the asked size here and re-normalised
        return ModelFacts(dims_mode="client", max_dim=None, max_items=256, max_input_tokens=4096)
