"""LangChain's own standard suites (``langchain-tests``), run unmodified against obembed's adapters: the real
embedded seekdb (the session store) and the bundled all-MiniLM-L6-v2. No standard test is skipped or overridden
(``test_no_overrides_DO_NOT_OVERRIDE`` checks that)."""

from __future__ import annotations

from functools import lru_cache

import pytest

pytest.importorskip("langchain_tests", reason="the LangChain standard suites need `pip install langchain-tests`")

from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, VectorStoreIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from obembed.integrations.langchain import ObembedEmbeddings, ObembedVectorStore

MINILM = "st:all-MiniLM-L6-v2"


@lru_cache(maxsize=1)
def _minilm():
    """One loaded MiniLM for this module (the standard suites build a model per test)."""
    import obembed

    p = obembed.load(MINILM, device="cpu")
    p.dimension  # noqa: B018 - load now
    return p


class TestObembedEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[ObembedEmbeddings]:
        return ObembedEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": MINILM, "device": "cpu"}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        # the model comes from OBEMBED_MODEL when none is given (read through obembed's Settings)
        return {"OBEMBED_MODEL": MINILM}, {}, {"model": MINILM}


class TestObembedEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[ObembedEmbeddings]:
        return ObembedEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"provider": _minilm()}


class TestObembedVectorStore(VectorStoreIntegrationTests):
    """The suite as written: its deterministic test embedder (``get_embeddings``), sync and async."""

    @pytest.fixture(scope="class")
    def _collection_name(self, module_collections) -> str:
        return module_collections("lc_std")

    @pytest.fixture
    def vectorstore(self, store, _collection_name):
        vs = ObembedVectorStore(self.get_embeddings(), _collection_name, store=store)
        try:
            yield vs
        finally:
            vs.delete()  # empty again for the next test (one collection per class: creating one costs seconds)


class TestObembedVectorStoreMiniLM(VectorStoreIntegrationTests):
    """The same suite through :class:`ObembedEmbeddings` and the real MiniLM (the model recorded with the
    collection, embedding through obembed's provider)."""

    @staticmethod
    def get_embeddings() -> Embeddings:
        return ObembedEmbeddings(provider=_minilm())

    @pytest.fixture(scope="class")
    def _collection_name(self, module_collections) -> str:
        return module_collections("lc_std_minilm")

    @pytest.fixture
    def vectorstore(self, store, _collection_name):
        vs = ObembedVectorStore(self.get_embeddings(), _collection_name, store=store)
        try:
            yield vs
        finally:
            vs.delete()
