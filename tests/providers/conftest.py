"""Fixtures of the remote-provider tests: one real local server per API (session), reset before each test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from .fakeapi import FakeAPI

OPENAI_KEY = "sk-test-" + secrets.token_hex(16)
DASHSCOPE_KEY = "sk-ds-" + secrets.token_hex(16)

FAST_RETRY: dict[str, Any] = {"retry_initial": 0.001, "retry_jitter": 0.001, "retry_max_wait": 0.01}
"""Retry options that keep backoff waits to milliseconds in tests."""


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeAPI]:
    with FakeAPI("openai", api_key=OPENAI_KEY) as api:
        yield api


@pytest.fixture(scope="session")
def dashscope_server() -> Iterator[FakeAPI]:
    with FakeAPI("dashscope", api_key=DASHSCOPE_KEY) as api:
        yield api


@pytest.fixture(scope="session")
def ollama_server() -> Iterator[FakeAPI]:
    with FakeAPI("ollama") as api:
        yield api


@pytest.fixture(autouse=True)
def _reset_servers(request: pytest.FixtureRequest) -> None:
    for name in ("openai_server", "dashscope_server", "ollama_server"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
