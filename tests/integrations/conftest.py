"""Fixtures for the framework adapters: the session's embedded seekdb (tests/conftest.py ``store``), collections
made once per module and emptied between tests (creating and dropping one costs seconds), the bundled MiniLM."""

from __future__ import annotations

import inspect
import re
import uuid

import pytest


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object):
    """The frameworks' standard suites write plain ``async def`` tests (their repos run pytest-asyncio in auto
    mode); mark those asyncio here, in this folder only, so the rest of the suite keeps strict mode. Runs inside
    pytest-asyncio's own wrapper, which then turns the marked items into asyncio tests."""
    outcome = yield
    result = outcome.get_result()
    items = result if isinstance(result, list) else [result] if result is not None else []
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.asyncio)


@pytest.fixture(scope="module")
def module_collections(store):
    """``make(prefix)`` -> a unique collection name; every collection so named is dropped when the module ends."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{re.sub(r'[^A-Za-z0-9_]', '_', prefix)[:40]}_{uuid.uuid4().hex[:8]}"
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            store.drop_collection(name, missing_ok=True)
        except Exception:  # cleanup must not mask a test's own result
            pass
