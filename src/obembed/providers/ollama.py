"""``ollama:MODEL`` — an Ollama server over HTTP (or through the ``ollama`` package with ``sdk=True``).

* ``POST /api/embed`` with a list of inputs per request (``truncate``, ``keep_alive``, ``dimensions``, ``options``);
  its vectors are unit length;
* servers without ``/api/embed`` (404 "page not found", not a model error) fall back to the legacy
  ``POST /api/embeddings`` (one ``prompt`` per call, raw vectors), which are sliced to ``dimensions`` and
  L2-normalised here so both paths give the same vectors;
* ``host=`` or ``OLLAMA_HOST`` in every form Ollama accepts (``host``, ``:port``, ``host:port``,
  ``http(s)://host[:port][/path]``, ``[ipv6]``); a timeout is always set (the SDK has none by default);
* an unknown model raises :class:`~obembed.errors.ModelNotFoundError` saying ``ollama pull MODEL``;
* the count of vectors is checked (Ollama answers ``embeddings: []`` for empty input rather than failing);
* 503 "server busy" (queue full) and other transient errors are retried.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import urllib.parse
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import httpx

from ..errors import (
    ConfigError,
    InvalidInputError,
    MissingDependencyError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderStatusError,
    ProviderTimeoutError,
    redact,
)
from ..types import EmbedResult, Kind, TruncatePolicy, Vectors
from ._http import RemoteProvider, make_status_error, request, response_json, status_error
from .base import l2_normalize

__all__ = ["DEFAULT_OLLAMA_HOST", "OllamaProvider", "parse_ollama_host"]

log = logging.getLogger(__name__)

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"


def parse_ollama_host(host: str | None) -> str:
    """``OLLAMA_HOST`` forms → a base URL, exactly as Ollama and its Python SDK read them.

    ``None``/``""`` → ``http://127.0.0.1:11434``; ``":56789"`` → ``http://127.0.0.1:56789``;
    ``"example.com"`` → ``http://example.com:11434``; ``"https://example.com"`` → ``https://example.com:443``;
    ``"example.com:56789/path/"`` → ``http://example.com:56789/path``; IPv6 in brackets.
    """
    host, port = (host or "").strip(), 11434
    scheme, _, hostport = host.partition("://")
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    else:
        raise ConfigError(f"OLLAMA_HOST / host={redact(host)!r}: scheme {scheme!r} is not http or https")
    try:
        split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
        name = split.hostname or "127.0.0.1"
        port = split.port or port
    except ValueError as exc:
        raise ConfigError(f"OLLAMA_HOST / host={redact(host)!r} is not host[:port]: {exc}") from exc
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        pass
    if path := split.path.strip("/"):
        return f"{scheme}://{name}:{port}/{path}"
    return f"{scheme}://{name}:{port}"


def _is_context_overflow(status: int, message: str) -> bool:
    low = message.lower()
    return status in (400, 500) and ("context length" in low or "input length" in low or "too long" in low)


def _is_model_missing(status: int, message: str) -> bool:
    low = message.lower()
    return status == 404 and "not found" in low and ("model" in low or "pull" in low)


class OllamaProvider(RemoteProvider):
    """Ollama server (/api/embed), OLLAMA_HOST."""

    name = "ollama"
    default_concurrency = 2
    default_max_batch_items = 64
    client_side_truncation = False  # the server truncates to the model's context (truncate=true)

    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        keep_alive: str | float | None = None,
        dimensions: int | None = None,
        options: dict[str, Any] | None = None,
        sdk: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)
                                       or dimensions < 1):
            raise ConfigError(f"dimensions={dimensions!r} must be a positive integer")
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"options={options!r} must be a dict of Ollama model options, e.g. {{'num_ctx': 2048}}")
        self.host = parse_ollama_host(host if host is not None else os.environ.get("OLLAMA_HOST"))
        self.keep_alive = keep_alive
        self.dimensions = dimensions
        self.model_options = options
        self.sdk = bool(sdk)
        self.legacy = False
        """True once the server turned out to lack /api/embed (then /api/embeddings is used)."""
        self._dimension = dimensions
        self.runtime = "http"
        self.options.update(host=redact(host) if host else None, keep_alive=keep_alive, dimensions=dimensions,
                            options=options, sdk=True if self.sdk else None)

    # ------------------------------------------------------------------ transports
    @cached_property
    def sdk_client(self) -> Any:
        """``ollama.Client`` for ``sdk=True``, with our timeout (the SDK's default is none)."""
        try:
            import ollama
        except ImportError as exc:
            raise MissingDependencyError("ollama", "ollama", "ollama: with sdk=True") from exc
        return ollama.Client(host=self.host, timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)))

    def _uses_http_client(self) -> bool:
        return not self.sdk

    # ------------------------------------------------------------------ truncation
    def embed_texts(self, texts: Sequence[str], *, kind: Kind, truncate: TruncatePolicy) -> EmbedResult:
        """As :meth:`Provider.embed_texts`; the call's ``truncate="error"`` reaches the server as
        ``truncate: false`` (Ollama then refuses an over-long input with 400 instead of cutting it silently)."""
        counts = self.count_tokens(texts, kind=kind)
        over, seen = self.account(counts, truncate)
        vectors = self.run_remote(texts, kind, counts, self._request(allow_truncate=truncate != "error"))
        return EmbedResult(vectors, truncated=over, n_tokens=sum(seen), token_counts=seen)

    def request_fn(self) -> Callable[[Sequence[str], Kind], list[Any]]:
        return self._request(allow_truncate=self.truncate != "error")

    def _request(self, *, allow_truncate: bool) -> Callable[[Sequence[str], Kind], list[Any]]:
        def call(batch: Sequence[str], kind: Kind) -> list[Any]:
            return list(self._embed_texts(list(batch), allow_truncate=allow_truncate))

        return call

    def _payload(self, texts: Sequence[str], allow_truncate: bool | None = None) -> dict[str, Any]:
        if allow_truncate is None:
            allow_truncate = self.truncate != "error"
        body: dict[str, Any] = {"model": self.model, "input": list(texts), "truncate": allow_truncate}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        if self.model_options:
            body["options"] = self.model_options
        return body

    def _not_found(self) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"ollama model {self.model!r} is not on the server at {self.host}: run `ollama pull {self.model}` "
            "there (see `ollama list` for the models it has)"
        )

    def _overflow(self, message: str) -> InvalidInputError:
        return InvalidInputError(
            f"{self.spec}: an input is longer than the model's context and truncate='error' told Ollama not to "
            f"cut it (server: {message!r}); shorten it, or use truncate='truncate' (Ollama then cuts it)")

    def _http_error(self, resp: httpx.Response, *, allow_truncate: bool = True
                    ) -> ProviderError | ModelNotFoundError | InvalidInputError:
        err = status_error(resp, self.spec)
        message = err.body.get("error", "") if isinstance(err.body, dict) else str(err.body or "")
        if _is_model_missing(resp.status_code, str(message)):
            return self._not_found()
        if not allow_truncate and _is_context_overflow(resp.status_code, str(message)):
            return self._overflow(str(message))
        return err

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return request(self.client, "POST", self.host + path, provider=self.spec, json_body=body)

    # ------------------------------------------------------------------ one request
    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        return self._embed_texts(list(items), allow_truncate=self.truncate != "error")

    def _embed_texts(self, texts: list[str], *, allow_truncate: bool) -> Vectors:
        if self.sdk:
            return self._embed_sdk(texts, allow_truncate=allow_truncate)
        if not self.legacy:
            resp = self._post("/api/embed", self._payload(texts, allow_truncate))
            if resp.status_code == 404 and not _is_model_missing(404, resp.text):
                log.info("%s: %s has no /api/embed (an old Ollama); using the legacy /api/embeddings",
                         self.spec, self.host)
                self.legacy = True
            elif not resp.is_success:
                raise self._http_error(resp, allow_truncate=allow_truncate)
            else:
                data = response_json(resp, self.spec)
                vectors = data.get("embeddings") if isinstance(data, dict) else None
                if not isinstance(vectors, list):
                    raise ProviderResponseError(f"{self.spec}: /api/embed reply has no 'embeddings' list", self.name)
                return self._finish(vectors, len(texts), "/api/embed", legacy=False)
        return self._finish([self._legacy_one(t) for t in texts], len(texts), "/api/embeddings", legacy=True)

    def _legacy_one(self, text: str) -> list[float]:
        body: dict[str, Any] = {"model": self.model, "prompt": text}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.model_options:
            body["options"] = self.model_options
        resp = self._post("/api/embeddings", body)
        if not resp.is_success:
            raise self._http_error(resp)
        data = response_json(resp, self.spec)
        vec = data.get("embedding") if isinstance(data, dict) else None
        if not isinstance(vec, list) or not vec:
            raise ProviderResponseError(f"{self.spec}: /api/embeddings returned no embedding", self.name)
        return vec

    def _finish(self, vectors: list[Any], n: int, where: str, *, legacy: bool) -> Vectors:
        if len(vectors) != n:
            raise ProviderResponseError(
                f"{self.spec}: {where} returned {len(vectors)} vectors for {n} inputs (Ollama answers "
                "`embeddings: []` for empty input; check the inputs and the server version)", self.name)
        expected = self.dimensions if not legacy else None
        arr = self.check_rows(vectors, n, expected, where=where)
        if legacy and self.dimensions is not None:
            if arr.shape[1] < self.dimensions:
                raise ProviderResponseError(
                    f"{self.spec}: the model gives {arr.shape[1]}-d vectors, fewer than dimensions={self.dimensions}",
                    self.name)
            arr = arr[:, : self.dimensions]
        # /api/embed vectors are unit length already; the legacy ones are raw: one rule for both paths
        return l2_normalize(arr)

    # ------------------------------------------------------------------ sdk=True
    def _sdk_call(self, fn: Callable[[], Any], *, allow_truncate: bool = True) -> Any:
        import ollama

        try:
            return fn()
        except ollama.ResponseError as exc:
            if _is_model_missing(exc.status_code, str(exc.error)):
                raise self._not_found() from exc
            if not allow_truncate and _is_context_overflow(exc.status_code, str(exc.error)):
                raise self._overflow(str(exc.error)) from exc
            raise make_status_error(exc.status_code, provider=self.spec, message=str(exc.error)) from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"{self.spec}: no answer from {self.host} within {self.timeout}s; raise "
                                       "timeout= or check the server", self.name) from exc
        except (ConnectionError, httpx.TransportError) as exc:
            raise ProviderConnectionError(f"{self.spec}: cannot reach Ollama at {self.host}: {exc}; start it "
                                          "(`ollama serve`) or set OLLAMA_HOST", self.name) from exc

    def _embed_sdk(self, texts: list[str], *, allow_truncate: bool) -> Vectors:
        client = self.sdk_client
        if not self.legacy:
            try:
                resp = self._sdk_call(lambda: client.embed(
                    model=self.model, input=texts, truncate=allow_truncate, options=self.model_options,
                    keep_alive=self.keep_alive, dimensions=self.dimensions), allow_truncate=allow_truncate)
                return self._finish(list(resp.embeddings), len(texts), "/api/embed", legacy=False)
            except ProviderStatusError as exc:
                if exc.status_code != 404:
                    raise
                log.info("%s: %s has no /api/embed; using the legacy /api/embeddings", self.spec, self.host)
                self.legacy = True
        rows = []
        for t in texts:
            def legacy_call(t: str = t) -> Any:
                return client.embeddings(model=self.model, prompt=t, options=self.model_options,
                                         keep_alive=self.keep_alive)

            resp = self._sdk_call(legacy_call)
            rows.append(list(resp.embedding or []))
        if any(not r for r in rows):
            raise ProviderResponseError(f"{self.spec}: /api/embeddings returned an empty embedding", self.name)
        return self._finish(rows, len(texts), "/api/embeddings", legacy=True)

    def close(self) -> None:
        super().close()
        client = self.__dict__.pop("sdk_client", None)
        if client is not None:
            client._client.close()

