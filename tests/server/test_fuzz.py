"""Schemathesis fuzzes every operation of the server's OpenAPI spec (real app, real MiniLM, real store).

Bounded for speed: a few examples per operation (derandomised, so a run is repeatable). The property
asserted is the one that matters for a server facing arbitrary clients: no 5xx, whatever the request.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

EXAMPLES = 10


def test_openapi_fuzz_no_server_errors(base_url, docs_collection):
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    seen = []
    for result in schema.get_all_operations():
        op = result.ok()
        seen.append(f"{op.method.upper()} {op.path}")

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(base_url=base_url, timeout=60)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} body={case.body!r:.300} -> {response.status_code}: "
                f"{response.text[:300]}")

        check()
    assert "POST /v1/embeddings" in seen
    assert "POST /search" in seen
    assert "POST /api/embed" in seen
