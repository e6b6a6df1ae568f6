"""An API key set for a failing request appears in no exception text, traceback, log record or repr."""

from __future__ import annotations

import logging
import secrets
import traceback

import pytest

import obembed
from obembed.errors import ObembedError, PartialBatchError

from .conftest import FAST_RETRY


def _everything_said(exc: BaseException, provider, caplog) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(provider), str(provider.info()),
             repr(vars(provider)), str(getattr(exc, "body", "")), caplog.text,
             "\n".join(str(r.args) + r.getMessage() for r in caplog.records)]
    for e in getattr(exc, "failed", {}).values():
        parts.append(str(e))
    if isinstance(exc, PartialBatchError):
        parts.append(repr(exc.result.failed))
    return "\n".join(parts)


@pytest.fixture
def key() -> str:
    return "sk-" + secrets.token_hex(20)


def _cases(key, openai_server, dashscope_server):
    # the server expects another key: it answers 401 and echoes the key it got (as OpenAI partly does)
    yield "openai", obembed.load("openai:text-embedding-3-small", base_url=openai_server.url + "/v1",
                                 api_key=key, **FAST_RETRY)
    yield "dashscope-env", obembed.load("dashscope:text-embedding-v3",
                                        base_url=dashscope_server.url + "/compatible-mode/v1", **FAST_RETRY)
    yield "dashscope-sdk", obembed.load("dashscope-sdk:text-embedding-v3",
                                        base_address=dashscope_server.url + "/api/v1", api_key=key, **FAST_RETRY)


def test_key_never_leaks_on_auth_failure(key, openai_server, dashscope_server, monkeypatch, caplog):
    monkeypatch.setenv("DASHSCOPE_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    for name, provider in _cases(key, openai_server, dashscope_server):
        with pytest.raises(ObembedError) as ei:
            provider.embed_documents(["a", "b"])
        said = _everything_said(ei.value, provider, caplog)
        assert key not in said, name
        assert key[3:15] not in said, name  # not even a fragment
        assert "401" in str(ei.value), name
    # and the servers did get the key: the test would catch a leak if there were one
    assert openai_server.received[-1].headers["authorization"] == f"Bearer {key}"


def test_key_never_leaks_on_retried_and_partial_failures(key, openai_server, monkeypatch, caplog):
    monkeypatch.setattr(openai_server, "api_key", key)
    caplog.set_level(logging.DEBUG)
    # a 429 whose message quotes the key, retried (logged), then a sub-batch that fails for good
    openai_server.fault("status", status=429, times=1, headers={"retry-after-ms": "1"},
                        body={"error": {"message": f"slow down, key={key}", "code": "rate_limit_exceeded"}})
    openai_server.fault("status", status=500, times=9, contains="doc 3",
                        body={"error": {"message": f"internal error for Bearer {key}"}})
    p = obembed.load("openai:text-embedding-3-small", base_url=openai_server.url + "/v1", api_key=key,
                     max_batch_items=2, max_retries=2, concurrency=1, **FAST_RETRY)
    with pytest.raises(PartialBatchError) as ei:
        p.embed_documents([f"doc {i}" for i in range(6)])
    assert sorted(ei.value.failed) == [2, 3]
    said = _everything_said(ei.value, p, caplog)
    assert "retrying" in caplog.text  # the retries were logged ...
    assert key not in said  # ... without the key
    assert "***" in said


def test_key_not_in_repr_or_info(key, openai_server):
    p = obembed.load("doubao:doubao-embedding-large", api_key=key, dimensions=512)
    assert key not in repr(p)
    assert key not in str(p.info())
    assert "api_key" not in p.info()["options"]
    assert key not in repr(vars(p))
