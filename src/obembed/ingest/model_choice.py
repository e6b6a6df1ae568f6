"""Which model an ingest uses when the user named none: the collection's own, else the default, unless the
corpus is Chinese/Japanese/Korean (then the offline multilingual model; see :mod:`obembed.languages`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ..languages import ModelChoice, choose_model
from .loaders import Document, LoadOptions, load_file, walk

__all__ = ["choose_ingest_model", "sample_texts"]

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


def choose_ingest_model(store: Any, collection: str, paths: Sequence[str | os.PathLike[str]], model: str | None,
                        *, default: str, options: LoadOptions | None = None, auto: bool = True) -> ModelChoice:
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
    return choose_model(default, sample_texts(paths, options), explicit=False, auto=auto)
