"""From files to a searchable collection: loaders, token-aware chunking, the incremental pipeline.

::

    from obembed.ingest import ingest
    report = ingest(["docs/"], collection="docs")          # embedded store from settings, default model
    print(report.summary())

See ``docs/ingest.md``: file types, chunking, the long-input policy, incremental and crash-safe reruns.
"""

from __future__ import annotations

from .chunking import Chunk, Chunker, markdown_sections, split_units
from .ids import chunk_id, content_hash
from .loaders import Document, Failure, LoadOptions, Notice, load_file, walk
from .pipeline import Ingestor, ingest
from .report import IngestReport
from .search import search

__all__ = [
    "Chunk",
    "Chunker",
    "Document",
    "Failure",
    "IngestReport",
    "Ingestor",
    "LoadOptions",
    "Notice",
    "chunk_id",
    "content_hash",
    "ingest",
    "load_file",
    "markdown_sections",
    "search",
    "split_units",
    "walk",
]
