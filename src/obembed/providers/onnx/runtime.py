"""Running an export: the model's facts read from its files (no torch), the fast tokenizer with the shipped
padding/truncation undone, onnxruntime sessions and numpy pooling."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ConfigError, MissingDependencyError, ModelNotFoundError
from .._local import LOCAL_POOLINGS, LocalModelConfig, read_model_config, resolve_model
from ..base import l2_normalize

if TYPE_CHECKING:
    from .._threads import ThreadAdvisor

__all__ = ["FastTokenizer", "ModelFacts", "Runner", "local_folder", "open_session", "pool_numpy", "read_facts"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ model facts
def local_folder(name: str) -> Path:
    """The model's local folder: a path, the bundled MiniLM, or a hub id already in the local HF cache."""
    resolved = resolve_model(name)
    path = Path(resolved)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        from .._local import hub_config_folder

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
    raise ConfigError(f"pooling {mode!r} is not one of {', '.join(LOCAL_POOLINGS)}")


# ------------------------------------------------------------------------------------------ tokenizer
class FastTokenizer:
    """``tokenizers.Tokenizer`` from the model's ``tokenizer.json`` with the shipped padding/truncation undone.

    ``encode_full`` gives untruncated encodings (the true token count, for truncation accounting);
    ``encode_cut`` cuts at ``max_len`` the way transformers' ``truncation=True`` does. The cutting copy
    (:attr:`cut`) is made on first use: most calls never need it, and making it costs as much as loading.
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
        self.full, self.max_len = full, max_len
        self._cut: Any = None
        self._cut_lock = threading.Lock()

    @property
    def cut(self) -> Any:
        """The same tokenizer truncating at ``max_len`` (a copy: ``full`` is shared by concurrent callers)."""
        with self._cut_lock:
            if self._cut is None:
                from tokenizers import Tokenizer

                cut = Tokenizer.from_str(self.full.to_str())
                cut.enable_truncation(max_length=self.max_len)
                self._cut = cut
            return self._cut

    def encode_full(self, texts: Sequence[str]) -> list[Any]:
        return self.full.encode_batch(list(texts), add_special_tokens=True)

    def encode_cut(self, texts: Sequence[str]) -> list[Any]:
        out: list[Any] = self.cut.encode_batch(list(texts), add_special_tokens=True)
        return out


# ------------------------------------------------------------------------------------------ runtime
def open_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session of ``path`` with ``threads`` intra-op threads (the thread rule's count), full
    graph optimisation, quiet: the one way obembed opens an exported model (embedders and the cross-encoder)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    log.debug("onnxruntime session for %s with %d threads", path.name, threads)
    return sess


class Runner:
    """onnxruntime session(s) + tokenizer + numpy pooling for one exported file.

    Start-up is overlapped (docs/performance.md, "Start-up"): the session for the advisor's first thread
    decision is built on a background thread (onnxruntime releases the GIL while it loads) while this one
    loads the tokenizer; :meth:`session` waits for it. ``advisor``: the provider's thread advisor, made when
    the provider was, so its measurement window has been running through the loading already.
    """

    def __init__(self, path: Path, facts: ModelFacts, tok_path: Path, threads: Any, *,
                 advisor: ThreadAdvisor | None = None) -> None:
        from .._threads import resolve_threads

        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "onnx", "onnx: models") from exc
        self.path, self.facts, self.tok_path = path, facts, tok_path
        self.advisor = advisor or resolve_threads(threads)
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._first: _Pending | None = _Pending(self)  # the first session, building meanwhile
        self.tok = FastTokenizer(tok_path, facts.max_seq_length)

    def _build(self, n: int) -> Any:
        return open_session(self.path, n)

    def session(self) -> Any:
        first = self._first
        if first is not None:  # the background build: its session (or its error) first
            self._first = None
            n, sess = first.result()
            with self._lock:
                self._sessions.setdefault(n, sess)
        n = self.advisor.threads()
        with self._lock:
            sess = self._sessions.get(n)
            if sess is None:
                sess = self._sessions[n] = self._build(n)
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


class _Pending:
    """The first session of a :class:`Runner`, built on a thread: the advisor's decision, then the load."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._value: tuple[int, Any] | None = None
        self._error: BaseException | None = None
        # not a daemon: a process that exits right after load() waits for the build rather than tearing
        # onnxruntime down under it
        self._thread = threading.Thread(target=self._run, name="obembed-onnx-session")
        self._thread.start()

    def _run(self) -> None:
        try:
            n = self._runner.advisor.threads()
            self._value = (n, self._runner._build(n))
        except BaseException as exc:  # handed to the caller of session()
            self._error = exc

    def result(self) -> tuple[int, Any]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
