"""Row ids and content hashes of ingested chunks: what makes an ingest incremental and idempotent.

* :func:`chunk_id`: the same file, record and position give the same id on every run (an image file is
  chunk 0 of its file: :func:`obembed.images.image_id` uses the same id).
* :func:`content_hash`: everything a text row stores besides its vector; a changed hash means re-embed.
  An image row's hash is the sha256 of its file's bytes (:func:`file_sha256`, as :func:`obembed.images.load_image`
  records it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["chunk_id", "content_hash", "file_sha256"]


def chunk_id(source: str, key: str, index: int) -> str:
    """Stable id of a chunk: the same file, record and position give the same id on every run."""
    h = hashlib.sha256(f"{source}\x00{key}\x00{index}".encode("utf-8", "surrogatepass")).hexdigest()
    return h[:40]


def content_hash(text: str, metadata: Mapping[str, Any], columns: Mapping[str, Any]) -> str:
    """Hash of everything a row stores besides its vector: a changed hash means re-embed and rewrite."""
    payload = json.dumps([text, metadata, columns], ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (OSError when it cannot be read)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
