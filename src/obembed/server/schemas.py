"""The request bodies of the server's routes (pydantic models; FastAPI validates and documents them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import InvalidInputError
from ..providers.base import check_unicode

__all__ = ["EmbeddingsRequest", "OllamaEmbedRequest", "OllamaEmbeddingsRequest", "Request", "RerankDocument",
           "RerankRequest", "SearchRequest"]

MAX_DEPTH = 32
"""How deeply a request body may nest (a filter's and/or/not tree is far shallower)."""


def _check_strings(value: Any, path: str, depth: int = 0) -> None:
    """Refuse a JSON string that is not Unicode text (a lone surrogate, ``"\\ud800"``) anywhere in a body,
    naming where it is (``input[1]``, ``filter.lang``): no route gets a string it cannot encode."""
    if depth > MAX_DEPTH:
        raise InvalidInputError(f"{path} is nested more than {MAX_DEPTH} levels deep; no route takes that")
    if isinstance(value, str):
        check_unicode(value, path or "body")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_unicode(str(k), f"a key of {path or 'the body'}")
            _check_strings(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{path}[{i}]", depth + 1)


class Request(BaseModel):
    """Base of the request bodies: every string in the body is valid Unicode text (else a 400 naming it)."""

    @model_validator(mode="before")
    @classmethod
    def _unicode_only(cls, data: Any) -> Any:
        _check_strings(data, "")
        return data


class EmbeddingsRequest(Request):
    """OpenAI ``POST /v1/embeddings``."""

    model_config = ConfigDict(extra="allow")

    input: str | list[str] | list[int] | list[list[int]] = Field(
        ..., description="A text or a list of texts (token arrays are refused: send text).")
    model: str | None = Field(None, description="A served model's name (GET /v1/models); default: the first.")
    dimensions: int | None = Field(None, description="Truncate to this many dimensions and re-normalise.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: JSON numbers; base64: little-endian float32 bytes.")
    user: str | None = None
    input_type: Literal["query", "document"] | None = Field(
        None, description="obembed extension: embed as search queries (applies the model's query prompt).")


class OllamaEmbedRequest(Request):
    """Ollama ``POST /api/embed``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field("", description="A served model's name.")
    input: str | list[str] | None = Field(None, description="A text or a list of texts; empty gives no vectors.")
    truncate: bool | None = Field(True, description="false: an input over the context length is a 400.")
    dimensions: int | None = None
    options: dict[str, Any] | None = Field(None, description="Accepted and ignored.")
    keep_alive: str | float | None = Field(None, description="Accepted and ignored.")


class OllamaEmbeddingsRequest(Request):
    """Ollama legacy ``POST /api/embeddings``."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | float | None = None


class SearchRequest(Request):
    """``POST /search``."""

    model_config = ConfigDict(populate_by_name=True)

    collection: str = Field(..., description="Collection name (GET /collections).")
    query: str = Field(..., description="Query text.")
    k: int = Field(10, description="How many hits (1..max_k).")
    filter: dict[str, Any] | str | None = Field(
        None, alias="filter", description='Filter: {"lang": "ja", "year": {">=": 2020}} or "lang = \'ja\'".')
    where: dict[str, Any] | str | None = Field(None, description="Same as filter.")
    hybrid: bool = Field(False, description="Vector + full-text (collections created with fulltext); same as "
                         "mode 'hybrid:dense=1,fulltext=1'.")
    mode: str | None = Field(
        None, description="Search mode, as `obembed eval --mode` writes it: dense (default), sparse, fulltext, hybrid "
        "(every leg the collection has) or hybrid:dense=1,fulltext=0.5; +rerank reranks (as rerank: true).")
    weights: dict[str, float] | None = Field(
        None, description='Hybrid weights per leg, e.g. {"dense": 1, "fulltext": 0.5} (or write them in mode).')
    rerank: bool = Field(False, description="Order the first stage's candidates with the server's reranker "
                         "(obembed serve --rerank-model SPEC).")
    candidates: int | None = Field(
        None, description="Rows the reranker reads (default max(4k, 40)), or each hybrid leg returns.")
    exact: bool | None = Field(
        None, description="true: exact (brute-force) scan; false: the vector index; null (default): the store's "
        "policy (exact up to 20,000 rows, the index above), as in Python and `obembed search`.")


class RerankDocument(BaseModel):
    """A document as an object (Cohere v1 / Jina accept ``{"text": ...}``)."""

    model_config = ConfigDict(extra="allow")

    text: str


class RerankRequest(Request):
    """``POST /v1/rerank`` (also ``/v2/rerank``, ``/rerank``): the Cohere / Jina request."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="The served reranker's name (optional: there is one).")
    query: str = Field(..., description="The query the documents are scored against.")
    documents: list[str | RerankDocument] = Field(..., description="Texts (or {text} objects) to score.")
    top_n: int | None = Field(None, description="Return only the best N (default: all).")
    return_documents: bool = Field(False, description="Include each document's text in its result.")
