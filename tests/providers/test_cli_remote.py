"""`obembed embed` with remote providers, through the real CLI against the local servers."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from obembed.cli import main

from .conftest import DASHSCOPE_KEY
from .fakeapi import vector_for


def test_cli_embed_dashscope_query(dashscope_server, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", DASHSCOPE_KEY)
    result = CliRunner().invoke(main, [
        "embed", "-m", "dashscope-sdk:text-embedding-v4", "-o", f"base_address={dashscope_server.url}/api/v1",
        "-o", "dimensions=256", "--query", "何が OceanBase ですか"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["dimension"] == 256
    np.testing.assert_allclose(out["embeddings"][0], vector_for("何が OceanBase ですか", "text-embedding-v4", 256),
                               atol=1e-6)
    assert dashscope_server.received[0].body["parameters"]["text_type"] == "query"


def test_cli_error_is_one_line_without_the_key(openai_server, monkeypatch):
    key = "sk-cli-" + "9" * 24
    monkeypatch.setenv("OPENAI_API_KEY", key)
    result = CliRunner().invoke(main, ["embed", "-m", "openai:text-embedding-3-small",
                                       "-o", f"base_url={openai_server.url}/v1", "hello"])
    assert result.exit_code == 1
    assert "HTTP 401" in result.output
    assert "OPENAI_API_KEY" in result.output
    assert "Traceback" not in result.output
    assert key not in result.output
    assert openai_server.received[0].headers["authorization"] == f"Bearer {key}"


def test_cli_unknown_option_names_the_fix(openai_server):
    result = CliRunner().invoke(main, ["embed", "-m", "openai:text-embedding-3-small", "-o", "dimension=64", "x"])
    assert result.exit_code == 1
    assert "unknown option dimension" in result.output
    assert "dimensions" in result.output
