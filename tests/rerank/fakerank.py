"""Real HTTP servers on 127.0.0.1 speaking the documented rerank APIs, with injectable faults.

On the scaffold of :mod:`tests.providers.fakeapi` (:class:`FakeServer`: threaded server, fault queue, request log):

* ``v1``        — ``POST /v1/rerank`` and ``/v2/rerank`` (Cohere / Jina / SiliconFlow / infinity shape):
  ``{"model", "query", "documents": [str], "top_n"?, "return_documents"?}`` ->
  ``{"id", "results": [{"index", "relevance_score", "document"?: {"text"}}], "meta"/"usage"}``, results sorted by
  score (best first, as the services do), Bearer auth, errors as Cohere's ``{"message"}``;
* ``tei``       — ``POST /rerank`` (text-embeddings-inference): ``{"query", "texts", "raw_scores", "truncate"}`` ->
  ``[{"index", "score"}]``; more than ``max_items`` texts -> 413 ``{"error": "batch size N > maximum allowed batch
  size M", "error_type": "Validation"}``, as TEI's ``--max-client-batch-size`` check answers;
* ``dashscope`` — native ``POST /api/v1/services/rerank/text-rerank/text-rerank``:
  ``{"model", "input": {"query", "documents"}, "parameters": {"top_n", "return_documents", "instruct"?}}`` ->
  ``{"output": {"results": [{"index", "relevance_score"}]}, "usage": {"total_tokens"}, "request_id"}``; errors
  ``{"code", "message", "request_id"}``. Over ``max_items`` documents it answers with the wording DashScope's
  embedding endpoint uses for its batch limit (assumed here for rerank too).

Scores are a deterministic function of (query, document): :func:`score_for`; ties happen on purpose
(documents sharing the same number of query words).
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any, ClassVar

from tests.providers.fakeapi import DASHSCOPE_BATCH_ERROR, FakeHandler, FakeServer, Fault

RERANK_PATH = "/api/v1/services/rerank/text-rerank/text-rerank"
MODELS = {"rerank-v3.5", "jina-reranker-v2-base-multilingual", "BAAI/bge-reranker-v2-m3", "gte-rerank-v2",
          "qwen3-rerank", "tiny-reranker"}
_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def score_for(query: str, document: str) -> float:
    """Shared query words over (1 + document words), rounded: equal for equally matching documents."""
    q, d = words(query), words(document)
    return round(len(q & d) / (1.0 + len(d)), 6)


class FakeRerankAPI(FakeServer):
    """A local rerank API; ``with FakeRerankAPI("v1", api_key=...) as api: api.url``.

    Faults (:meth:`fault`): ``status`` (status/body/headers), ``slow`` (delay), ``drop``, ``truncated``,
    ``fewer``, ``bad_index``, ``dup_index``, ``nan``, ``string_index``."""

    flavors = ("v1", "tei", "dashscope")
    max_items_by_flavor: ClassVar[dict[str, int]] = {"v1": 1000, "tei": 32, "dashscope": 500}

    def n_documents(self) -> list[int]:
        """Documents per request received, in arrival order."""
        out = []
        for r in self.received:
            b = r.body or {}
            docs = b.get("texts") if self.flavor == "tei" else (
                (b.get("input") or {}).get("documents") if self.flavor == "dashscope" else b.get("documents"))
            out.append(len(docs or []))
        return out


class _Handler(FakeHandler):
    owner: FakeRerankAPI
    injected: ClassVar[Any] = {"message": "injected"}

    def route(self, path: str, body: Any, fault: Fault | None) -> None:
        api = self.owner
        if not self._auth_ok():
            return
        if api.flavor == "v1" and path in ("/v1/rerank", "/v2/rerank", "/rerank"):
            self._v1(body, fault)
        elif api.flavor == "tei" and path == "/rerank":
            self._tei(body, fault)
        elif api.flavor == "dashscope" and path == RERANK_PATH:
            self._dashscope(body, fault)
        else:
            self._send(404, {"message": f"no route for {path}"})

    def unauthorized(self, shown: str, native: bool) -> Any:
        if self.owner.flavor == "dashscope":
            return {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": uuid.uuid4().hex}
        return {"id": uuid.uuid4().hex, "message": f"invalid api token: {shown}"}  # echoed: worst case for redaction

    @staticmethod
    def _results(query: str, docs: list[str], fault: Fault | None) -> list[dict[str, Any]]:
        scored = sorted(((score_for(query, d), i) for i, d in enumerate(docs)), key=lambda t: (-t[0], t[1]))
        results: list[dict[str, Any]] = [{"index": i, "relevance_score": s} for s, i in scored]
        kind = fault.kind if fault is not None else None
        if kind == "fewer":
            results = results[:-1]
        elif kind == "bad_index":
            results[0]["index"] = len(docs) + 3
        elif kind == "dup_index" and len(results) > 1:
            results[1]["index"] = results[0]["index"]
        elif kind == "nan":
            results[0]["relevance_score"] = math.nan
        elif kind == "string_index":
            results[0]["index"] = str(results[0]["index"])
        return results

    def _v1(self, body: Any, fault: Fault | None) -> None:
        api = self.owner
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not isinstance(
                body.get("documents"), list):
            self._send(400, {"message": "invalid request: query and documents are required"})
            return
        if body.get("model") not in MODELS:
            self._send(404, {"message": f"model '{body.get('model')}' not found"})
            return
        docs = body["documents"]
        if len(docs) > api.max_items:
            self._send(400, {"message": f"too many documents: {len(docs)} > {api.max_items}"})
            return
        results = self._results(body["query"], docs, fault)
        if body.get("return_documents", True) is not False:  # Jina's default: the texts come back too
            for r in results:
                if isinstance(r["index"], int) and 0 <= r["index"] < len(docs):
                    r["document"] = {"text": docs[r["index"]]}
        top_n = body.get("top_n")
        if isinstance(top_n, int):
            results = results[:top_n]
        out = {"id": uuid.uuid4().hex, "results": results,
               "meta": {"billed_units": {"search_units": 1}}}
        self._send(200, out, truncate=fault is not None and fault.kind == "truncated")

    def _tei(self, body: Any, fault: Fault | None) -> None:
        api = self.owner
        texts = (body or {}).get("texts")
        if not isinstance(texts, list) or not isinstance((body or {}).get("query"), str):
            self._send(422, {"error": "Failed to deserialize the JSON body", "error_type": "Validation"})
            return
        if len(texts) > api.max_items:
            self._send(413, {"error": f"batch size {len(texts)} > maximum allowed batch size {api.max_items}",
                             "error_type": "Validation"})
            return
        results = [{"index": r["index"], "score": r["relevance_score"]}
                   for r in self._results(body["query"], texts, fault)]
        self._send(200, results, truncate=fault is not None and fault.kind == "truncated")

    def _dashscope(self, body: Any, fault: Fault | None) -> None:
        api = self.owner
        rid = uuid.uuid4().hex
        inp = (body or {}).get("input") or {}
        params = (body or {}).get("parameters") or {}
        if (body or {}).get("model") not in MODELS:
            self._send(400, {"code": "InvalidParameter", "message": "Model not exist.", "request_id": rid}, rid=rid)
            return
        docs, query = inp.get("documents"), inp.get("query")
        if not isinstance(docs, list) or not docs or not isinstance(query, str) or not query:
            self._send(400, {"code": "InvalidParameter", "message": "query and documents are required",
                             "request_id": rid}, rid=rid)
            return
        if len(docs) > api.max_items:
            self._send(400, {"code": "InvalidParameter", "message": DASHSCOPE_BATCH_ERROR.format(n=api.max_items),
                             "request_id": rid}, rid=rid)
            return
        results = self._results(query, docs, fault)
        if isinstance(params.get("top_n"), int):
            results = results[: params["top_n"]]
        out = {"output": {"results": results}, "usage": {"total_tokens": sum(len(d) for d in docs)},
               "request_id": rid}
        self._send(200, out, rid=rid, truncate=fault is not None and fault.kind == "truncated")


FakeRerankAPI.handler = _Handler
