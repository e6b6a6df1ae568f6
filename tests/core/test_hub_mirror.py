"""HF_ENDPOINT is honoured: a model id resolves against the mirror we point at (a real local HTTP server)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def test_hf_endpoint_mirror_is_used_and_failure_is_clear(tmp_path):
    seen: list[str] = []

    class Mirror(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": "Repository not found"}')

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
        env["HF_HOME"] = str(tmp_path / "hf")  # empty cache: must ask the mirror
        code = ("import obembed\n"
                "try:\n    obembed.load('st:acme/tiny-embedder').embed_documents(['x'])\n"
                "except obembed.errors.ModelNotFoundError as e:\n    print('ERR', e)\n")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
    assert "ERR model 'acme/tiny-embedder' could not be loaded" in out.stdout, out.stderr[-2000:]
    assert env["HF_ENDPOINT"] in out.stdout  # the message names the mirror it tried
    assert any("acme/tiny-embedder" in p for p in seen), seen
