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

from .export import (
    EXPORT_VERSION,
    FP32_MIN_COSINE,
    INT8_MIN_COSINE,
    PROBE_TEXTS,
    cache_root,
    ensure_export,
    model_key,
)
from .provider import OnnxProvider
from .runtime import FastTokenizer, ModelFacts, Runner, local_folder, pool_numpy, read_facts

__all__ = [
    "EXPORT_VERSION",
    "FP32_MIN_COSINE",
    "INT8_MIN_COSINE",
    "PROBE_TEXTS",
    "FastTokenizer",
    "ModelFacts",
    "OnnxProvider",
    "Runner",
    "cache_root",
    "ensure_export",
    "local_folder",
    "model_key",
    "pool_numpy",
    "read_facts",
]
