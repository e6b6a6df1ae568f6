"""Making and caching the ONNX export of a local model: content key, cache folder, torch.onnx export, the
verification against torch on a probe set (recorded in ``manifest.json``), int8 quantisation.

Exporting imports torch once; reading an existing export reads files only."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, MissingDependencyError, ModelNotFoundError, ProviderError
from .._local import folder_key
from ..base import l2_normalize
from .runtime import ModelFacts, Runner, local_folder, read_facts

__all__ = ["EXPORT_VERSION", "FP32_MIN_COSINE", "INT8_MIN_COSINE", "PROBE_TEXTS", "cache_root", "ensure_export",
           "model_key", "precision_name"]

log = logging.getLogger(__name__)

EXPORT_VERSION = "1"
"""Bumped when the export format changes (part of the cache key)."""
FP32_MIN_COSINE = 0.9999
"""An fp32 export must reproduce the torch reference at least this closely on every probe text."""
INT8_MIN_COSINE = 0.95
"""An int8 export below this on any probe text is refused (measured: min 0.990, mean 0.993 for MiniLM)."""
PRECISIONS = {"fp32": "fp32", "float32": "fp32", "int8": "int8", "qint8": "int8"}

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
    from ...settings import get_settings

    return (Path(cache_dir).expanduser() if cache_dir else get_settings().cache_base) / "onnx"


def model_key(folder: str | Path) -> str:
    """The export's cache key: the model folder's content key (:func:`~obembed.providers._local.folder_key`,
    the one key of a model folder, also part of its vector space) and the export version."""
    return hashlib.sha256(f"obembed-onnx-export-v{EXPORT_VERSION}\0{folder_key(folder)}".encode()).hexdigest()[:24]


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
    precision = precision_name(precision)
    folder = local_folder(name)
    root = cache_root(cache_dir)
    key = model_key(folder)
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


def precision_name(precision: str) -> str:
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

        from .._local import quiet_transformers

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
        from ..transformers import pool

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
    runner = Runner(path, facts, tok_path, threads=None)
    got = runner.embed(runner.tok.encode_cut(PROBE_TEXTS))
    want = ref.vectors(list(PROBE_TEXTS))
    cos = (l2_normalize(got) * l2_normalize(want)).sum(1)
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()), "n_probe": len(PROBE_TEXTS),
            "reference": "sentence-transformers" if ref.st is not None else "transformers"}
