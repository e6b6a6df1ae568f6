"""``cross-encoder:MODEL`` — a local cross-encoder (any model name or folder) through sentence-transformers'
``CrossEncoder``, with a fast ONNX path where the scores stay the same.

* Scores are what ``CrossEncoder.predict`` gives by default (the model's own activation: a sigmoid for a
  one-label model unless its config names another); ``activation=none`` gives the raw logits,
  ``activation=sigmoid`` forces the sigmoid. Only one-label models rank (``num_labels=1``).
* Pairs are tokenised once with the model's own tokenizer, sorted by true token length over the whole
  candidate list and cut into batches by a padded-token budget (``token_budget``), so short pairs never pay
  for a long one's padding; pairs longer than the model's maximum are cut (``longest_first``, as
  transformers does) and counted in ``RerankResult.truncated``.
* ``runtime=auto`` (default) on a CPU runs an ONNX export of the classifier with onnxruntime + the fast
  tokenizer. The export is made once per model content (cached beside the embedding exports), and used only
  if it reproduces ``CrossEncoder.predict`` on a probe set: the same token ids, and logits within
  ``MAX_LOGIT_DIFF``; otherwise (or for models the export cannot express: several modules, a causal-LM
  scorer, another activation) the torch path runs. ``runtime=torch`` / ``runtime=onnx`` force one
  (``onnx`` fails loudly instead of falling back).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import numpy as np

from ...errors import ConfigError, MissingDependencyError, ProviderError
from ...settings import Settings
from .._batching import DEFAULT_MAX_ITEMS, DEFAULT_TOKEN_BUDGET, ONNX_PAIR_TOKEN_BUDGET, plan_batches
from .._local import set_torch_threads
from .._threads import ThreadAdvisor, resolve_threads
from ..onnx.runtime import open_session
from .base import Reranker, RerankResult

__all__ = ["MAX_LOGIT_DIFF", "CrossEncoderReranker", "ensure_cross_encoder_export"]

log = logging.getLogger(__name__)

MAX_LOGIT_DIFF = 1e-4
"""The ONNX export stands in for torch only if every probe logit is within this of ``CrossEncoder.predict``."""
EXPORT_VERSION = "ce1"
ACTIVATIONS = ("default", "sigmoid", "none")
RUNTIMES = ("auto", "torch", "onnx")

PROBE_PAIRS = [
    ("What is OceanBase?", "A distributed relational database with vector search and full-text indexes."),
    ("what is a db", "x"),
    ("weather", "The weather is lovely today."),
    ("東京", "東京は日本の首都です。"),
    ("Ünïcödé àccents", "emoji 🙂 and CAPITALS MiXeD 12345 3.14159"),
    ("ext4 tools", "Debian package: utilities to manage ext2, ext3 and ext4 file systems, including e2fsck."),
    ("a long query " * 30, "and a long document that runs past the maximum length. " * 60),
    ("short", "  leading and trailing spaces  "),
    ("line one\nline two", "tabbed\tdocument"),
]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    return out


def _device_is_cpu(device: str | None) -> bool:
    if device:
        return device == "cpu"
    return not (os.path.exists("/dev/nvidia0") or os.path.exists("/dev/dxg"))


class CrossEncoderReranker(Reranker):
    """Local cross-encoder (sentence-transformers CrossEncoder, ONNX fast path), any model name or folder."""

    name = "cross-encoder"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        runtime: str = "auto",
        activation: str = "default",
        max_length: int | None = None,
        threads: int | str | None = None,
        token_budget: int | None = None,
        trust_remote_code: bool = False,
        cache_dir: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(model, settings=settings)
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime={runtime!r}; use one of {list(RUNTIMES)}")
        act = {"identity": "none", "raw": "none"}.get(str(activation).lower(), str(activation).lower())
        if act not in ACTIVATIONS:
            raise ConfigError(f"activation={activation!r}; use one of {list(ACTIVATIONS)}")
        for key, value in (("max_length", max_length), ("token_budget", token_budget)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{key}={value!r} must be a positive integer")
        self.device = device or self.settings.device
        if runtime == "onnx" and not _device_is_cpu(self.device):
            raise ConfigError(f"runtime=onnx runs on the CPU; device={self.device!r} needs runtime=torch")
        self.requested_runtime = runtime
        self.activation = act
        self.max_length = max_length
        self.trust_remote_code = bool(trust_remote_code)
        self.cache_dir = cache_dir or self.settings.cache_dir
        self.token_budget = token_budget
        self._threads = threads
        self._lock = threading.Lock()
        self.options.update(device=device, runtime=runtime if runtime != "auto" else None,
                            activation=act if act != "default" else None, max_length=max_length, threads=threads,
                            token_budget=token_budget, trust_remote_code=self.trust_remote_code or None)

    # ------------------------------------------------------------------ engine
    @cached_property
    def engine(self) -> _OnnxEngine | _TorchEngine:
        """The loaded scorer: ONNX where it gives the same scores (and is allowed), else torch."""
        if self.requested_runtime != "torch" and _device_is_cpu(self.device) and not self.trust_remote_code:
            try:
                onnx_engine = _OnnxEngine.load(self.model, cache_dir=self.cache_dir, max_length=self.max_length,
                                               threads=self._threads)
                self.runtime = "onnx-fp32"
                return onnx_engine
            except Exception as exc:
                if self.requested_runtime == "onnx":
                    raise
                log.info("cross-encoder:%s: ONNX path unavailable (%s: %s); using torch", self.model,
                         type(exc).__name__, exc)
        elif self.requested_runtime == "onnx":
            raise ConfigError(f"runtime=onnx is not available for {self.spec} with trust_remote_code; "
                              "use runtime=torch")
        torch_engine = _TorchEngine(self.model, device=self.device, max_length=self.max_length,
                                    trust_remote_code=self.trust_remote_code, threads=self._threads)
        self.runtime = "torch"
        return torch_engine

    def load(self) -> Self:
        """Load the model (and make or check its ONNX export) now rather than on first use."""
        self.engine  # noqa: B018
        return self

    @property
    def max_input_tokens(self) -> int:
        """Tokens of a (query, document) pair the model reads; longer pairs are cut and counted."""
        return int(self.engine.max_length)

    def info(self) -> dict[str, Any]:
        self.engine  # noqa: B018 - loading decides the runtime
        info = super().info()
        info.update(max_input_tokens=self.max_input_tokens)
        return info

    # ------------------------------------------------------------------ scoring
    def score_many(self, query: str, documents: Sequence[str]) -> RerankResult:
        engine = self.engine
        with self._lock:  # one forward at a time per model: the tokenizers and sessions are shared
            lengths, full, encode = engine.prepare(query, documents)
            budget = self.token_budget or engine.default_budget
            logits = np.empty(len(documents), dtype=np.float64)
            for idx in plan_batches(lengths, token_budget=budget, max_items=DEFAULT_MAX_ITEMS):
                out = np.asarray(encode(idx), dtype=np.float64).reshape(-1)
                if out.shape[0] != len(idx):
                    raise ProviderError(f"{self.spec}: a batch of {len(idx)} pairs gave {out.shape[0]} scores",
                                        self.name)
                logits[idx] = out
        scores = engine.activate(logits, self.activation)
        limit = engine.max_length
        truncated = [i for i, n in enumerate(full) if n > limit]
        if truncated:
            log.info("%s: %d of %d pairs cut to %d tokens", self.spec, len(truncated), len(documents), limit)
        return RerankResult(scores, truncated=truncated, n_tokens=int(sum(lengths)))


# ---------------------------------------------------------------------------------------------- torch
class _TorchEngine:
    """``CrossEncoder`` on torch; batches planned here, scored with ``predict`` (raw logits)."""

    default_budget = DEFAULT_TOKEN_BUDGET

    def __init__(self, model: str, *, device: str | None, max_length: int | None, trust_remote_code: bool,
                 threads: Any) -> None:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise MissingDependencyError("sentence-transformers", "st", "cross-encoder: rerankers") from exc
        import torch

        from .._local import hub_error, hub_offline, pick_device, quiet_transformers, resolve_model

        quiet_transformers()
        path = resolve_model(model)
        self.device = pick_device(device)
        try:
            self.ce = CrossEncoder(path, device=self.device, trust_remote_code=trust_remote_code,
                                   local_files_only=hub_offline(), max_length=max_length,
                                   model_kwargs={"dtype": torch.float32} if self.device == "cpu" else None)
        except (OSError, ValueError) as exc:
            raise hub_error(model, exc) from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("huggingface_hub", "requests", "httpx")):
                raise hub_error(model, exc) from exc
            raise
        if self.ce.num_labels != 1:
            raise ConfigError(f"{model} has {self.ce.num_labels} output labels; a reranker needs a one-label "
                              "cross-encoder (num_labels=1) that gives one relevance score per pair")
        self.max_length = int(self.ce.max_seq_length or 512)
        self.identity = torch.nn.Identity()
        self.advisor: ThreadAdvisor = resolve_threads(threads)

    def prepare(self, query: str, documents: Sequence[str]) -> tuple[list[int], list[int], Any]:
        tok = self.ce.tokenizer
        enc = tok([query] * len(documents), list(documents), add_special_tokens=True, truncation=False,
                  padding=False, return_attention_mask=False, return_token_type_ids=False, verbose=False)
        full = [len(ids) for ids in enc["input_ids"]]
        lengths = [min(n, self.max_length) for n in full]
        def encode(idx: list[int]) -> np.ndarray:
            if self.device == "cpu":  # per batch: the thread advisor re-measures the machine during a long job
                set_torch_threads(self.advisor)
            pairs = [(query, documents[i]) for i in idx]
            out = self.ce.predict(pairs, batch_size=len(pairs), activation_fn=self.identity,
                                  convert_to_numpy=True, show_progress_bar=False)
            return np.asarray(out, dtype=np.float32)

        return lengths, full, encode

    def activate(self, logits: np.ndarray, activation: str) -> np.ndarray:
        if activation == "none":
            return logits
        if activation == "sigmoid":
            return _sigmoid(logits)
        import torch

        with torch.inference_mode():
            act = self.ce.activation_fn or self.identity
            out = act(torch.from_numpy(logits.astype(np.float32)))
        return np.asarray(out.float().numpy(), dtype=np.float64)


# ---------------------------------------------------------------------------------------------- ONNX
class _OnnxEngine:
    """onnxruntime session over the exported classifier + the model's fast tokenizer (pairs)."""

    default_budget = ONNX_PAIR_TOKEN_BUDGET

    def __init__(self, path: Path, manifest: dict[str, Any], tok_path: Path, threads: Any) -> None:
        from ..onnx import FastTokenizer

        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "onnx", "the cross-encoder ONNX path") from exc
        self.path = path
        self.manifest = manifest
        self.max_length = int(manifest["max_length"])
        self.model_activation = str(manifest["activation"])
        self.tok = FastTokenizer(tok_path, self.max_length)
        self.advisor = resolve_threads(threads)
        self._sessions: dict[int, Any] = {}

    @classmethod
    def load(cls, model: str, *, cache_dir: str | None, max_length: int | None, threads: Any) -> _OnnxEngine:
        path, manifest = ensure_cross_encoder_export(model, cache_dir=cache_dir, max_length=max_length)
        from ..onnx import local_folder

        tok = local_folder(model) / "tokenizer.json"
        if not tok.exists():
            tok = Path(manifest["tokenizer"])
        return cls(path, manifest, tok, threads)

    def session(self) -> Any:
        """The session for the thread rule's current count (one per count: a session's pool is fixed)."""
        n = self.advisor.threads()
        sess = self._sessions.get(n)
        if sess is None:
            sess = self._sessions[n] = open_session(self.path, n)
        return sess

    def prepare(self, query: str, documents: Sequence[str]) -> tuple[list[int], list[int], Any]:
        pairs = [(query, d) for d in documents]
        encs = self.tok.full.encode_batch(pairs, add_special_tokens=True)
        full = [len(e.ids) for e in encs]
        long_idx = [i for i, n in enumerate(full) if n > self.max_length]
        if long_idx:
            for i, e in zip(long_idx, self.tok.cut.encode_batch([pairs[i] for i in long_idx],
                                                                add_special_tokens=True), strict=True):
                encs[i] = e
        lengths = [len(e.ids) for e in encs]
        # session() per batch: the thread advisor re-measures the machine every few seconds of a long job
        return lengths, full, lambda idx: self.run([encs[i] for i in idx], self.session())

    def run(self, encodings: Sequence[Any], session: Any = None) -> np.ndarray:
        sess = session or self.session()
        names = {i.name for i in sess.get_inputs()}
        longest = max(len(e.ids) for e in encodings)
        n = len(encodings)
        ids = np.full((n, longest), self.tok.pad_id, dtype=np.int64)
        mask = np.zeros((n, longest), dtype=np.int64)
        types = np.zeros((n, longest), dtype=np.int64)
        for row, e in enumerate(encodings):
            k = len(e.ids)
            ids[row, :k] = e.ids
            mask[row, :k] = 1
            types[row, :k] = e.type_ids
        feed = {k: v for k, v in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types))
                if k in names}
        logits: np.ndarray = sess.run(None, feed)[0]
        return logits.reshape(n, -1)[:, 0]

    def activate(self, logits: np.ndarray, activation: str) -> np.ndarray:
        if activation == "none" or (activation == "default" and self.model_activation == "Identity"):
            return logits
        # "sigmoid", or the model's own Sigmoid: computed as torch does it, in float32
        x = logits.astype(np.float32)
        out = (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)
        return out.astype(np.float64)


def ensure_cross_encoder_export(model: str, *, cache_dir: str | None = None, max_length: int | None = None,
                                create: bool = True) -> tuple[Path, dict[str, Any]]:
    """The cached ONNX file of cross-encoder ``model`` and its manifest, exporting + verifying it if needed.

    Raises :class:`ProviderError` when the export does not reproduce ``CrossEncoder.predict`` (or the model
    is of a kind the export cannot express): the caller falls back to torch.
    """
    from ..onnx.export import _lock, _read_index, _write_json_atomic, cache_root, model_key
    from ..onnx.runtime import local_folder

    folder = local_folder(model)
    root = cache_root(cache_dir)
    key = model_key(folder)
    out = root / f"{EXPORT_VERSION}-{key}"
    entry_name = f"fp32-L{max_length or 'default'}"
    manifest = _read_index(out / "manifest.json")
    entry = manifest.get(entry_name)
    if entry and (out / entry["file"]).exists():
        if not entry.get("ok"):
            raise ProviderError(f"the ONNX export of {model} was refused earlier: {entry.get('reason')}", "onnx")
        return out / entry["file"], {**entry, "tokenizer": manifest.get("tokenizer", "")}
    if not create:
        raise ProviderError(f"no cached cross-encoder ONNX export of {model} under {root}", "onnx")
    with _lock(root / f"{EXPORT_VERSION}-{key}.lock"):
        manifest = _read_index(out / "manifest.json")
        entry = manifest.get(entry_name)
        if not (entry and (out / entry["file"]).exists()):
            entry = _export(model, folder, out, max_length)
            manifest[entry_name] = entry
            manifest.setdefault("model", model)
            manifest["tokenizer"] = str(folder / "tokenizer.json")
            _write_json_atomic(out / "manifest.json", manifest)
    if not entry.get("ok"):
        raise ProviderError(f"the ONNX export of {model} was refused: {entry.get('reason')}", "onnx")
    return out / entry["file"], {**entry, "tokenizer": manifest.get("tokenizer", "")}


def _export(model: str, folder: Path, out: Path, max_length: int | None) -> dict[str, Any]:
    """Export the classifier, check it against ``CrossEncoder.predict``; the entry says ok or why not."""
    import torch
    from sentence_transformers import CrossEncoder

    from .._local import quiet_transformers

    quiet_transformers()
    out.mkdir(parents=True, exist_ok=True)
    file = f"model-L{max_length or 'default'}.onnx"
    t0 = time.perf_counter()
    ce = CrossEncoder(str(folder), device="cpu", local_files_only=True, max_length=max_length,
                      model_kwargs={"dtype": torch.float32})
    activation = type(ce.activation_fn).__name__ if ce.activation_fn is not None else "Identity"
    entry: dict[str, Any] = {"file": file, "ok": False, "activation": activation,
                             "max_length": int(ce.max_seq_length or 512),
                             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    modules = [type(m).__name__ for m in ce]
    task = getattr(ce[0], "transformer_task", "sequence-classification")
    if ce.num_labels != 1:
        entry["reason"] = f"{ce.num_labels} labels (a reranker needs one)"
    elif modules != ["Transformer"] or task != "sequence-classification":
        entry["reason"] = f"modules {modules} / task {task!r}: only a sequence-classification model is exported"
    elif activation not in ("Sigmoid", "Identity"):
        entry["reason"] = f"activation {activation} is not reproduced by the ONNX path"
    if "reason" in entry:
        (out / file).write_bytes(b"")  # a marker, so the refusal is remembered
        return entry
    tok_path = folder / "tokenizer.json"
    if not tok_path.exists():
        entry["reason"] = "the model folder has no tokenizer.json (fast tokenizer)"
        (out / file).write_bytes(b"")
        return entry
    inner = ce[0].auto_model.eval()
    sample = ce.preprocess([("a query", "a short text"), ("another query", "a somewhat longer text for the sample")])
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]

    class _Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).logits

    import warnings

    tmp = out / f".{file}.{os.getpid()}.tmp"
    axes = {k: {0: "batch", 1: "sequence"} for k in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Logits().eval(), tuple(sample[k] for k in names), str(tmp), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, do_constant_folding=True,
                          dynamo=False)
    os.replace(tmp, out / file)
    # -- verify: same token ids as CrossEncoder.preprocess, logits as CrossEncoder.predict
    engine = _OnnxEngine(out / file, entry, tok_path, threads=None)
    pairs = list(PROBE_PAIRS)
    want = np.asarray(ce.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True,
                                 show_progress_bar=False), dtype=np.float64).reshape(-1)
    feats = ce.preprocess(pairs)
    encs = engine.tok.cut.encode_batch(pairs, add_special_tokens=True)
    same_ids = all(
        list(e.ids) == [int(x) for x, m in zip(feats["input_ids"][i].tolist(), feats["attention_mask"][i].tolist(),
                                               strict=True) if m]
        for i, e in enumerate(encs))
    got = np.concatenate([engine.run([e]) for e in encs]).astype(np.float64)
    diff = float(np.abs(got - want).max())
    entry["verified"] = {"max_logit_diff": diff, "same_token_ids": same_ids, "n_probe": len(pairs),
                         "reference": "sentence_transformers.CrossEncoder.predict"}
    if not same_ids:
        entry["reason"] = "the fast tokenizer's pair encoding differs from CrossEncoder.preprocess"
    elif not diff <= MAX_LOGIT_DIFF:
        entry["reason"] = f"logits differ from torch by {diff:.2e} > {MAX_LOGIT_DIFF}"
    else:
        entry["ok"] = True
    log.info("cross-encoder ONNX export of %s in %.1f s: %s", model, time.perf_counter() - t0,
             json.dumps(entry["verified"]))
    return entry
