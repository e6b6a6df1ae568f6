"""``onnx:`` — a local st/hf model exported once to ONNX and run with onnxruntime + the fast tokenizer.

* The export is made with ``torch.onnx`` (dynamic batch and sequence axes) the first time a model is used
  and cached under ``settings.cache_dir`` (``OBEMBED_CACHE_DIR``), else ``$XDG_CACHE_HOME/obembed`` or
  ``~/.cache/obembed``, in ``onnx/<hash of the model files>/``. It is verified against the torch reference
  on a probe set at export time (sentence-transformers when the folder has ``modules.json``); the result
  is recorded in ``manifest.json`` beside the model file.
* At query time only onnxruntime, tokenizers and numpy are imported (no torch, no transformers): a first
  vector in well under a second from a fresh process.
* Pooling and normalisation come from the model's own files (``modules.json``, ``1_Pooling``,
  ``sentence_bert_config.json``), as for ``hf:``; done in numpy.
* Trap fixed: MiniLM's shipped ``tokenizer.json`` pins truncation 128 and fixed padding 128; here it is
  truncated at the model's ``max_seq_length`` (256) and padded per batch to the longest item.
* ``precision=int8``: dynamic int8 quantisation (``quantize_dynamic``, per-channel, ``reduce_range=True``,
  the AVX2-safe config). Its vectors are close to, but not the same as, fp32: it is a different
  vector space (``space`` ends in ``|int8``), never mixed with fp32 vectors in one collection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError, ModelNotFoundError, ProviderError
from ..types import Kind, Vectors
from ._local import LocalModelConfig, read_model_config, resolve_model
from .base import Provider, l2_normalize

__all__ = [
    "EXPORT_VERSION",
    "FP32_MIN_COSINE",
    "OnnxProvider",
    "cache_root",
    "ensure_export",
    "model_key",
    "pool_numpy",
]

log = logging.getLogger(__name__)

EXPORT_VERSION = "1"
"""Bumped when the export format changes (part of the cache key)."""
FP32_MIN_COSINE = 0.9999
"""An fp32 export must reproduce the torch reference at least this closely on every probe text."""
INT8_MIN_COSINE = 0.95
"""An int8 export below this on any probe text is refused (measured: min 0.990, mean 0.993 for MiniLM)."""
PRECISIONS = {"fp32": "fp32", "float32": "fp32", "int8": "int8", "qint8": "int8"}
_MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model", ".py")
_SKIP_FILES = {"README.md", ".gitattributes", "data_config.json"}

PROBE_TEXTS = [
    "x",
    "What is OceanBase?",
    "The weather is lovely today.",
    "A distributed relational database with vector search and full-text indexes.",
    "Debian package: utilities to manage ext2, ext3 and ext4 file systems, including e2fsck and mke2fs.",
    "東京は日本の首都です。",
    "Ünïcödé àccents, emoji 🙂 and CAPITALS MiXeD 12345 3.14159",
    " ".join(["This sentence is repeated to make a text longer than 128 tokens."] * 14),  # ~190 tokens
    " ".join(["A very long document that runs past the model's maximum sequence length."] * 40),  # > 512
    "short",
    "  leading and trailing spaces  ",
    "line one\nline two\ttabbed",
]


# ------------------------------------------------------------------------------------------ cache + key
def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the ONNX exports: ``<base>/onnx``, base = ``cache_dir`` / ``OBEMBED_CACHE_DIR`` /
    ``$XDG_CACHE_HOME/obembed`` / ``~/.cache/obembed``."""
    from ..settings import get_settings

    base = cache_dir or get_settings().cache_dir
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "obembed" if xdg else Path.home() / ".cache" / "obembed"
    return Path(base).expanduser() / "onnx"


def _model_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in _MODEL_SUFFIXES
             and p.name not in _SKIP_FILES and ".cache" not in p.parts]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def model_key(folder: str | Path, root: Path | None = None) -> str:
    """A content hash of the model's files (weights, configs, tokenizer) and the export version.

    Hashing ~90 MB takes ~0.1-0.2 s, so the result is memoised in ``<root>/index.json`` under a fingerprint
    of the files' paths, sizes and mtimes: unchanged files are never re-read on the query path.
    """
    folder = Path(folder).resolve()
    files = _model_files(folder)
    stats = [(p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    fingerprint = hashlib.sha256(json.dumps([str(folder), EXPORT_VERSION, stats]).encode()).hexdigest()
    index_file = (root or cache_root()) / "index.json"
    index = _read_index(index_file)
    if fingerprint in index:
        return str(index[fingerprint])
    h = hashlib.sha256(f"obembed-onnx-export-v{EXPORT_VERSION}\n".encode())
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    key = h.hexdigest()[:24]
    index[fingerprint] = key
    with contextlib.suppress(OSError):
        _write_json_atomic(index_file, index)
    return key


def _read_index(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive file lock, so two processes never export the same model at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        yield


# ------------------------------------------------------------------------------------------ model facts
def local_folder(name: str) -> Path:
    """The model's local folder: a path, the bundled MiniLM, or a hub id already in the local HF cache."""
    resolved = resolve_model(name)
    path = Path(resolved)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        from ._local import hub_config_folder

        with contextlib.suppress(Exception):  # modules.json & co, fetched as st:/hf: would (not only if cached)
            hub_config_folder(resolved)
        return Path(snapshot_download(resolved, local_files_only=True))
    except Exception as exc:
        raise ModelNotFoundError(
            f"onnx:{name} needs the model's files locally: pass a model folder, or load it once with "
            f"st:{name} (which downloads it to the Hugging Face cache) and retry"
        ) from exc


@dataclass
class ModelFacts:
    """What the ONNX path needs to know about a model, read from its files (no torch)."""

    folder: Path
    config: LocalModelConfig
    dimension: int
    max_seq_length: int
    normalize: bool


def read_facts(name: str, folder: Path, *, max_seq_length: int | None = None) -> ModelFacts:
    cfg = read_model_config(folder, name)
    if cfg.dense_layers:
        raise ConfigError(f"{name} has Dense modules after pooling, which onnx: does not run; use st:{name}")
    conf = _json_or_empty(folder / "config.json")
    dim = conf.get("hidden_size") or conf.get("d_model") or conf.get("dim")
    if not dim:
        raise ConfigError(f"{folder}/config.json has no hidden_size; onnx: needs a transformer encoder folder")
    tok_conf = _json_or_empty(folder / "tokenizer_config.json")
    tok_max = tok_conf.get("model_max_length")
    tok_max = int(tok_max) if isinstance(tok_max, int | float) and tok_max < 1_000_000 else None
    model_max = conf.get("max_position_embeddings")
    max_len = int(max_seq_length or cfg.max_seq_length or tok_max or model_max or 512)
    if model_max and max_len > int(model_max):
        max_len = int(model_max)
    normalize = cfg.normalize if cfg.source == "modules.json" else True
    cfg.max_seq_length = max_len
    return ModelFacts(folder, cfg, int(dim), max_len, normalize)


def _json_or_empty(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------------------------------ pooling
def pool_numpy(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token states ``(b, t, h)`` with attention ``mask`` ``(b, t)`` into ``(b, h)``, float32.

    Same rules as sentence-transformers' ``Pooling`` (and ``hf:``'s torch ``pool``).
    """
    hidden = hidden.astype(np.float32, copy=False)
    if mode == "cls":
        return hidden[:, 0]
    m = mask[..., None].astype(np.float32)
    if mode in ("mean", "mean_sqrt_len"):
        summed = (hidden * m).sum(1)
        n = np.clip(m.sum(1), 1e-9, None)
        mean: np.ndarray = summed / (np.sqrt(n) if mode == "mean_sqrt_len" else n)
        return mean
    if mode == "max":
        biggest: np.ndarray = np.where(m > 0, hidden, np.finfo(np.float32).min).max(1)
        return biggest
    if mode == "lasttoken":
        positions = np.arange(mask.shape[1])[None, :] * (mask > 0)
        last = positions.argmax(1)
        picked: np.ndarray = hidden[np.arange(hidden.shape[0]), last]
        return picked
    raise ConfigError(f"pooling {mode!r} is not one of cls, mean, max, mean_sqrt_len, lasttoken")


# ------------------------------------------------------------------------------------------ tokenizer
class FastTokenizer:
    """``tokenizers.Tokenizer`` from the model's ``tokenizer.json`` with the shipped padding/truncation undone.

    ``encode_full`` gives untruncated encodings (the true token count, for truncation accounting);
    ``encode_cut`` cuts at ``max_len`` the way transformers' ``truncation=True`` does.
    """

    def __init__(self, path: Path, max_len: int) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError("tokenizers", "onnx", "onnx: models") from exc
        full = Tokenizer.from_file(str(path))
        shipped_pad = full.padding
        self.pad_id = int(shipped_pad["pad_id"]) if shipped_pad else 0
        full.no_padding()
        full.no_truncation()
        cut = Tokenizer.from_str(full.to_str())
        cut.enable_truncation(max_length=max_len)
        self.full, self.cut, self.max_len = full, cut, max_len

    def encode_full(self, texts: Sequence[str]) -> list[Any]:
        return self.full.encode_batch(list(texts), add_special_tokens=True)

    def encode_cut(self, texts: Sequence[str]) -> list[Any]:
        return self.cut.encode_batch(list(texts), add_special_tokens=True)


# ------------------------------------------------------------------------------------------ export
def ensure_export(
    name: str,
    precision: str = "fp32",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    create: bool = True,
    max_seq_length: int | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The cached ONNX file for model ``name`` at ``precision`` and its manifest, exporting it if needed.

    Raises :class:`ModelNotFoundError` when it is not cached and ``create`` is false. Exporting imports
    torch (and sentence-transformers or transformers) once; later calls only read files.
    """
    precision = _precision(precision)
    folder = local_folder(name)
    root = cache_root(cache_dir)
    key = model_key(folder, root)
    out = root / key
    manifest = _read_index(out / "manifest.json")
    if precision in manifest.get("files", {}) and (out / manifest["files"][precision]["file"]).exists():
        return out / manifest["files"][precision]["file"], manifest
    if not create:
        raise ModelNotFoundError(f"no cached ONNX export of {name} ({precision}) under {root}")
    with _lock(root / f"{key}.lock"):
        manifest = _read_index(out / "manifest.json")  # another process may have made it meanwhile
        entry = manifest.get("files", {}).get(precision)
        if entry and (out / entry["file"]).exists():
            return out / entry["file"], manifest
        facts = read_facts(name, folder, max_seq_length=max_seq_length)
        if max_seq_length is None:
            max_seq_length = facts.max_seq_length
        manifest = _export(name, facts, out, precision, manifest)
        _write_json_atomic(out / "manifest.json", manifest)
    return out / manifest["files"][precision]["file"], manifest


def _precision(precision: str) -> str:
    p = PRECISIONS.get(str(precision).lower())
    if p is None:
        raise ConfigError(f"precision={precision!r} is not supported by onnx:; use fp32 or int8")
    return p


def _export(name: str, facts: ModelFacts, out: Path, precision: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Make the fp32 file (and the int8 one from it), verify them against torch, return the new manifest."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = dict(manifest) or {
        "model": name, "folder": str(facts.folder), "export_version": EXPORT_VERSION, "files": {},
    }
    manifest.setdefault("files", {})
    tok_path = _tokenizer_json(facts, out)
    ref = _reference(facts, out.name)  # the export folder's name is the model's content key
    fp32 = out / "model.onnx"
    if "fp32" not in manifest["files"] or not fp32.exists():
        t0 = time.perf_counter()
        inputs = ref.export(fp32)
        manifest["inputs"] = inputs
        manifest["tokenizer"] = str(tok_path)
        check = _verify(fp32, facts, tok_path, ref)
        log.info("exported %s to %s in %.1f s; probe min cosine %.6f", name, fp32, time.perf_counter() - t0,
                 check["min_cosine"])
        if check["min_cosine"] < FP32_MIN_COSINE:
            fp32.unlink(missing_ok=True)
            raise ProviderError(
                f"the ONNX export of {name} does not reproduce torch (min cosine {check['min_cosine']:.6f} < "
                f"{FP32_MIN_COSINE} on the probe set); use st:{name}", "onnx")
        manifest["files"]["fp32"] = {"file": fp32.name, "verified": check,
                                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if precision == "int8":
        int8 = out / "model.int8.onnx"
        _quantize(fp32, int8)
        check = _verify(int8, facts, tok_path, ref)
        log.info("int8 export of %s: probe cosine min %.4f mean %.4f", name, check["min_cosine"],
                 check["mean_cosine"])
        if check["min_cosine"] < INT8_MIN_COSINE:
            int8.unlink(missing_ok=True)
            raise ProviderError(f"the int8 export of {name} is too far from fp32 (min cosine "
                                f"{check['min_cosine']:.4f} < {INT8_MIN_COSINE}); use precision=fp32", "onnx")
        manifest["files"]["int8"] = {"file": int8.name, "verified": check,
                                     "quantization": "quantize_dynamic QInt8 per_channel reduce_range",
                                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return manifest


def _tokenizer_json(facts: ModelFacts, out: Path) -> Path:
    """The model's own tokenizer.json, or one saved from its (fast) AutoTokenizer into the export folder."""
    own = facts.folder / "tokenizer.json"
    if own.exists():
        return own
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(facts.folder), use_fast=True)
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"{facts.folder} has no fast tokenizer (tokenizer.json); onnx: needs one; use st:")
    tok.save_pretrained(str(out / "tokenizer"))
    return out / "tokenizer" / "tokenizer.json"


_REFERENCES: dict[tuple[str, int, str], _TorchReference] = {}


def _reference(facts: ModelFacts, content_key: str) -> _TorchReference:
    """One torch reference per model content and process (an int8 export after the fp32 one reuses it).

    Keyed by the content key (:func:`model_key`) too: after a folder's files change, the new export is
    checked against the new model, never against the old one still in memory.
    """
    key = (str(facts.folder), facts.max_seq_length, content_key)
    if key not in _REFERENCES:
        for old in [k for k in _REFERENCES if k[0] == key[0] and k[1] == key[1]]:
            del _REFERENCES[old]  # the folder's previous content: free its torch model
        _REFERENCES[key] = _TorchReference(facts)
    return _REFERENCES[key]


class _TorchReference:
    """The torch model (through sentence-transformers when the folder has modules.json) for export + checks."""

    def __init__(self, facts: ModelFacts) -> None:
        import torch

        from ._local import quiet_transformers

        quiet_transformers()
        self.facts = facts
        self.st: Any = None
        if facts.config.source == "modules.json":
            import importlib.util

            if importlib.util.find_spec("sentence_transformers") is not None:
                from sentence_transformers import SentenceTransformer

                self.st = SentenceTransformer(str(facts.folder), device="cpu", local_files_only=True,
                                              model_kwargs={"dtype": "float32"})
                self.st.max_seq_length = facts.max_seq_length
                self.model = self.st[0].auto_model
                self.tokenizer = self.st.tokenizer
        if self.st is None:
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(facts.folder))
            self.model = AutoModel.from_pretrained(str(facts.folder), dtype=torch.float32)
        self.model.eval()

    def vectors(self, texts: list[str]) -> np.ndarray:
        """Document vectors through torch (no prefix: the probe compares the network, not prompts)."""
        import torch

        if self.st is not None:
            vecs = self.st.encode(texts, convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False)
            return l2_normalize(vecs) if self.facts.normalize else np.asarray(vecs, np.float32)
        from .transformers import pool

        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.facts.max_seq_length,
                             return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
            vecs = pool(hidden, enc["attention_mask"], self.facts.config.pooling).float().numpy()
        return l2_normalize(vecs) if self.facts.normalize else vecs

    def export(self, path: Path) -> list[str]:
        """torch.onnx export of the transformer (dynamic batch + sequence axes); returns the input names."""
        import torch

        sample = self.tokenizer(["a short text", "a somewhat longer text for the sample batch"], padding=True,
                                return_tensors="pt")
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
        model = self.model

        class _Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, *args: Any) -> Any:
                return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

        wrapper = _Encoder().eval()
        args = tuple(sample[k] for k in names)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        axes = {k: {0: "batch", 1: "sequence"} for k in [*names, "last_hidden_state"]}
        import warnings

        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            try:  # the TorchScript exporter: 3x faster to export here, and the probe checks the result
                torch.onnx.export(wrapper, args, str(tmp), input_names=names, output_names=["last_hidden_state"],
                                  dynamic_axes=axes, opset_version=17, do_constant_folding=True, dynamo=False)
            except Exception as exc:  # removed or failing: the dynamo exporter
                log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
                from torch.export import Dim

                batch, seq = Dim("batch"), Dim("sequence")
                torch.onnx.export(wrapper, args, str(tmp), input_names=names, output_names=["last_hidden_state"],
                                  dynamic_shapes=tuple({0: batch, 1: seq} for _ in names), dynamo=True,
                                  external_data=False, verbose=False)
        os.replace(tmp, path)
        return names


def _quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8 (weights per channel, 7-bit reduce_range: safe on AVX2 CPUs without VNNI)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "onnx", "int8 quantisation") from exc
    tmp = int8.with_name(f".{int8.name}.{os.getpid()}.tmp.onnx")
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(max(level, logging.ERROR))  # ORT logs "consider pre-processing" on the root logger
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    finally:
        root_logger.setLevel(level)
    os.replace(tmp, int8)


def _verify(path: Path, facts: ModelFacts, tok_path: Path, ref: _TorchReference) -> dict[str, Any]:
    """Cosine of the ONNX path against torch on the probe texts."""
    runner = _Runner(path, facts, tok_path, threads=None)
    got = runner.embed(runner.tok.encode_cut(PROBE_TEXTS))
    want = ref.vectors(list(PROBE_TEXTS))
    cos = (l2_normalize(got) * l2_normalize(want)).sum(1)
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()), "n_probe": len(PROBE_TEXTS),
            "reference": "sentence-transformers" if ref.st is not None else "transformers"}


# ------------------------------------------------------------------------------------------ runtime
class _Runner:
    """onnxruntime session(s) + tokenizer + numpy pooling for one exported file."""

    def __init__(self, path: Path, facts: ModelFacts, tok_path: Path, threads: Any) -> None:
        from ._threads import resolve_threads

        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "onnx", "onnx: models") from exc
        self.path, self.facts = path, facts
        self.tok = FastTokenizer(tok_path, facts.max_seq_length)
        self.advisor = resolve_threads(threads)
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    def session(self) -> Any:
        n = self.advisor.threads()
        with self._lock:
            sess = self._sessions.get(n)
            if sess is None:
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.intra_op_num_threads = n
                so.inter_op_num_threads = 1
                so.log_severity_level = 3
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                sess = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
                self._sessions[n] = sess
                log.debug("onnxruntime session for %s with %d threads", self.path.name, n)
            return sess

    def embed(self, encodings: Sequence[Any], session: Any = None) -> np.ndarray:
        """One padded batch of (already cut) encodings -> pooled, optionally normalised vectors."""
        sess = session or self.session()
        names = [i.name for i in sess.get_inputs()]
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), longest), self.tok.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), longest), dtype=np.int64)
        types = np.zeros((len(encodings), longest), dtype=np.int64) if "token_type_ids" in names else None
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = 1
            if types is not None:
                types[row, :n] = e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            feed["token_type_ids"] = types
        feed = {k: v for k, v in feed.items() if k in names}
        hidden = sess.run(None, feed)[0]
        vecs = pool_numpy(hidden, mask, self.facts.config.pooling)
        return l2_normalize(vecs) if self.facts.normalize else vecs.astype(np.float32)


class OnnxProvider(Provider):
    """onnxruntime export of a local st/hf model: fast start, same vectors (fp32) or int8."""

    name = "onnx"
    requested_spec: str | None = None
    """Set by the fast-start path: the st:/hf: spec this provider stands in for (same vectors, same space)."""

    def __init__(
        self,
        model: str,
        *,
        precision: str = "fp32",
        threads: int | str | None = None,
        max_seq_length: int | None = None,
        token_budget: int | None = None,
        normalize: bool | None = None,
        export: bool = True,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        device = kwargs.pop("device", None)
        if device not in (None, "cpu"):
            raise ConfigError(f"onnx: runs on the CPU; device={device!r} is not supported (use st: for {device})")
        super().__init__(model, **kwargs)
        self.precision = _precision(precision)
        self.runtime = f"onnx-{self.precision}"
        self._threads = threads
        self._max_len_opt = max_seq_length
        self.token_budget = int(token_budget) if token_budget else None
        self.allow_export = bool(export)
        self.cache_dir = cache_dir or self.settings.cache_dir
        self._normalize_opt = normalize
        self.options.update(precision=self.precision, max_seq_length=max_seq_length, normalize=normalize)
        if threads is not None:
            self.options["threads"] = threads
        self._memo = threading.local()
        facts = self._facts
        self._dimension = facts.dimension
        self.pooling = facts.config.pooling
        if normalize is not None:
            facts.normalize = bool(normalize)
        self.normalized = facts.normalize
        self.max_input_tokens = facts.max_seq_length
        self.query_prefix = facts.config.query_prefix
        self.document_prefix = facts.config.document_prefix

    @cached_property
    def _facts(self) -> ModelFacts:
        return read_facts(self.model, local_folder(self.model), max_seq_length=self._max_len_opt)

    @cached_property
    def _runner(self) -> _Runner:
        path, manifest = ensure_export(self.model, self.precision, cache_dir=self.cache_dir,
                                       create=self.allow_export, max_seq_length=self._max_len_opt)
        self.export_manifest = manifest
        # the folder's own tokenizer.json first: the manifest records the path of the folder that made the
        # export, which may be another copy of the same files (or gone since)
        tok = self._facts.folder / "tokenizer.json"
        if not tok.exists():
            tok = Path(manifest.get("tokenizer") or tok)
        return _Runner(path, self._facts, tok, self._threads)

    def load(self) -> OnnxProvider:
        """Export (if needed) and open the session now rather than on first use."""
        self._runner  # noqa: B018
        return self

    @property
    def verification(self) -> dict[str, Any]:
        """How the export compared with torch when it was made (min/mean cosine on the probe set)."""
        return dict(self._runner_manifest()["files"][self.precision]["verified"])

    def _runner_manifest(self) -> dict[str, Any]:
        self._runner  # noqa: B018
        return self.export_manifest

    @property
    def space(self) -> str:
        from ._local import local_space, provider_identity

        return local_space(self.model, self.pooling, self.normalized, self.dimension, self.precision,
                           query_prefix=self.query_prefix, document_prefix=self.document_prefix,
                           max_seq_length=self.max_input_tokens,
                           identity=provider_identity(self))

    # -------------------------------------------------------------- tokenise once
    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]:
        encs = self._encode_full(texts, kind)
        self._memo.last = (texts, kind, encs)  # embed_many reuses them: one tokenisation per call
        return [len(e.ids) for e in encs]

    def _encode_full(self, texts: Sequence[str], kind: Kind) -> list[Any]:
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        batch = [prefix + t for t in texts] if prefix else list(texts)
        return self._runner.tok.encode_full(batch)

    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        texts = list(items)
        return self.embed_many(texts, kind=kind, token_counts=self.count_tokens(texts, kind=kind))

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        from ._batching import DEFAULT_MAX_ITEMS, ONNX_TOKEN_BUDGET, run_sorted

        runner = self._runner
        last = getattr(self._memo, "last", None)
        self._memo.last = None
        if last is not None and last[0] is texts and last[1] == kind:
            encs = list(last[2])
        else:
            encs = self._encode_full(texts, kind)
        limit = runner.tok.max_len
        long_idx = [i for i, e in enumerate(encs) if len(e.ids) > limit]
        if long_idx:  # only the over-long ones are tokenised a second time, with the cut
            prefix = self.query_prefix if kind == "query" else self.document_prefix
            for i, e in zip(long_idx, runner.tok.encode_cut([prefix + texts[i] for i in long_idx]), strict=True):
                encs[i] = e
        lengths = [len(e.ids) for e in encs]
        # runner.session() per batch: the thread advisor re-measures the machine every few seconds of a long job
        return run_sorted(lengths, lambda idx: runner.embed([encs[i] for i in idx], runner.session()),
                          dimension=self._dimension,
                          token_budget=self.token_budget or ONNX_TOKEN_BUDGET, max_items=DEFAULT_MAX_ITEMS)
