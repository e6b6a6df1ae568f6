"""Framework adapters over obembed's Python API; each imports its framework only when used.

* :mod:`obembed.integrations.langchain` (``pip install 'obembed[langchain]'``): ``ObembedEmbeddings``,
  ``ObembedVectorStore``.
* :mod:`obembed.integrations.llama_index` (``pip install 'obembed[llamaindex]'``): ``ObembedEmbedding``,
  ``ObembedVectorStore``.

Collections they make are ordinary obembed collections (``obembed search``, ``obembed collections show`` and the
server work on them); they refuse a collection that another model wrote, naming both. See docs/frameworks.md.
"""

from __future__ import annotations

__all__: list[str] = []
