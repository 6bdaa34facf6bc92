"""One StrEnum per kind of record: the stored strings stay as they were, and the HTTP API's
models and filters offer exactly the states its stage has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modelcycle import init_workspace
from modelcycle.interfaces.http.app import create_app
from modelcycle.statuses import (
    ApprovalState,
    BatchJobStatus,
    DeploymentStatus,
    JobState,
    ModelVersionStatus,
    RunStatus,
    StepStatus,
)
from modelcycle.store.tokens import TokenStore

# The strings in existing databases: a member's value must never change.
STORED = {
    RunStatus: {"running", "succeeded", "failed"},
    StepStatus: {"running", "succeeded", "failed", "cached"},
    BatchJobStatus: {"running", "succeeded", "failed"},
    JobState: {"queued", "running", "succeeded", "dead", "cancelled"},
    DeploymentStatus: {"active", "replaced", "stopped", "failed", "rolled_back", "written"},
    ModelVersionStatus: {"active", "archived"},
    ApprovalState: {"pending", "approved", "rejected", "cancelled", "expired"},
}


def test_the_stored_strings_are_unchanged() -> None:
    for enum, values in STORED.items():
        assert {m.value for m in enum} == values, enum.__name__
        assert all(m == m.value and str(m) == m.value for m in enum)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root: Path = tmp_path_factory.mktemp("statuses")
    ws, _ = init_workspace(root / "ws")
    _, token = TokenStore(ws.metadata, ws.actor).create("reader-bot", "reader")
    try:
        with TestClient(create_app(ws)) as c:
            c.headers["Authorization"] = f"Bearer {token}"
            yield c
    finally:
        ws.close()


def _enum_of(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The enum values of ``schema``, following ``$ref`` and ``anyOf`` (optional fields)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return _enum_of(doc, doc["components"]["schemas"][name])
    for option in schema.get("anyOf", []):
        found = _enum_of(doc, option)
        if found:
            return found
    return set(schema.get("enum", []))


def test_the_api_offers_the_stages_states(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    fields = {
        ("RunOut", "status"): RunStatus,
        ("StepOut", "status"): StepStatus,
        ("BatchJobOut", "status"): BatchJobStatus,
        ("JobOut", "state"): JobState,
        ("DeploymentOut", "status"): DeploymentStatus,
        ("ModelVersionOut", "status"): ModelVersionStatus,
        ("ApprovalOut", "state"): ApprovalState,
    }
    for (model, field), enum in fields.items():
        found = _enum_of(doc, schemas[model]["properties"][field])
        assert found == STORED[enum], (model, field)
    params = {
        ("/api/v1/jobs", "state"): JobState,
        ("/api/v1/runs", "status"): RunStatus,
    }
    for (path, name), enum in params.items():
        (param,) = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name]
        assert _enum_of(doc, param["schema"]) == STORED[enum], path


def test_a_state_the_queue_does_not_have_is_refused(client: TestClient) -> None:
    # The API listed "failed" although no job is ever in it: now it is a 422 naming the field.
    answer = client.get("/api/v1/jobs", params={"state": "failed"})
    assert answer.status_code == 422, answer.text
    assert "state" in answer.text
    assert client.get("/api/v1/jobs", params={"state": "dead"}).status_code == 200
