"""Hub ids load from the Hugging Face cache offline, through the real hub client: ``clip:clip-ViT-B-32`` means
``sentence-transformers/clip-ViT-B-32``, whose CLIP model sits in ``0_CLIPModel/`` of the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import obembed
from obembed.errors import ModelNotFoundError


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_st_clip_dir: Path, tiny_clip_dir: Path) -> Path:
    """A hub cache (HF_HUB_CACHE layout: refs/main + snapshots/<commit>/) holding two repositories."""
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    for repo, src in (("sentence-transformers/clip-ViT-B-32", tiny_st_clip_dir),
                      ("openai/clip-vit-base-patch32", tiny_clip_dir)):
        folder = tmp_path / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(commit)
        shutil.copytree(src, folder / "snapshots" / commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    return tmp_path


def test_hub_ids_load_from_the_cache_offline(hub_cache: Path, tiny_clip_dir: Path) -> None:
    local = obembed.load(f"clip:{tiny_clip_dir}", device="cpu")
    texts = ["a red square", "a dog"]
    for spec in ("clip:openai/clip-vit-base-patch32", "clip:clip-ViT-B-32",
                 "clip:sentence-transformers/clip-ViT-B-32"):
        p = obembed.load(spec, device="cpu")
        assert p.dimension == 16, spec
        assert np.allclose(p.embed_documents(texts), local.embed_documents(texts), atol=1e-6), spec
    assert obembed.load("clip:clip-ViT-B-32").space.startswith(
        "clip:sentence-transformers/clip-vit-b-32+text:sentence-transformers/clip-vit-b-32|16|")


def test_uncached_hub_id_offline_says_so(hub_cache: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"openai/clip-vit-large-patch14.*HF_HUB_OFFLINE is set"):
        obembed.load("clip:openai/clip-vit-large-patch14").dimension  # noqa: B018
