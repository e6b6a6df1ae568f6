"""The embedding stage of ingest: many chunks in, their vectors out, bad items isolated and reported.

Identical texts in a batch are embedded once; a batch the model refuses because of one input is split until
that input is alone (it becomes a failure, the others are embedded); images go through the provider's
image batch API. :func:`make_token_counter` gives the producer a thread-safe token count.

With ``sparse=True`` (a collection with a sparse column) every text gets its dense vector and its sparse
vector from one call (:func:`obembed.providers.sparse.embed_with_sparse`: one forward pass where the model can);
a sparse vector the store would refuse (NaN, negative weight, id out of range) makes that chunk a failure with
the reason, before any SQL, and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError, ObembedError, UnsupportedInputError
from ..protocols import EmbeddingProvider, ImageEmbeddingProvider
from ..store.rows import sparse_literal
from ..store.schema import SPARSE_MAX_ID
from .loaders import Failure
from .report import IngestReport

__all__ = ["ChunkEmbedder", "EmbedTask", "make_token_counter"]


@dataclass
class EmbedTask:
    """One chunk (or image file) to embed, and the row it becomes."""

    id: str
    hash: str
    text: str
    source: str
    index: int
    metadata: dict[str, Any]
    columns: dict[str, Any]
    image: bool = False


class ChunkEmbedder:
    """Embeds :class:`EmbedTask` batches with ``provider``; failures go to ``fail`` and the report's counts.
    ``sparse``: also the sparse vector of each text (same pass), for a collection with a sparse column."""

    def __init__(self, provider: EmbeddingProvider, report: IngestReport, fail: Callable[[Failure], None], *,
                 sparse: bool = False) -> None:
        self.provider = provider
        self.report = report
        self._fail = fail
        self.sparse = sparse

    def embed(self, tasks: list[EmbedTask]) -> dict[int, Any]:
        """Vectors by ``id(task)`` (with ``sparse``: ``(vector, {token id: weight})``); identical texts in a batch
        are embedded once; bad items are isolated."""
        out: dict[int, Any] = {}
        images = [t for t in tasks if t.image]
        texts = [t for t in tasks if not t.image]
        if texts:
            uniq: dict[str, int] = {}
            for t in texts:
                uniq.setdefault(t.text, len(uniq))
            order = list(uniq)
            vecs, truncated, failed = self._embed_texts(order)
            self.report.chunks_truncated += sum(1 for t in texts if uniq[t.text] in truncated)
            for t in texts:
                i = uniq[t.text]
                why = failed.get(i)
                if why is None and self.sparse:
                    why = self._sparse_problem(vecs[i][1])
                if why is not None:
                    self.report.chunks_failed += 1
                    self._fail(Failure(t.source, f"chunk {t.index}: {why}"))
                else:
                    out[id(t)] = vecs[i]
        if images:
            self._embed_images(images, out)
        return out

    def embed_slices(self, tasks: list[EmbedTask], size: int, *, tail: int | None = None,
                     before_tail: Callable[[int], bool] | None = None
                     ) -> Iterator[tuple[list[EmbedTask], dict[int, Any]]]:
        """:meth:`embed` in slices of about ``size`` distinct texts, each yielded as soon as it is embedded:
        ``(its tasks, their vectors by id(task))``, failed tasks absent from the vectors.

        The batch's distinct texts are ordered by length, longest first, before slicing: each slice then holds
        texts of similar length (the model pads as little as it would for the whole batch in one call), and
        the last slice, whose rows a writer stores after the model is done, holds the shortest texts.
        Identical texts are embedded once per batch, as in :meth:`embed`.

        ``before_tail(i)`` is called before the last text slice (``i``: the slices before it); when it returns
        True, that slice goes in pieces of ``tail`` texts, so the caller's writer stores them as they come and
        the thread rule can change between them (the ingest pipeline builds a FULLTEXT index meanwhile)."""
        texts = [t for t in tasks if not t.image]
        images = [t for t in tasks if t.image]
        by_text: dict[str, list[EmbedTask]] = {}
        for t in texts:
            by_text.setdefault(t.text, []).append(t)
        order = sorted(by_text, key=len, reverse=True)
        size = max(1, size)
        starts = range(0, len(order), size)
        for i, lo in enumerate(starts):
            step = size
            if i == len(starts) - 1 and before_tail is not None and before_tail(i):
                step = max(1, tail or size)
            for plo in range(lo, min(lo + size, len(order)), step):
                part = [t for text in order[plo:min(plo + step, lo + size)] for t in by_text[text]]
                yield part, self.embed(part)
        if images:
            yield images, self.embed(images)

    def _embed_images(self, images: list[EmbedTask], out: dict[int, Any]) -> None:
        """Images through the provider's batch API (bad images skipped with their reason), else one by one."""
        if isinstance(self.provider, ImageEmbeddingProvider):
            res = self.provider.embed_images_result([t.text for t in images], on_error="skip")
            facts = res.extra.get("facts") or []
            for row, idx in enumerate(res.extra.get("indices") or []):
                t = images[idx]
                out[id(t)] = res.vectors[row]
                if row < len(facts) and hasattr(facts[row], "to_dict"):
                    fact = facts[row].to_dict()
                    t.metadata.update({k: v for k, v in fact.items() if k not in ("uri", "source")})
                    if fact.get("sha256"):  # the bytes that were embedded (the file may have changed since)
                        t.hash = str(fact["sha256"])
            for idx, why in sorted(res.failed.items()):
                self.report.chunks_failed += 1
                self._fail(Failure(images[idx].source, f"image: {why}"))
            return
        for t in images:
            try:
                out[id(t)] = self.provider.embed_images([t.text])[0]
            except ObembedError as exc:
                self.report.chunks_failed += 1
                self._fail(Failure(t.source, f"image: {exc}"))

    @staticmethod
    def _sparse_problem(sparse: Any) -> str | None:
        """Why the store would refuse this sparse vector (the store's own check), or None."""
        try:
            sparse_literal(sparse, "the model's sparse vector", max_id=SPARSE_MAX_ID)
        except InvalidInputError as exc:
            return str(exc)
        return None

    def _call(self, texts: list[str]) -> tuple[dict[int, Any], set[int]]:
        if self.sparse:
            from ..providers.sparse import embed_with_sparse

            res = embed_with_sparse(self.provider, texts, kind="document", truncate="truncate")
            sparse = res.extra["sparse"]
            return {i: (v, sparse[i]) for i, v in enumerate(res.vectors)}, set(res.truncated)
        res = self.provider.embed(texts, kind="document", truncate="truncate")
        return dict(enumerate(res.vectors)), set(res.truncated)

    def _embed_texts(self, texts: list[str]) -> tuple[dict[int, Any], set[int], dict[int, str]]:
        """Embed with isolation: a batch refused for one input is split until the bad input is alone."""
        try:
            vecs, truncated = self._call(texts)
            return vecs, truncated, {}
        except (InvalidInputError, UnsupportedInputError) as exc:
            if len(texts) == 1:
                return {}, set(), {0: str(exc)}
            idx = getattr(exc, "index", None)
            if isinstance(idx, int) and 0 <= idx < len(texts):
                rest = [t for j, t in enumerate(texts) if j != idx]
                v, tr, fl = self._embed_texts(rest)
                remap = [j for j in range(len(texts)) if j != idx]
                return ({remap[k]: x for k, x in v.items()}, {remap[k] for k in tr},
                        {**{remap[k]: m for k, m in fl.items()}, idx: str(exc)})
            mid = len(texts) // 2
            v1, t1, f1 = self._embed_texts(texts[:mid])
            v2, t2, f2 = self._embed_texts(texts[mid:])
            return ({**v1, **{k + mid: x for k, x in v2.items()}}, t1 | {k + mid for k in t2},
                    {**f1, **{k + mid: m for k, m in f2.items()}})


def make_token_counter(provider: EmbeddingProvider) -> Callable[[Sequence[str]], list[int]]:
    """Token counts of documents as ``provider`` sees them, safe to call beside a running ``embed``.

    Hugging Face fast tokenizers are not safe to share between threads (the embedding call reconfigures
    truncation while the producer counts: "Already borrowed"), so the producer counts with its own copy of
    the provider's tokenizer; providers without one use their own ``count_tokens`` (an estimate).
    """
    import copy

    def by_provider(texts: Sequence[str]) -> list[int]:
        return list(provider.count_tokens(list(texts)))

    try:
        tok = getattr(provider, "tokenizer", None)
    except Exception:
        tok = None
    if tok is None or not callable(tok):
        return by_provider
    try:
        tok = copy.deepcopy(tok)
    except Exception:
        return by_provider
    prefix = provider.document_prefix or ""

    def by_tokenizer(texts: Sequence[str]) -> list[int]:
        enc = tok([prefix + t for t in texts], add_special_tokens=True, truncation=False, padding=False,
                  return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    try:
        probe = ["a probe sentence", "もう一つ"]
        if by_tokenizer(probe) != by_provider(probe):
            return by_provider
    except Exception:
        return by_provider
    return by_tokenizer
