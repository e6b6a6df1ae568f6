"""Real HTTP servers on 127.0.0.1 speaking the documented embedding APIs, with injectable faults.

One :class:`FakeAPI` per API family (``openai``, ``ollama``, ``dashscope``), each a ``ThreadingHTTPServer`` on a
free port, HTTP/1.1 keep-alive, serving:

* ``openai``    — ``POST /v1/embeddings`` (float or base64 per ``encoding_format``, ``data`` in *reversed* index
  order, ``dimensions`` only for text-embedding-3-*, 2048 inputs max, ``""`` refused, Bearer auth);
* ``dashscope`` — compatible mode ``POST /compatible-mode/v1/embeddings`` (10 inputs max with DashScope's 400 body
  verbatim, float only) and native ``POST /api/v1/services/embeddings/text-embedding/text-embedding``
  (``text_index``, ``text_type``, ``dimension``, ``output_type`` with sparse);
* ``ollama``    — ``POST /api/embed`` (unit vectors, ``embeddings: []`` for empty input, ``truncate``,
  ``dimensions``, model-not-found 404) and the legacy ``POST /api/embeddings`` (raw vectors, ``prompt``);
  ``legacy_only=True`` makes ``/api/embed`` a Go-style ``404 page not found``. Also answers any
  ``*/embeddings`` OpenAI-style (Ollama's ``/v1`` compatibility layer is not needed here).

Every vector is a deterministic function of (text, model, dimension): :func:`vector_for`.
The server records what it received (:attr:`FakeAPI.received`) and applies queued faults (:meth:`FakeAPI.fault`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

import numpy as np

# model -> (native dimension, default dimension, allowed `dimensions` or None = any <= native, accepts dims)
MODELS: dict[str, tuple[int, int, tuple[int, ...] | None, bool]] = {
    "text-embedding-3-small": (1536, 1536, None, True),
    "text-embedding-3-large": (3072, 3072, None, True),
    "text-embedding-ada-002": (1536, 1536, None, False),
    "text-embedding-v3": (1024, 1024, (1024, 768, 512, 256, 128, 64), True),
    "text-embedding-v4": (2048, 1024, (2048, 1536, 1024, 768, 512, 256, 128, 64), True),
    "text-embedding-v2": (1536, 1536, None, False),
    "Baichuan-Text-Embedding": (1024, 1024, None, False),
    "doubao-embedding-large": (2048, 2048, None, False),
    "nomic-embed-text": (768, 768, None, True),
    "all-minilm": (384, 384, None, True),
    "tiny": (8, 8, None, True),
}
LEGACY_SCALE = 7.5  # the legacy Ollama endpoint returns raw, non-normalised vectors
DASHSCOPE_BATCH_ERROR = ("<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, "
                         "it should not be larger than {n}.: input.contents")
NATIVE_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"


@lru_cache(maxsize=100_000)
def _base(text: str, model: str, native: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{model}\x00{text}".encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(native).astype(np.float64)
    return v / np.linalg.norm(v)


def vector_for(text: str, model: str, dim: int | None = None) -> np.ndarray:
    """The unit vector the servers return for ``text`` (server-side ``dimensions``: cut, then re-normalise)."""
    native = MODELS[model][0]
    v = _base(text, model, native)[: dim or native]
    return (v / np.linalg.norm(v)).astype(np.float32)


def sparse_token_id(word: str) -> int:
    """The token id the DashScope server gives a word (a Qwen-sized vocabulary: ids below 151,646)."""
    return int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % 151_646


def sparse_for(text: str) -> list[dict[str, Any]]:
    """The documented ``sparse_embedding`` of the native API: one ``{"index", "value", "token"}`` per distinct
    word of ``text``, the k-th word weighted ``1 / (k + 1)``."""
    return [{"index": sparse_token_id(w), "value": round(1.0 / (k + 1), 4), "token": w}
            for k, w in enumerate(dict.fromkeys(text.split()))]


@lru_cache(maxsize=100_000)
def _float_json(text: str, model: str, dim: int) -> str:
    return json.dumps([round(float(x), 7) for x in vector_for(text, model, dim)])


def _b64(text: str, model: str, dim: int) -> str:
    return base64.b64encode(vector_for(text, model, dim).astype("<f4").tobytes()).decode()


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def n_inputs(self) -> int:
        b = self.body or {}
        inp = b.get("input")
        if isinstance(inp, dict):
            inp = inp.get("texts")
        if inp is None and "prompt" in b:
            return 1
        return 1 if isinstance(inp, str) else len(inp or [])


@dataclass
class Fault:
    kind: str  # status | slow | truncated | fewer | wrong_dim | base64 | drop | bad_sparse (weight = body)
    times: int = 1
    path: str | None = None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    contains: str | None = None
    """Only for requests whose body (as JSON) contains this string, e.g. one input text."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that timed out and hung up is expected
            super().handle_error(request, client_address)


class FakeServer:
    """The scaffold every local API server of the tests shares (embeddings here, rerank in ``tests/rerank``).

    A ``ThreadingHTTPServer`` on a free 127.0.0.1 port speaking HTTP/1.1 keep-alive; a request log
    (:attr:`received`), a fault queue (:meth:`fault`), a count of requests in flight, an optional latency and an
    optional concurrency cap (429 above it). A subclass names its :class:`FakeHandler` subclass in ``handler``
    and its per-flavour batch limits in ``max_items_by_flavor``.
    """

    handler: type[FakeHandler]
    flavors: tuple[str, ...] = ()
    max_items_by_flavor: ClassVar[dict[str, int]] = {}

    def __init__(self, flavor: str, *, api_key: str | None = None, latency: float = 0.0,
                 max_items: int | None = None, record: bool = True, max_concurrent: int | None = None) -> None:
        assert flavor in self.flavors, flavor
        self.flavor = flavor
        self.api_key = api_key
        self.latency = latency
        self.default_max_items = max_items if max_items is not None else self.max_items_by_flavor[flavor]
        self.max_items = self.default_max_items
        self.record = record
        self.max_concurrent = max_concurrent
        """Answer 429 (like a rate-limiting gateway) while more requests than this are in flight."""
        self.n_throttled = 0
        self.received: list[Received] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None

    # -------------------------------------------------------------- lifecycle
    def start(self) -> Self:
        class Handler(self.handler):
            owner = self

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Back to the state after start: no log, no faults, no latency or cap, the default batch limit."""
        with self.lock:
            self.received.clear()
            self.faults.clear()
            self.max_in_flight = 0
            self.n_throttled = 0
        self.max_concurrent = None
        self.latency = 0.0
        self.max_items = self.default_max_items

    def fault(self, kind: str, *, times: int = 1, path: str | None = None, **kw: Any) -> None:
        """Queue a fault for the next ``times`` matching requests (``path``: substring of the request path)."""
        with self.lock:
            self.faults.append(Fault(kind, times=times, path=path, **kw))

    def take_fault(self, path: str, raw: bytes = b"") -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and (f.path is None or f.path in path) and (
                        f.contains is None or f.contains.encode() in raw):
                    f.times -= 1
                    return f
        return None

    def requests_to(self, suffix: str) -> list[Received]:
        return [r for r in self.received if r.path.endswith(suffix)]


class FakeHandler(BaseHTTPRequestHandler):
    """The request plumbing of a :class:`FakeServer`: read and log the body, count it in flight, apply the
    concurrency cap, latency and the queued ``slow``/``status``/``drop`` faults, then :meth:`route` the rest."""

    owner: FakeServer
    protocol_version = "HTTP/1.1"
    injected: ClassVar[Any] = {"error": "injected"}
    """The body of a ``status`` fault queued without one."""

    def log_message(self, format: str, *args: Any) -> None:  # silence
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, *,
              truncate: bool = False, content_type: str = "application/json", rid: str | None = None) -> None:
        raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        if truncate:
            raw = raw[: max(1, len(raw) // 2)]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("x-request-id", rid or "req-" + uuid.uuid4().hex[:12])
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        api = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?")[0]
        if api.record:
            with api.lock:
                api.received.append(Received("POST", path, {k.lower(): v for k, v in self.headers.items()}, body))
        with api.lock:
            api.in_flight += 1
            api.max_in_flight = max(api.max_in_flight, api.in_flight)
            over = api.max_concurrent is not None and api.in_flight > api.max_concurrent
            api.n_throttled += over
        try:
            if over:
                self._send(429, {"error": {"message": "Requests rate limit exceeded, please try again later.",
                                           "type": "limit_requests", "param": None, "code": "limit_requests"}})
                return
            if api.latency:
                time.sleep(api.latency)
            fault = api.take_fault(path, raw)
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
                fault = None
            if fault is not None and fault.kind == "status":
                b = fault.body
                self._send(fault.status, b if b is not None else self.injected, fault.headers,
                           content_type="application/json" if not isinstance(b, str) or b.startswith("{")
                           else "text/plain")
                return
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.route(path, body, fault)
        finally:
            with api.lock:
                api.in_flight -= 1

    def _auth_ok(self, native: bool = False) -> bool:
        """Whether the request carries ``Bearer <api_key>`` (always, without a key); else a 401 is sent."""
        api = self.owner
        if api.api_key is None:
            return True
        got = self.headers.get("Authorization", "")
        if got == f"Bearer {api.api_key}":
            return True
        self._send(401, self.unauthorized(got.removeprefix("Bearer "), native))
        return False

    def unauthorized(self, shown: str, native: bool) -> Any:
        """The body of a 401 for the wrong key ``shown`` (``native``: the provider's own API, not its
        OpenAI-compatible one)."""
        raise NotImplementedError

    def route(self, path: str, body: Any, fault: Fault | None) -> None:
        """Answer one request that no fault took (``fault``: a queued fault the route itself applies)."""
        raise NotImplementedError


class FakeAPI(FakeServer):
    """A local embedding API; ``with FakeAPI("openai") as api: api.url``."""

    flavors = ("openai", "ollama", "dashscope")
    max_items_by_flavor: ClassVar[dict[str, int]] = {"openai": 2048, "dashscope": 10, "ollama": 10_000}

    def __init__(self, flavor: str, *, api_key: str | None = None, latency: float = 0.0,
                 max_items: int | None = None, legacy_only: bool = False, record: bool = True,
                 max_concurrent: int | None = None) -> None:
        super().__init__(flavor, api_key=api_key, latency=latency, max_items=max_items, record=record,
                         max_concurrent=max_concurrent)
        self.legacy_only = legacy_only

    def reset(self) -> None:
        super().reset()
        self.legacy_only = False


class _Handler(FakeHandler):
    owner: FakeAPI

    def do_GET(self) -> None:
        if self.path in ("/", "/api/version"):
            self._send(200, {"version": "0.12.0"} if self.path != "/" else "Ollama is running",
                       content_type="application/json" if self.path != "/" else "text/plain")
            return
        self._send(404, "404 page not found", content_type="text/plain")

    def unauthorized(self, shown: str, native: bool) -> Any:
        """The 401 body for a wrong key ``shown``: DashScope's native shape, else OpenAI's, which echoes (a masked
        form of) the key it got; echo it whole, the worst case for redaction."""
        if native:
            return {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": uuid.uuid4().hex}
        return {"error": {"message": f"Incorrect API key provided: {shown}. You can find your API key at "
                                     "https://platform.openai.com/account/api-keys.",
                          "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}

    def route(self, path: str, body: Any, fault: Fault | None) -> None:
        api = self.owner
        if api.flavor == "ollama" and path == "/api/embed":
            if api.legacy_only:
                self._send(404, "404 page not found", content_type="text/plain")
            else:
                self._ollama_embed(body, fault)
        elif api.flavor == "ollama" and path == "/api/embeddings":
            self._ollama_legacy(body, fault)
        elif api.flavor == "dashscope" and path == NATIVE_PATH:
            if self._auth_ok(native=True):
                self._dashscope_native(body, fault)
        elif path.endswith("/embeddings"):
            if self._auth_ok():
                self._openai(body, fault)
        else:
            self._send(404, "404 page not found", content_type="text/plain")

    # -------------------------------------------------------------- OpenAI / compatible mode
    def _openai_error(self, status: int, message: str, code: str | None = None, type_: str = "invalid_request_error",
                      headers: dict[str, str] | None = None) -> None:
        body: dict[str, Any] = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        if self.owner.flavor == "dashscope":
            body["request_id"] = uuid.uuid4().hex
        self._send(status, body, headers)

    def _openai(self, body: Any, fault: Fault | None) -> None:
        api = self.owner
        if not isinstance(body, dict) or "model" not in body or "input" not in body:
            self._openai_error(400, "you must provide a model and an input parameter")
            return
        model, inp = body["model"], body["input"]
        texts = [inp] if isinstance(inp, str) else inp
        if model not in MODELS:
            self._openai_error(404, f"The model `{model}` does not exist or you do not have access to it.",
                               "model_not_found")
            return
        if not isinstance(texts, list) or not texts or any(not isinstance(t, str) or t == "" for t in texts):
            self._openai_error(400, "'$.input' is invalid. Please check the API reference: "
                                    "https://platform.openai.com/docs/api-reference.")
            return
        if len(texts) > api.max_items:
            if api.flavor == "dashscope":
                self._openai_error(400, DASHSCOPE_BATCH_ERROR.format(n=api.max_items), "InvalidParameter",
                                   "InvalidParameter")
            else:
                self._openai_error(400, f"'$.input' is invalid: at most {api.max_items} inputs per request")
            return
        native, default, allowed, takes_dims = MODELS[model]
        dim = default
        if body.get("dimensions") is not None:
            d = body["dimensions"]
            if not takes_dims:
                self._openai_error(400, "This model does not support specifying dimensions.")
                return
            if (allowed and d not in allowed) or not 0 < d <= native:
                self._openai_error(400, f"Invalid value for dimensions: {d}")
                return
            dim = d
        fmt = body.get("encoding_format") or "float"
        if api.flavor == "dashscope":
            fmt = "float"  # compatible mode speaks float only
        if fault is not None and fault.kind == "base64":
            fmt = "base64"
        order = list(range(len(texts)))[::-1]  # nothing promises sorted order: serve it reversed
        if fault is not None and fault.kind == "fewer":
            order = order[1:]
        parts = []
        for i in order:
            if fmt == "base64":
                emb = json.dumps(_b64(texts[i], model, dim))
            else:
                emb = _float_json(texts[i], model, dim)
                if fault is not None and fault.kind == "wrong_dim":
                    emb = json.dumps(json.loads(emb)[:-8])
            parts.append(f'{{"object":"embedding","index":{i},"embedding":{emb}}}')
        n_tok = sum(max(1, len(t) // 4) for t in texts)
        out = (f'{{"object":"list","data":[{",".join(parts)}],"model":{json.dumps(model)},'
               f'"usage":{{"prompt_tokens":{n_tok},"total_tokens":{n_tok}}}'
               + (f',"id":"{uuid.uuid4().hex}"' if api.flavor == "dashscope" else "") + "}")
        self._send(200, out, truncate=fault is not None and fault.kind == "truncated")

    # -------------------------------------------------------------- DashScope native
    def _dashscope_native(self, body: Any, fault: Fault | None) -> None:
        api = self.owner
        rid = uuid.uuid4().hex
        model = (body or {}).get("model")
        texts = ((body or {}).get("input") or {}).get("texts")
        params = (body or {}).get("parameters") or {}
        if model not in MODELS:
            self._send(400, {"code": "InvalidParameter", "message": "Model not exist.", "request_id": rid})
            return
        if not isinstance(texts, list) or not texts or any(not isinstance(t, str) or not t for t in texts):
            self._send(400, {"code": "InvalidParameter", "message": "<400> InternalError.Algo.InvalidParameter: "
                             "Range of input length should be [1, 8192]", "request_id": rid})
            return
        if len(texts) > api.max_items:
            self._send(400, {"code": "InvalidParameter", "message": DASHSCOPE_BATCH_ERROR.format(n=api.max_items),
                             "request_id": rid})
            return
        _native, default, allowed, _ = MODELS[model]
        dim = params.get("dimension") or default
        if allowed and dim not in allowed:
            self._send(400, {"code": "InvalidParameter", "message": f"Value error, dimension {dim} is invalid",
                             "request_id": rid})
            return
        otype = params.get("output_type", "dense")
        items = []
        order = list(range(len(texts)))[::-1]
        if fault is not None and fault.kind == "fewer":
            order = order[1:]
        for i in order:
            item: dict[str, Any] = {"text_index": i}
            if "dense" in otype:
                vec = [round(float(x), 7) for x in vector_for(texts[i], model, dim)]
                item["embedding"] = vec[:-8] if fault is not None and fault.kind == "wrong_dim" else vec
            if "sparse" in otype:
                item["sparse_embedding"] = sparse_for(texts[i])
                if fault is not None and fault.kind == "bad_sparse":
                    item["sparse_embedding"][0]["value"] = fault.body  # e.g. NaN, -1.0, "x"
            items.append(item)
        out = {"output": {"embeddings": items}, "usage": {"total_tokens": sum(len(t) for t in texts)},
               "request_id": rid}
        self._send(200, out, truncate=fault is not None and fault.kind == "truncated")

    # -------------------------------------------------------------- Ollama
    def _ollama_error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _ollama_embed(self, body: Any, fault: Fault | None) -> None:
        model = (body or {}).get("model", "")
        name = model.split(":")[0]
        if name not in MODELS:
            self._ollama_error(404, f'model "{model}" not found, try pulling it first')
            return
        inp = body.get("input", "")
        texts = [inp] if isinstance(inp, str) else list(inp)
        texts = [t for t in texts if t != ""]  # empty input gives no vector at all: `embeddings: []`
        native = MODELS[name][0]
        dim = body.get("dimensions") or native
        if not 0 < dim <= native:
            self._ollama_error(400, f"invalid dimensions {dim}")
            return
        if body.get("truncate") is False and any(len(t.split()) > 512 for t in texts):
            self._ollama_error(400, "the input length exceeds the context length")
            return
        vecs = [vector_for(t, name, dim) for t in texts]
        if fault is not None and fault.kind == "fewer":
            vecs = vecs[:-1]
        if fault is not None and fault.kind == "wrong_dim":
            vecs = [v[:-8] for v in vecs]
        out = {"model": model, "embeddings": [[round(float(x), 7) for x in v] for v in vecs],
               "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8 * len(vecs)}
        self._send(200, out, truncate=fault is not None and fault.kind == "truncated")

    def _ollama_legacy(self, body: Any, fault: Fault | None) -> None:
        model = (body or {}).get("model", "")
        name = model.split(":")[0]
        if name not in MODELS:
            self._ollama_error(404, f'model "{model}" not found, try pulling it first')
            return
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:  # e.g. `input` sent to the legacy endpoint
            self._send(200, {"embedding": []})
            return
        raw = vector_for(prompt, name) * LEGACY_SCALE
        self._send(200, {"embedding": [float(x) for x in raw]},
                   truncate=fault is not None and fault.kind == "truncated")


FakeAPI.handler = _Handler
