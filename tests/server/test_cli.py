"""``obembed serve``: the real command in a subprocess, and its argument checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from obembed.cli.serve import parse_model_arg

OBEMBED = [sys.executable, "-c", "from obembed.cli import main; main()"]


@pytest.mark.parametrize(("arg", "expected"), [
    ("st:all-MiniLM-L6-v2", (None, "st:all-MiniLM-L6-v2")),
    ("minilm=st:all-MiniLM-L6-v2", ("minilm", "st:all-MiniLM-L6-v2")),
    ("dashscope:text-embedding-v3?dimensions=512", (None, "dashscope:text-embedding-v3?dimensions=512")),
    ("small=st:x?truncate_dim=64", ("small", "st:x?truncate_dim=64")),
])
def test_parse_model_arg(arg, expected):
    assert parse_model_arg(arg) == expected


def test_missing_api_key_env_fails_before_loading(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEMBED_")}
    r = subprocess.run([*OBEMBED, "serve", "--api-key-env", "OBEMBED_TEST_NO_SUCH_KEY"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 1
    assert "OBEMBED_TEST_NO_SUCH_KEY" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_command_end_to_end(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEMBED_")}
    env["OBEMBED_TEST_SERVE_KEY"] = "k-123456789"
    proc = subprocess.Popen(
        [*OBEMBED, "serve", "--port", str(port), "--api-key-env", "OBEMBED_TEST_SERVE_KEY",
         "--no-store", "--max-inputs", "3", "-m", "mini=st:all-MiniLM-L6-v2", "-o", "device=cpu",
         "--allowed-host", "proxy.example"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # a fresh cache makes the server build the verified ONNX export first (tens of seconds idle, minutes on
        # a loaded 2-core box): the deadline is generous, the test never asserts speed
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "obembed serve did not come up"
            time.sleep(0.2)
        auth = {"Authorization": "Bearer k-123456789"}
        r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"model": "mini", "input": ["a", "b"]},
                       headers=auth, timeout=60)
        assert r.status_code == 200
        assert len(r.json()["data"]) == 2
        for name in ("st:all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):  # the spec as written names it too
            r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"model": name, "input": "c"},
                           headers=auth, timeout=60)
            assert r.json()["model"] == "mini"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"input": ["a"] * 4}, headers=auth)
        assert r.status_code == 400
        assert httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"input": "a"}).status_code == 401
        r = httpx.post(f"http://127.0.0.1:{port}/search", json={"collection": "x", "query": "q"}, headers=auth)
        assert r.status_code == 404
        assert "--db" in r.json()["error"]["message"]
        # Host check over loopback (DNS rebinding): --allowed-host admits a name, a foreign one is refused
        assert httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "proxy.example:443"}).status_code == 200
        r = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "rebind.example:8000"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "host_not_allowed"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "k-123456789" not in out
    assert "serving mini" in out
