"""Which model an ingest uses when the user named none: the collection's own, else the default, unless the
corpus is Chinese/Japanese/Korean (then the offline multilingual model; see :mod:`obembed.languages`); and which
FULLTEXT parser a new collection gets (``fulltext="auto"``: words, or character n-grams for unspaced scripts).
Both decisions read one sample of the corpus (:class:`CorpusSample`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..languages import ModelChoice, ParserChoice, choose_fulltext_parser, choose_model
from .loaders import Document, LoadOptions, load_file, walk

__all__ = ["CorpusSample", "choose_ingest_model", "choose_ingest_parser", "sample_texts"]

log = logging.getLogger(__name__)

SAMPLE_TEXTS = 200
SAMPLE_FILES = 200


def sample_texts(paths: Sequence[str | os.PathLike[str]], options: LoadOptions | None = None,
                 limit: int = SAMPLE_TEXTS, max_files: int = SAMPLE_FILES) -> Iterator[str]:
    """Up to ``limit`` texts from the first ``max_files`` files under ``paths`` (records: one text per record;
    a file's first 2,000 characters). Unreadable files are skipped here: the ingest itself reports them."""
    opts = options or LoadOptions()
    n = files = 0
    for item in walk(paths, opts):
        if not isinstance(item, os.PathLike) or files >= max_files:
            if files >= max_files:
                return
            continue
        files += 1
        try:
            for doc in load_file(item, opts):
                if not isinstance(doc, Document) or doc.kind == "image":
                    continue
                text = doc.text
                if text is None and doc.sections:
                    text = " ".join(s[1] for s in doc.sections[:3])
                if text is None and doc.blocks is not None:
                    text = next(iter(doc.blocks), "")
                if text and text.strip():
                    yield text[:2000]
                    n += 1
                    if n >= limit:
                        return
                    if not doc.key:  # a whole file: one text is enough
                        break
        except Exception as exc:  # the sample must never fail an ingest; the run reports the file itself
            log.debug("model choice: could not sample %s: %s", item, exc)


class CorpusSample:
    """:func:`sample_texts` of ``paths``, read at most once, when first needed."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]], options: LoadOptions | None = None) -> None:
        self.paths, self.options = paths, options
        self._texts: list[str] | None = None

    @property
    def texts(self) -> list[str]:
        if self._texts is None:
            self._texts = list(sample_texts(self.paths, self.options))
        return self._texts


def choose_ingest_parser(store: Any, collection: str, paths: Sequence[str | os.PathLike[str]] | CorpusSample,
                         fulltext: bool | str, *, options: LoadOptions | None = None
                         ) -> tuple[bool | str, ParserChoice | None]:
    """The ``fulltext`` to create ``collection`` with, and the choice behind it when one was made.

    ``"auto"``: a new collection's parser comes from a sample of the corpus
    (:func:`obembed.languages.choose_fulltext_parser`); an existing collection keeps its own, with a warning
    when the texts need n-grams and it has a word parser. ``True`` (``ngram``), a parser name or ``False`` are
    kept as they are (an existing collection is never changed).
    """
    if fulltext != "auto":
        return fulltext, None
    sample = paths if isinstance(paths, CorpusSample) else CorpusSample(paths, options)
    if store is not None and store.has_collection(collection):
        coll = store.collection(collection)
        existing = coll.metadata.get("fulltext") or coll.metadata.get("fulltext_pending")
        if not existing:
            return False, None
        choice = choose_fulltext_parser(sample.texts, existing=str(existing))
        return choice.parser, choice
    choice = choose_fulltext_parser(sample.texts)
    log.info("full-text parser for %s: %s (%s)", collection, choice.parser, choice.reason)
    return choice.parser, choice


def choose_ingest_model(store: Any, collection: str, paths: Sequence[str | os.PathLike[str]] | CorpusSample,
                        model: str | None, *, default: str, options: LoadOptions | None = None,
                        auto: bool = True) -> ModelChoice:
    """The model spec for ingesting ``paths`` into ``collection``.

    * ``model`` given (``--model``, ``OBEMBED_MODEL``, ``model=``): that one, always;
    * the collection exists: the model it was made with (a rerun needs no ``--model``);
    * else ``default`` unless a sample of the corpus is Chinese/Japanese/Korean: then the offline multilingual
      model (``auto=False``: a :class:`~obembed.errors.ConfigError` that explains the choice instead).
    """
    if model:
        return ModelChoice(model)
    if store is not None and store.has_collection(collection):
        coll = store.collection(collection)
        if coll.spec:
            recorded = dict((coll.metadata.get("provider") or {}).get("options") or {})
            return ModelChoice(str(coll.spec), options=recorded)
    sample = paths if isinstance(paths, CorpusSample) else CorpusSample(paths, options)
    return choose_model(default, sample.texts, explicit=False, auto=auto)
