"""From files to a searchable collection: loaders, token-aware chunking, the incremental pipeline.

::

    from obembed.ingest import ingest
    report = ingest(["docs/"], collection="docs")          # embedded store from settings, default model
    print(report.summary())

See ``docs/ingest.md``: file types, chunking, the long-input policy, incremental and crash-safe reruns.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .search import search  # eager: the name is also a submodule's, which a lazy import would shadow

if TYPE_CHECKING:
    from .chunking import Chunk, Chunker, markdown_sections, split_units
    from .ids import chunk_id, content_hash
    from .loaders import Document, Failure, LoadOptions, Notice, load_file, walk
    from .pipeline import Ingestor, ingest
    from .report import IngestReport

# imported on first use (PEP 562): `obembed search` needs only `search`, not the loaders and the pipeline
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Chunk", "Chunker", "markdown_sections", "split_units"), ".chunking"),
    **dict.fromkeys(("chunk_id", "content_hash"), ".ids"),
    **dict.fromkeys(("Document", "Failure", "LoadOptions", "Notice", "load_file", "walk"), ".loaders"),
    **dict.fromkeys(("Ingestor", "ingest"), ".pipeline"),
    "IngestReport": ".report",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'obembed.ingest' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
