"""``clip:`` — CLIP text and image embeddings in one vector space (transformers 5), local.

* ``clip:MODEL``: any CLIP checkpoint on the hub or in a local folder, loaded with ``from_pretrained``
  (default ``openai/clip-vit-base-patch32``; the hub mirror/offline rules of ``HF_ENDPOINT`` /
  ``HF_HUB_OFFLINE`` apply). sentence-transformers CLIP checkpoints (``clip-ViT-B-32``, a
  ``modules.json`` folder holding a ``CLIPModel`` module) load too: the CLIP folder inside is used,
  so the vectors equal sentence-transformers' own.
* In transformers 5 ``get_image_features`` / ``get_text_features`` return an output object
  (``BaseModelOutputWithPooling``): the projected vector is ``.pooler_output``, *not* normalised. Older
  versions returned the tensor itself; both are handled. Vectors are L2-normalised float32.
* Text goes through the usual contract (``embed_documents`` / ``embed_query``); CLIP's text tower takes
  77 tokens: longer texts are cut and *counted* (``EmbedResult.truncated``), or refused with
  ``truncate="error"``.
* Images: :meth:`ClipProvider.embed_images` (strict) and :meth:`ClipProvider.embed_images_result`
  (batch work: bad items are skipped and reported). Loading rules live in :mod:`obembed.images`.
* Multilingual text → image search: ``text_model=`` pairs the CLIP image tower with a text encoder trained
  into the same space, loaded through sentence-transformers, e.g.
  ``clip:clip-ViT-B-32?text_model=sentence-transformers/clip-ViT-B-32-multilingual-v1`` (50+ languages).
  :attr:`ClipProvider.space` names both towers, so a collection remembers the pairing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInputError, MissingDependencyError, ModelNotFoundError
from ..images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIZE, ImageFacts, LoadedImage, OnError, load_image
from ..types import EmbedResult, Kind, Vector, Vectors
from ._local import LocalProvider, canonical_name, hub_error, hub_offline, quiet_transformers, resolve_model
from .base import Provider, l2_normalize

__all__ = ["DEFAULT_CLIP_MODEL", "ClipProvider", "clip_model_name"]

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


def clip_model_name(name: str) -> str:
    """Bare sentence-transformers CLIP names (``clip-ViT-B-32``) mean ``sentence-transformers/...`` on the hub,
    as in sentence-transformers itself; a local folder of that name wins."""
    if "/" not in name and name.lower().startswith("clip-vit") and not Path(name).exists():
        return f"sentence-transformers/{name}"
    return name


def _output_tensor(out: Any) -> Any:
    """``get_*_features`` results: an output object with ``.pooler_output`` (transformers 5) or a tensor (4.x)."""
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled
    if hasattr(out, "shape"):
        return out
    if isinstance(out, tuple | list) and out and hasattr(out[0], "shape"):
        return out[0]
    raise ConfigError(f"get_*_features returned {type(out).__name__} without pooler_output; "
                      "is this a CLIP-style model?")


def _processor_side(image_processor: Any) -> int | None:
    """The input size an image processor produces (crop or resize target), in pixels."""
    best = 0
    for attr in ("crop_size", "size"):
        val = getattr(image_processor, attr, None)
        if isinstance(val, int) and not isinstance(val, bool):
            best = max(best, val)
            continue
        for key in ("height", "width", "shortest_edge"):  # a dict (transformers 4) or a SizeDict (5)
            v = val.get(key) if isinstance(val, dict) else getattr(val, key, None)
            if isinstance(v, int) and not isinstance(v, bool):
                best = max(best, v)
    return best or None


def _st_clip_subfolder(modules: list[dict[str, Any]], has_file: Any) -> str | None:
    """The folder of the CLIP module inside a sentence-transformers model (``0_CLIPModel`` or the root)."""
    for module in modules:
        mtype = str(module.get("type", ""))
        if mtype.endswith(("CLIPModel", "Transformer")):
            sub = str(module.get("path", "") or "")
            if has_file(os.path.join(sub, "config.json") if sub else "config.json"):
                return sub
    return None


class ClipProvider(LocalProvider):
    """CLIP text + image embeddings in one space, local (transformers 5)."""

    name = "clip"
    supports_image = True
    pooling = "projection"

    def __init__(
        self,
        model: str = DEFAULT_CLIP_MODEL,
        *,
        text_model: str | None = None,
        device: str | None = None,
        max_image_size: int | str | None = "auto",
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        image_backend: str = "pil",
        decode_workers: int | None = None,
        trust_remote_code: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if max_image_size is not None and max_image_size != "auto" and (
                isinstance(max_image_size, bool) or not isinstance(max_image_size, int) or max_image_size < 16):
            raise ConfigError(f"max_image_size={max_image_size!r} must be 'auto', an integer >= 16, or None "
                              "(no shrinking)")
        if not isinstance(max_image_pixels, int) or max_image_pixels < 1:
            raise ConfigError(f"max_image_pixels={max_image_pixels!r} must be a positive integer")
        if isinstance(text_model, str) and text_model.lower().startswith(("st:", "sentence-transformers:")):
            text_model = text_model.split(":", 1)[1]  # the text encoder always loads through sentence-transformers
        if decode_workers is not None and (isinstance(decode_workers, bool) or not isinstance(decode_workers, int)
                                           or decode_workers < 1):
            raise ConfigError(f"decode_workers={decode_workers!r} must be a positive integer (1: no threads)")
        self.decode_workers = int(decode_workers or min(4, os.cpu_count() or 1))
        self.text_model = text_model or None
        self.device = device or self.settings.device
        self._max_size_opt = max_image_size
        self.max_image_size: int | None = None if max_image_size is None else (
            DEFAULT_MAX_SIZE if max_image_size == "auto" else int(max_image_size))
        """Shorter side images are shrunk to before processing; ``auto``: twice the model's input size
        (448 for 224-px CLIPs, 672 for 336-px ones), at least 448 — set once the model loads."""
        self.max_image_pixels = int(max_image_pixels)
        self.image_backend = image_backend
        self.trust_remote_code = trust_remote_code
        self.normalized = True
        self.options.update(text_model=self.text_model)

    # ----------------------------------------------------------------- loading
    @cached_property
    def _loaded(self) -> tuple[Any, Any, Any, str]:
        """(model, tokenizer, image_processor, device); sets dimension and text limits."""
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError("transformers", "clip", "clip: models") from exc
        from ._local import pick_device

        name = clip_model_name(self.model)
        path = resolve_model(name)
        sub = self._subfolder(path)
        where: dict[str, Any] = {"local_files_only": hub_offline()}
        if sub:
            if Path(path).is_dir():
                path = str(Path(path) / sub)
            else:
                where["subfolder"] = sub
        device = pick_device(self.device)
        quiet_transformers()
        local = Path(path).is_dir()

        def failed(exc: BaseException, what: str) -> Exception:
            if local:
                cause = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                return ModelNotFoundError(f"{self.model}: could not load the {what} from {path} ({cause}); "
                                          "is it a saved CLIP model folder (save_pretrained)?")
            return hub_error(self.model, exc)

        try:
            model = AutoModel.from_pretrained(path, dtype=torch.float32, trust_remote_code=self.trust_remote_code,
                                              **where)
        except Exception as exc:  # OSError/ValueError, or the hub client's own tree
            if isinstance(exc, OSError | ValueError) or type(exc).__module__.startswith(("huggingface_hub",
                                                                                          "requests", "httpx")):
                raise failed(exc, "model") from exc
            raise
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ConfigError(f"{self.model} is a {type(model).__name__}, not a CLIP-style text+image model "
                              "(it has no get_image_features); use st: or hf: for text-only models")
        try:
            processor_kw: dict[str, Any] = {"backend": self.image_backend} if self.image_backend else {}
            image_processor = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                path, **processor_kw, **where)
            tokenizer = AutoTokenizer.from_pretrained(path, **where) if not self.text_model else None
        except Exception as exc:
            if isinstance(exc, OSError | ValueError) or type(exc).__module__.startswith(("huggingface_hub",
                                                                                          "requests", "httpx")):
                raise failed(exc, "image processor / tokenizer") from exc
            raise
        model.eval().to(device)
        if self._max_size_opt == "auto":
            side = _processor_side(image_processor)
            self.max_image_size = max(2 * side, 448) if side else DEFAULT_MAX_SIZE
        cfg = model.config
        dim = getattr(cfg, "projection_dim", None)
        self._model_type = str(getattr(cfg, "model_type", ""))
        if self.text_model:
            text = self._text_provider
            text_dim = text.dimension
            if dim is not None and int(dim) != text_dim:
                raise ConfigError(
                    f"text_model {self.text_model} gives {text_dim}-d vectors but {self.model}'s image tower gives "
                    f"{dim}-d; pair it with the CLIP model it was trained against (e.g. clip-ViT-B-32 with "
                    "sentence-transformers/clip-ViT-B-32-multilingual-v1)"
                )
            self.max_input_tokens = text.max_input_tokens
        else:
            text_cfg = getattr(cfg, "text_config", None)
            self.max_input_tokens = int(getattr(text_cfg, "max_position_embeddings", 77) or 77)
        self._dimension = int(dim) if dim is not None else None
        log.debug("clip:%s loaded on %s (dim %s, text %s)", self.model, device, dim, self.text_model or "CLIP")
        return model, tokenizer, image_processor, device

    def _subfolder(self, path: str) -> str | None:
        """For a sentence-transformers CLIP checkpoint, the folder holding the transformers CLIP model."""
        p = Path(path)
        if p.is_dir():
            if (p / "config.json").exists() or not (p / "modules.json").exists():
                return None
            modules = json.loads((p / "modules.json").read_text(encoding="utf-8"))
            sub = _st_clip_subfolder(modules, lambda rel: (p / rel).exists())
            if sub is None:
                raise ConfigError(f"{self.model} is a sentence-transformers model without a CLIP module; "
                                  "use st: for text-only models")
            return sub
        try:  # a hub id: does it have a modules.json (sentence-transformers layout)?
            from huggingface_hub import hf_hub_download

            modules_file = hf_hub_download(path, "modules.json", local_files_only=hub_offline())
        except Exception:
            return None
        modules = json.loads(Path(modules_file).read_text(encoding="utf-8"))

        def has_file(rel: str) -> bool:
            try:
                hf_hub_download(path, rel, local_files_only=hub_offline())
                return True
            except Exception:
                return False

        return _st_clip_subfolder(modules, has_file)

    @cached_property
    def _text_provider(self) -> Provider:
        """The paired text encoder (``text_model=``), a normalising sentence-transformers provider."""
        from .sentence_transformers import SentenceTransformerProvider

        assert self.text_model is not None
        return SentenceTransformerProvider(self.text_model, device=self.device, normalize=True,
                                           settings=self.settings, batch_size=self.batch_size)

    def _ensure_loaded(self) -> tuple[Any, Any, Any, str]:
        return self._loaded

    # ----------------------------------------------------------------- facts
    def info(self) -> dict[str, Any]:
        out = super().info()
        out["image_model"] = self.model
        out["text_model"] = self.text_model or self.model
        return out

    @property
    def space(self) -> str:
        """``clip:<image tower>+text:<text tower>|<dim>|fp32``: images from one pairing are only comparable with
        text from the same pairing (a multilingual text encoder is its own tower)."""
        dim = self.dimension
        image = canonical_name(clip_model_name(self.model))
        text = canonical_name(clip_model_name(self.text_model)) if self.text_model else image
        return f"clip:{image}+text:{text}|{dim}|fp32"

    @property
    def tokenizer(self) -> Any:
        """The text tokenizer (the paired ``text_model``'s when there is one); callers on other threads
        copy it: fast tokenizers are not thread-safe."""
        _, tokenizer, _, _ = self._ensure_loaded()
        if self.text_model:
            return getattr(self._text_provider, "tokenizer", None)
        return tokenizer

    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]:
        _, tokenizer, _, _ = self._ensure_loaded()
        if self.text_model:
            return self._text_provider.count_tokens(texts, kind=kind)
        return self.count_with(tokenizer, texts)

    # ----------------------------------------------------------------- text
    def embed_batch(self, items: Sequence[Any], *, kind: Kind) -> Vectors:
        """Texts → vectors (the CLIP text tower, or the paired ``text_model``)."""
        import torch

        model, tokenizer, _, device = self._ensure_loaded()
        if self.text_model:
            return l2_normalize(self._text_provider.embed_batch(list(items), kind=kind))
        padding: Any = "max_length" if self._model_type.startswith("siglip") else True  # SigLIP trained so
        with self._tok_lock:
            enc = tokenizer(list(items), padding=padding, truncation=True, max_length=self.max_input_tokens,
                            return_tensors="pt")
        inputs = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        if self._model_type.startswith("siglip"):
            inputs.pop("attention_mask", None)
        with torch.inference_mode():
            vecs = _output_tensor(model.get_text_features(**inputs))
        return l2_normalize(vecs.float().cpu().numpy())

    # ----------------------------------------------------------------- images
    def _embed_pixels(self, images: list[Any]) -> Vectors:
        import torch

        model, _, image_processor, device = self._ensure_loaded()
        pixels = image_processor(images=images, return_tensors="pt")["pixel_values"].to(device)
        with torch.inference_mode():
            vecs = _output_tensor(model.get_image_features(pixel_values=pixels))
        return l2_normalize(vecs.float().cpu().numpy())

    def embed_images_result(
        self,
        items: Iterable[Any],
        *,
        on_error: OnError = "skip",
        batch_size: int | None = None,
    ) -> EmbedResult:
        """Embed image items (paths, ``file://`` URLs, bytes, PIL images) for batch work.

        Returns an :class:`EmbedResult` whose ``vectors`` hold one row per image that loaded, in input
        order; ``extra["indices"]`` gives each row's input index, ``extra["facts"]`` its
        :class:`~obembed.images.ImageFacts`, and ``failed`` maps each skipped input index to the reason
        (which names the file). ``on_error="raise"`` raises :class:`InvalidInputError` at the first bad item.

        Images are decoded ``batch_size`` at a time by ``decode_workers`` threads (Pillow decodes without the
        GIL), the next batch while the model embeds the current one: at most two batches are in memory.
        """
        if on_error not in ("raise", "skip"):
            raise InvalidInputError(f"on_error={on_error!r}; use 'raise' or 'skip'")
        if isinstance(items, str | bytes | os.PathLike) or type(items).__module__.startswith("PIL"):
            items = [items]
        seq = list(items)
        size = max(1, int(batch_size or self.batch_size))
        self._ensure_loaded()
        parts: list[np.ndarray] = []
        indices: list[int] = []
        facts: list[ImageFacts] = []
        failed: dict[int, str] = {}
        starts = list(range(0, len(seq), size))
        pool = (ThreadPoolExecutor(self.decode_workers, thread_name_prefix="obembed-decode")
                if self.decode_workers > 1 and len(seq) > 1 else None)
        try:
            pending = self._submit(pool, seq, starts[0], size) if starts else []
            for n in range(len(starts)):
                current = pending
                if n + 1 < len(starts):  # decode the next batch while this one is embedded
                    pending = self._submit(pool, seq, starts[n + 1], size)
                ok: list[tuple[int, LoadedImage]] = []
                for i, job in current:
                    try:
                        ok.append((i, job.result() if isinstance(job, Future) else self._load(job, i)))
                    except InvalidInputError as exc:
                        if on_error == "raise":
                            raise
                        log.warning("skipping %s", exc)
                        failed[i] = str(exc)
                if not ok:
                    continue
                vecs = self._check(self._embed_pixels([li.image for _, li in ok]), len(ok))
                parts.append(vecs)
                indices += [i for i, _ in ok]
                facts += [li.facts for _, li in ok]
                for _, li in ok:
                    li.image.close()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        vectors = np.concatenate(parts, axis=0) if parts else np.zeros((0, self.dimension), np.float32)
        if failed:
            log.warning("%s: %d of %d images skipped", self.spec, len(failed), len(seq))
        return EmbedResult(vectors, failed=failed, extra={"indices": indices, "facts": facts})

    def _load(self, item: Any, index: int) -> LoadedImage:
        return load_image(item, index=index, max_size=self.max_image_size, max_pixels=self.max_image_pixels)

    def _submit(self, pool: ThreadPoolExecutor | None, seq: list[Any], start: int,
                size: int) -> list[tuple[int, Any]]:
        """``[(index, Future | item)]`` for one batch; PIL images (caller-owned objects) load in this thread."""
        out: list[tuple[int, Any]] = []
        for i in range(start, min(start + size, len(seq))):
            item = seq[i]
            if pool is None or type(item).__module__.startswith("PIL"):
                out.append((i, item))
            else:
                out.append((i, pool.submit(self._load, item, i)))
        return out

    def embed_images(self, items: Iterable[Any], *, batch_size: int | None = None) -> Vectors:
        """Embed images; ``(n, d)`` float32 unit vectors in input order. The first bad item raises
        :class:`InvalidInputError` naming it (use :meth:`embed_images_result` to skip and report instead)."""
        return self.embed_images_result(items, on_error="raise", batch_size=batch_size).vectors

    def embed_image(self, item: Any) -> Vector:
        """One image → ``(d,)``; e.g. to search a collection by an example image."""
        if isinstance(item, list | tuple):
            raise InvalidInputError("embed_image() takes one image; use embed_images() for several")
        vector: Vector = self.embed_images([item])[0]
        return vector
