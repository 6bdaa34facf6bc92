"""The scoring server serves an OpenAPI 3.1 document of its own routes (no token needed)."""

from __future__ import annotations

import httpx
import schemathesis
from _scoring_helpers import ServerProcess


def test_openapi_document_lists_every_route_and_loads_in_schemathesis(
    server: ServerProcess,
) -> None:
    r = httpx.get(f"{server.url}/openapi.json", timeout=30)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    for path in ("/v2/models/{name}/infer", "/invocations", "/predict", "/feedback",
                 "/v2/health/ready", "/admin/reload"):  # fmt: skip
        assert path in doc["paths"], path
    schema = schemathesis.openapi.from_dict(doc)
    assert len(list(schema.get_all_operations())) >= 18
