"""The obembed error tree.

Every error obembed raises on purpose derives from :class:`ObembedError`; each message says what
went wrong *and* how to fix it. The CLI shows them without a traceback and exits 1; the HTTP
server answers with each class's ``http_status`` (shown in brackets; 5xx where the server itself is
set up wrongly, 4xx where the request is wrong).

::

    ObembedError                                  [500]
      ConfigError                      [400]      (bad option, bad spec, bad path)
        MissingCredentialError         [500]      (an API key env var is not set: the server's setup)
        MissingDependencyError         [500]      (an optional package is not installed: the server's setup)
        UnknownProviderError           [400]      (spec names a backend nobody registered)
        ModelNotFoundError             [404]      (local path missing / not in cache while offline / not pulled)
      InvalidInputError                [400]      (None, non-string, empty text, over-long text under "error")
      ProviderError                    [502]      (.provider)
        ProviderConnectionError        [502]
          ProviderTimeoutError         [504]
        ProviderStatusError            [502]      (.status_code, .request_id, .body)
          AuthenticationError          [401]      (401 / 403)
          RateLimitError               [429]      (429, transient)
          QuotaExceededError           [429]      (429 insufficient_quota, NOT transient)
          ProviderServerError          [502]      (5xx)
          BatchLimitError              [400]      (too many inputs in one request; .limit)
        ProviderResponseError          [502]      (wrong count, wrong dimension, bad JSON, NaN)
        UnsupportedInputError          [400]      (an image sent to a text-only model)
        PartialBatchError              [502]      (some sub-batches failed after retries; .failed, .result)
      StoreError                       [500]
        StoreConnectionError           [503]      (DSN refused, wrong password, engine failed to start)
        CollectionNotFoundError        [404]
        CollectionExistsError          [409]
        DimensionMismatchError         [400]      (vector / provider does not match the collection)
        InvalidFilterError             [400]      (filter expression refused)
      ServerBusyError                  [503]      (the embedding server's queue is full; .retry_after)
      HTTPRequestError                 [.status]  (an HTTP-level refusal: auth, size, unknown model; .code)

Rules: translate third-party exceptions at the boundary with ``raise X(...) from exc``; never put a
secret into a message (use :func:`redact`).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "BatchLimitError",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "ConfigError",
    "DimensionMismatchError",
    "HTTPRequestError",
    "InvalidFilterError",
    "InvalidInputError",
    "MigrationError",
    "MigrationPausedError",
    "MissingCredentialError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "ObembedError",
    "PartialBatchError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderResponseError",
    "ProviderServerError",
    "ProviderStatusError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "ServerBusyError",
    "StoreConnectionError",
    "StoreError",
    "UnknownProviderError",
    "UnsupportedInputError",
    "redact",
]


class ObembedError(Exception):
    """Base class of every error obembed raises on purpose."""

    http_status: ClassVar[int] = 500


class ConfigError(ObembedError):
    """Configuration is wrong: an option, a spec string, a path."""

    http_status = 400


class MissingCredentialError(ConfigError):
    """A provider needs an API key and none was given (on a server: its setup, hence 5xx)."""

    http_status = 500


class MissingDependencyError(ConfigError):
    """An optional package is needed for this feature (on a server: its setup, hence 5xx)."""

    http_status = 500

    def __init__(self, package: str, extra: str, feature: str = "") -> None:
        what = f" for {feature}" if feature else ""
        super().__init__(
            f"the package {package!r} is needed{what}: pip install 'obembed[{extra}]' (or pip install {package})"
        )
        self.package = package
        self.extra = extra


class UnknownProviderError(ConfigError):
    """The spec names a backend that is not registered."""

    def __init__(self, backend: str, known: list[str]) -> None:
        super().__init__(
            f"unknown provider backend {backend!r}; known backends: {', '.join(sorted(known))} "
            f"(spec form: BACKEND:MODEL, e.g. st:all-MiniLM-L6-v2)"
        )
        self.backend = backend
        self.known = sorted(known)


class ModelNotFoundError(ConfigError):
    """The model could not be found locally or on the configured hub."""

    http_status = 404


class InvalidInputError(ObembedError, ValueError):
    """An input item is unusable (None, not a string, empty, too long under policy 'error')."""

    http_status = 400

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ProviderError(ObembedError):
    """An embedding provider failed."""

    http_status = 502

    def __init__(self, message: str, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (transient)."""


class ProviderTimeoutError(ProviderConnectionError):
    """The provider did not answer in time (transient)."""

    http_status = 504


class ProviderStatusError(ProviderError):
    """The provider answered with an error status."""

    def __init__(
        self,
        message: str,
        provider: str | None = None,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after


class AuthenticationError(ProviderStatusError):
    """The API key was refused (401/403): check the key's env var."""

    http_status = 401


class RateLimitError(ProviderStatusError):
    """The provider throttled the request (429, transient)."""

    http_status = 429


class QuotaExceededError(ProviderStatusError):
    """The account is out of quota (429 insufficient_quota): retrying will not help."""

    http_status = 429


class ProviderServerError(ProviderStatusError):
    """The provider failed on its side (5xx, transient)."""


class BatchLimitError(ProviderStatusError):
    """The server refused a request for having too many inputs and said how many it takes (``.limit``)."""

    http_status = 400

    def __init__(self, message: str, provider: str | None = None, *, limit: int, **kwargs: Any) -> None:
        super().__init__(message, provider, **kwargs)
        self.limit = limit


class ProviderResponseError(ProviderError):
    """The provider's answer is malformed: wrong count, wrong dimension, bad JSON, NaN."""


class UnsupportedInputError(ProviderError):
    """The provider cannot embed this kind of item (e.g. an image to a text-only model)."""

    http_status = 400


class PartialBatchError(ProviderError):
    """Some sub-batches failed after retries; ``.result`` holds what succeeded, ``.failed`` the item indexes."""

    def __init__(self, message: str, provider: str | None, failed: dict[int, BaseException], result: Any) -> None:
        super().__init__(message, provider)
        self.failed = failed
        self.result = result


class StoreError(ObembedError):
    """The vector store failed."""


class StoreConnectionError(StoreError):
    """The database could not be reached, refused the login, or the embedded engine did not start."""

    http_status = 503


class CollectionNotFoundError(StoreError):
    """No such collection."""

    http_status = 404


class CollectionExistsError(StoreError):
    """A collection of that name exists already."""

    http_status = 409


class DimensionMismatchError(StoreError):
    """The vector or provider does not match the collection's recorded model or dimension."""

    http_status = 400


class InvalidFilterError(StoreError, ValueError):
    """A filter expression was refused (unknown column, bad syntax, not a safe form)."""

    http_status = 400


class ServerBusyError(ObembedError):
    """The server's queue is full; retry after ``retry_after`` seconds (HTTP 503)."""

    http_status = 503

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HTTPRequestError(ObembedError):
    """An HTTP-level refusal (auth, size, unknown model) with a status (``.status``) and an OpenAI error code."""

    http_status = 400

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers or {}


_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+"),
    re.compile(r"(?i)((?<![A-Za-z0-9_])(?:api[_-]?key|password|passwd|token|secret)[\"']?\s*[:=]\s*[\"']?)"
               r"[^\s\"',&}]+"),
    # DSN password: the user part may hold '@' (OceanBase user@tenant[#cluster]) and so may the password;
    # the userinfo ends at the last '@' before the host (which has no '@', '/' or space)
    re.compile(r"(://[^:/\s]+:)[^/\s]*(@)(?=[^@/\s]*(?:[/?#\s]|$))"),
    re.compile(r"\b(sk-)[A-Za-z0-9_\-]{6,}"),
]


def redact(text: str, *secrets: str | None) -> str:
    """Remove secrets from ``text``: the given values, bearer tokens, ``key=...`` pairs, DSN passwords."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    for pat in _SECRET_PATTERNS:
        if pat.groups == 2:
            text = pat.sub(lambda m: m.group(1) + "***" + m.group(2), text)
        else:
            text = pat.sub(lambda m: m.group(1) + "***", text)
    return text


class MigrationError(StoreError):
    """A model migration was refused (nothing to migrate, wrong step) or cannot go on as asked."""

    http_status = 409


class MigrationPausedError(MigrationError):
    """A model migration stopped on a provider error; the rows done so far are kept: rerun to resume."""

    http_status = 503
