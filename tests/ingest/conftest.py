"""Fixtures of the ingest tests: a counting wrapper around the real MiniLM, small corpora."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest


class CountingProvider:
    """The real provider, with every ``embed`` call and text counted (a thin wrapper, not a fake)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed(self, items: Iterable[Any], **kwargs: Any) -> Any:
        items = list(items)
        with self._lock:
            self.calls.append(items)
        return self._inner.embed(items, **kwargs)

    @property
    def texts(self) -> list[str]:
        return [t for c in self.calls for t in c]

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def counting(minilm) -> CountingProvider:
    return CountingProvider(minilm)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def put():
    """``put(path, text_or_bytes)``: write a file (parents created), return its path."""
    return write


@pytest.fixture
def store_args(store, store_test_dsn) -> list[str]:
    """CLI arguments naming the session's store: ``--db PATH`` (embedded) or ``--dsn DSN`` (OBEMBED_TEST_DSN)."""
    return ["--dsn", store_test_dsn] if store_test_dsn else ["--db", str(store.path)]


@pytest.fixture
def cli(store: Any) -> Any:
    """Run `obembed ...` in this process against the test store; ok=True asserts exit code 0."""
    from click.testing import CliRunner

    from obembed.cli import main

    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Any:
        res = runner.invoke(main, [*args], catch_exceptions=False)
        if ok:
            assert res.exit_code == 0, res.output
        return res

    return run
