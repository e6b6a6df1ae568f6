"""The provider contract.

Every caller (``embed``/``embed_documents``/``embed_query``, the server's batcher, ingest, the framework
adapters) goes through one method, :meth:`Provider.embed_texts`: validated texts and their kind (query or
document) in, vectors in input order with the counts (tokens seen per input, truncated inputs) out, under the
call's truncation policy. Nothing travels beside it (no context variables, thread-locals or memos).

A simple backend writes only :meth:`Provider.embed_batch` (one batch -> vectors); the base class derives the
rest: input validation, truncation accounting, batching, order/count/dimension/finiteness checks and
(re-)normalisation. A backend whose call needs more overrides :meth:`Provider.embed_texts` itself.
Backends declare what the store must know (dimension, unit length, distance,
limits, prefixes) so a collection can record it.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ConfigError, InvalidInputError, ProviderResponseError, UnsupportedInputError
from ..settings import Settings, get_settings
from ..types import Distance, EmbedResult, Kind, TruncatePolicy, Vector, Vectors, check_unicode

__all__ = ["KINDS", "Provider", "check_kind", "check_unicode", "check_vectors", "estimate_tokens", "known_options",
           "l2_normalize", "truncation", "validate_texts"]

log = logging.getLogger(__name__)

_TRUNCATE_POLICIES = ("truncate", "error", "chunk")
KINDS: tuple[str, ...] = ("query", "document")


def l2_normalize(x: np.ndarray) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    out: Vectors = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return out


def estimate_tokens(text: str) -> int:
    """A conservative token estimate for models whose tokenizer we don't have.

    ASCII words cost ~1 token per 4 characters, but a CJK character can cost 1-3 tokens in
    byte-level BPE vocabularies, so non-ASCII characters count 1.5 each (over- rather than under-estimate).
    """
    ascii_chars = sum(1 for c in text if ord(c) < 128)
    other = len(text) - ascii_chars
    return math.ceil(ascii_chars / 3.0 + other * 1.5) + 2


def validate_texts(items: Iterable[Any]) -> list[str]:
    """Check every item is a non-empty string; the error names the first bad index and the fix."""
    if isinstance(items, str):
        raise InvalidInputError(
            "expected a list of texts, got a single string; wrap it in a list or use embed_query()"
        )
    if items is None or isinstance(items, Mapping) or not isinstance(items, Iterable):
        raise InvalidInputError(f"expected a list of texts, got {'None' if items is None else type(items).__name__}; "
                                "pass a list of non-empty strings")
    texts = list(items)
    for i, t in enumerate(texts):
        if t is None:
            raise InvalidInputError(f"input {i} is None; pass a non-empty string (or drop the item)", index=i)
        if not isinstance(t, str):
            raise InvalidInputError(
                f"input {i} is a {type(t).__name__}, not a string; convert it with str() or drop it"
                + (" (images go to embed_images() of an image provider such as clip:)" if _looks_like_image(t)
                   else ""),
                index=i,
            )
        if not t.strip():
            raise InvalidInputError(
                f"input {i} is empty or whitespace-only; embedding models give no meaningful vector for it: "
                "drop it before embedding",
                index=i,
            )
        check_unicode(t, f"input {i}", i)
    return texts


def check_kind(kind: object) -> Kind:
    """``kind`` if it is ``"query"`` or ``"document"``, else :class:`InvalidInputError`."""
    if kind not in KINDS:
        raise InvalidInputError(f"kind={kind!r} is not a kind of input; use one of {KINDS} (query: search "
                                "queries, with the model's query prompt; document: passages)")
    return kind  # type: ignore[return-value]


def _looks_like_image(x: Any) -> bool:
    return type(x).__module__.startswith("PIL") or isinstance(x, bytes | bytearray)


def _fact(name: str, default: Any) -> Any:
    """A provider fact stored per instance; reading it before it is set calls ``_load_facts()`` once
    (local backends load their model there), so ``provider.max_input_tokens`` is right before any embedding."""
    private = "_fact_" + name

    def getter(self: Provider) -> Any:
        if private not in self.__dict__ and not self.__dict__.get("_facts_loading"):
            self.__dict__["_facts_loading"] = True
            try:
                self._load_facts()
            finally:
                self.__dict__["_facts_loading"] = False
        return self.__dict__.get(private, default)

    def setter(self: Provider, value: Any) -> None:
        self.__dict__[private] = value

    return property(getter, setter)


class Provider(ABC):
    """Base class of every embedding backend. Subclasses implement :meth:`embed_batch`."""

    name: ClassVar[str] = ""
    """Registry name, the part of the spec before the colon."""
    supports_text: ClassVar[bool] = True
    supports_image: ClassVar[bool] = False
    secret_options: ClassVar[frozenset[str]] = frozenset({"api_key", "password", "token"})
    """Options never persisted, logged or shown."""
    extra_options: ClassVar[bool] = False
    """Whether unknown keyword options are accepted (kept in ``self.options``) instead of refused."""

    # Facts a backend may set on the instance once known (see _fact: reading one loads a lazy model first).
    normalized: bool = _fact("normalized", True)
    """Whether vectors come out unit length."""
    pooling: str | None = _fact("pooling", None)
    max_input_tokens: int | None = _fact("max_input_tokens", None)
    query_prefix: str = _fact("query_prefix", "")
    document_prefix: str = _fact("document_prefix", "")
    max_batch_items: int | None = None
    max_batch_tokens: int | None = None
    runtime: str = ""
    """Which execution path produced the vectors (``torch``, ``onnx-fp32``, ``http`` ...); part of the vector space."""

    def __init__(
        self,
        model: str,
        *,
        truncate: TruncatePolicy = "truncate",
        batch_size: int | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        if truncate not in _TRUNCATE_POLICIES:
            raise InvalidInputError(f"truncate={truncate!r} is not a policy; use one of {_TRUNCATE_POLICIES}")
        self.model = model
        self.truncate: TruncatePolicy = truncate
        self.settings = settings or get_settings()
        self.batch_size = int(batch_size or self.settings.batch_size)
        if options and not self.extra_options:
            raise ConfigError(
                f"bad option for {self.name}:{model}: unknown option(s) {sorted(options)}; "
                f"see `obembed models` and docs/providers.md for {self.name}:'s options"
            )
        self.options: dict[str, Any] = dict(options)
        self._dimension: int | None = None

    # ----------------------------------------------------------------- contract
    @abstractmethod
    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        """Embed one batch (already validated, within limits); rows in input order."""

    # ----------------------------------------------------------------- facts
    def _load_facts(self) -> None:
        """Hook: load whatever sets the facts (a local model); remote backends know them from config."""
        return None

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def dimension(self) -> int:
        """Vector size; backends set ``_dimension`` from config, else it is probed once and cached."""
        if self._dimension is None:
            self._dimension = int(self.embed_batch(["dimension probe"], kind="document").shape[1])
        return self._dimension

    @property
    def space(self) -> str:
        """Identifies the vector space: two providers with the same ``space`` give interchangeable vectors.

        Stored with a collection; writes and queries from another space are refused. Local backends
        (st/hf/onnx) override it so one model through any of them is one space (same pooling, same precision).
        """
        return f"{self.spec}|{self.dimension}"

    @property
    def distance(self) -> Distance:
        """The index distance that fits: cosine for unit vectors (same ranking as ip), l2 otherwise."""
        return "cosine" if self.normalized else "l2"

    def lend_core(self) -> AbstractContextManager[None]:
        """A context in which this provider's local model runs one thread fewer (at least one) under the automatic
        thread rule: for one-thread work obembed itself runs beside the model (the ingest pipeline builds a new
        collection's FULLTEXT index in the engine while the model embeds its last slice). No change for remote
        providers or a fixed thread count (``threads=``, ``OBEMBED_THREADS``)."""
        advisor = self.__dict__.get("_advisor") or self.__dict__.get("_thread_advisor")
        lend = getattr(advisor, "lend_core", None)
        return lend() if lend is not None else nullcontext()

    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]:
        """Tokens per text incl. prefix and special tokens; a conservative estimate by default."""
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        return [estimate_tokens(prefix + t) for t in texts]

    def public_options(self) -> dict[str, Any]:
        """Options safe to persist and show (secrets removed)."""
        return {k: v for k, v in sorted(self.options.items()) if k not in self.secret_options and v is not None}

    def info(self) -> dict[str, Any]:
        """What a collection records about this provider; serialisable, never secrets."""
        return {
            "spec": self.spec,
            "backend": self.name,
            "model": self.model,
            "options": self.public_options(),
            "dimension": self.dimension,
            "normalized": self.normalized,
            "distance": self.distance,
            "pooling": self.pooling,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "max_input_tokens": self.max_input_tokens,
            "truncate": self.truncate,
            "runtime": self.runtime,
            "space": self.space,
        }

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.public_options().items())
        return f"{type(self).__name__}({self.model!r}{', ' if opts else ''}{opts})"

    # ----------------------------------------------------------------- derived API
    def embed(
        self,
        items: Iterable[Any],
        *,
        kind: Kind = "document",
        truncate: TruncatePolicy | None = None,
    ) -> EmbedResult:
        """Embed texts with full accounting: vectors in input order plus which inputs were truncated.

        Validates the items and the policy, runs :meth:`embed_texts` (the contract) and checks what it returns."""
        kind = check_kind(kind)
        texts = validate_texts(items)
        if not texts:
            return EmbedResult(np.zeros((0, self.dimension), dtype=np.float32))
        policy = truncate or self.truncate
        if policy not in _TRUNCATE_POLICIES:
            raise InvalidInputError(f"truncate={policy!r} is not a policy; use one of {_TRUNCATE_POLICIES}")
        result = self.embed_texts(texts, kind=kind, truncate=policy)
        result.vectors = self.check_vectors(result.vectors, len(texts))
        if result.truncated:
            log.info("%s: %d of %d inputs truncated to %s tokens", self.spec, len(result.truncated), len(texts),
                     self.max_input_tokens)
        return result

    # ----------------------------------------------------------------- the contract
    def embed_texts(self, texts: Sequence[str], *, kind: Kind, truncate: TruncatePolicy) -> EmbedResult:
        """The one method every caller goes through (:meth:`embed`, the server's batcher, ingest, adapters):
        validated non-empty texts and their kind -> vectors in input order with the counts (tokens seen per
        input, the truncated ones), under the call's ``truncate`` policy.

        The default counts tokens (:meth:`count_tokens`), applies the policy (:meth:`account`) and embeds in
        batches (:meth:`embed_many` -> :meth:`embed_batch`, the only method a simple backend writes). A backend
        whose call needs more (tokenise once, a per-call flag for its server, a second output) overrides this
        method: everything it needs arrives as arguments, and everything it makes leaves in the result."""
        counts = self.count_tokens(texts, kind=kind)
        over, seen = self.account(counts, truncate)
        vectors = self.embed_many(texts, kind=kind, token_counts=counts)
        return EmbedResult(vectors, truncated=over, n_tokens=sum(seen), token_counts=seen)

    def account(self, counts: Sequence[int], truncate: TruncatePolicy) -> tuple[list[int], list[int]]:
        """Truncation accounting of one call: (indexes over the model's limit, tokens seen per input);
        under ``truncate="error"`` an over-long input is an :class:`InvalidInputError` naming it."""
        limit = self.max_input_tokens
        over, seen = truncation(counts, limit)
        if over and truncate == "error":
            i = over[0]
            raise InvalidInputError(
                f"input {i} has {counts[i]} tokens, more than {self.spec}'s limit of {limit}; shorten it, "
                "or use truncate='truncate' to cut it (counted), or ingest with truncate='chunk' to split it",
                index=i,
            )
        return over, seen

    def embed_documents(self, items: Iterable[Any], *, truncate: TruncatePolicy | None = None) -> Vectors:
        """Embed documents (passages); ``(n, d)`` float32 in input order; ``(0, d)`` for no input."""
        return self.embed(items, kind="document", truncate=truncate).vectors

    def embed_query(self, item: Any, *, truncate: TruncatePolicy | None = None) -> Vector:
        """Embed one search query (query prompt/prefix applied); ``(d,)`` float32."""
        if not isinstance(item, str):
            validate_texts([item])
        vector: Vector = self.embed([item], kind="query", truncate=truncate).vectors[0]
        return vector

    def embed_queries(self, items: Iterable[Any], *, truncate: TruncatePolicy | None = None) -> Vectors:
        """Embed many queries; ``(n, d)``."""
        return self.embed(items, kind="query", truncate=truncate).vectors

    def embed_images(self, items: Iterable[Any]) -> Vectors:
        """Embed images (paths, bytes, PIL images); only image providers (``clip:``) support it."""
        raise UnsupportedInputError(
            f"{self.spec} embeds text only; use an image provider such as clip:openai/clip-vit-base-patch32",
            self.name,
        )

    def iter_batches(self, texts: Sequence[str], counts: Sequence[int]) -> Iterator[tuple[int, int]]:
        """Split ``texts`` into [start, end) ranges within ``max_batch_items`` and ``max_batch_tokens``."""
        max_items = self.max_batch_items or self.batch_size
        max_tokens = self.max_batch_tokens
        start, tokens = 0, 0
        for i, c in enumerate(counts):
            if i > start and (i - start >= max_items or (max_tokens and tokens + c > max_tokens)):
                yield start, i
                start, tokens = i, 0
            tokens += c
        if start < len(texts):
            yield start, len(texts)

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        """Embed validated texts of any number; the default walks :meth:`iter_batches` in order."""
        parts = [self.embed_batch(texts[a:b], kind=kind) for a, b in self.iter_batches(texts, token_counts)]
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, self.dimension), np.float32)

    def check_vectors(self, vectors: Any, n: int) -> Vectors:
        """The checks every batch of this provider's vectors passes (public: the server's batcher and the
        ingest pipeline use it): ``n`` rows, this provider's dimension, no NaN/inf; contiguous float32."""
        arr = check_vectors(vectors, n, dimension=self._dimension, source=self.spec, provider=self.name)
        self._dimension = int(arr.shape[1])
        return arr

    _check = check_vectors


def check_vectors(vectors: Any, n: int, *, dimension: int | None = None, source: str = "the model",
                  provider: str | None = None) -> Vectors:
    """``vectors`` as a contiguous float32 ``(n, d)`` array, or :class:`ProviderResponseError` naming what is wrong
    (row count, dimension when ``dimension`` is given, the inputs whose vectors hold NaN/inf)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ProviderResponseError(f"{source} returned {arr.shape[0] if arr.ndim else 0} vectors for {n} inputs",
                                    provider)
    if dimension is not None and arr.shape[1] != dimension:
        raise ProviderResponseError(f"{source} returned {arr.shape[1]}-d vectors, expected {dimension}", provider)
    if not np.isfinite(arr).all():
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(arr))[0]})
        raise ProviderResponseError(f"{source} returned NaN/inf in the vectors of inputs {bad[:10]}", provider)
    return np.ascontiguousarray(arr)


def truncation(counts: Sequence[int], limit: int | None) -> tuple[list[int], list[int]]:
    """Truncation accounting for token ``counts`` under a model ``limit``: (indexes over the limit, tokens the
    model sees per input). The one rule used by :meth:`Provider.embed`, the server's batcher and ingest."""
    if limit is None:
        return [], list(counts)
    return [i for i, c in enumerate(counts) if c > limit], [min(c, limit) for c in counts]


def known_options(cls: type) -> list[str]:
    """Every keyword option a backend class takes: the keyword-only parameters of its and its bases'
    ``__init__`` (``settings`` and ``http_client``, which are no spec options, left out)."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("settings", "http_client"):
                names.add(p.name)
    return sorted(names)


def coerce_option(value: str) -> Any:
    """Turn a query-string option value into bool / int / float when it looks like one."""
    low = value.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for typ in (int, float):
        try:
            return typ(value)
        except ValueError:
            pass
    return value


def merge_options(*dicts: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        if d:
            out.update(d)
    return out


if TYPE_CHECKING:  # mypy checks here that every Provider is the contract the other layers are written against
    from ..protocols import EmbeddingProvider, QueryModel

    def _provider_is_the_contract(p: Provider) -> tuple[EmbeddingProvider, QueryModel]:
        return p, p
