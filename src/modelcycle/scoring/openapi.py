"""The scoring server's own OpenAPI 3.1 document (``GET /openapi.json``).

The server is plain Starlette (no schema generation), so the document is written out here, one
entry per route of :func:`modelcycle.scoring.server.create_app`; schema-driven clients and
fuzzers (schemathesis) read it. Request bodies are described as loosely as the protocols allow
(v2 tensors, MLflow's four JSON shapes or CSV, plain rows or columns).
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON_OBJECT: dict[str, Any] = {"type": "object"}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "An error naming each field at fault",
            "content": {"application/json": {"schema": _ERROR}},
        }
        for code in codes
    }


def _op(
    summary: str,
    *,
    body: dict[str, Any] | None = None,
    ok: dict[str, Any] | None = None,
    errors: tuple[int, ...] = (401, 403, 404, 503),
    params: tuple[str, ...] = (),
    role: str | None = "reader",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": ok
            or {"description": "OK", "content": {"application/json": {"schema": _JSON_OBJECT}}},
            **_errors(*errors),
        },
    }
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if role is None:
        op["security"] = []
    return op


def openapi_document(version: str) -> dict[str, Any]:
    """The document for a server of modelcycle ``version``."""
    json_body = {"application/json": {"schema": _JSON_OBJECT}}
    infer_errors = (400, 401, 403, 404, 413, 415, 503)
    v2 = {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}}
    health = {"description": "Ready (200) or not (503)"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelcycle scoring server", "version": version},
        "paths": {
            "/v2/health/live": {"get": _op("Liveness", ok=health, errors=(), role=None)},
            "/v2/health/ready": {"get": _op("Readiness", ok=health, errors=(503,), role=None)},
            "/v2": {"get": _op("Server metadata (Open Inference Protocol v2)")},
            "/v2/models/{name}": {"get": _op("Model metadata", params=("name",))},
            "/v2/models/{name}/versions/{version}": {
                "get": _op("Model version metadata", params=("name", "version"))
            },
            "/v2/models/{name}/ready": {"get": _op("Model readiness", params=("name",))},
            "/v2/models/{name}/versions/{version}/ready": {
                "get": _op("Model version readiness", params=("name", "version"))
            },
            "/v2/models/{name}/infer": {
                "post": _op(
                    "Infer (v2)", body=v2, params=("name",), errors=infer_errors, role="scorer"
                )
            },
            "/v2/models/{name}/versions/{version}/infer": {
                "post": _op(
                    "Infer with a version (v2)",
                    body=v2,
                    params=("name", "version"),
                    errors=infer_errors,
                    role="scorer",
                )
            },
            "/invocations": {
                "post": _op(
                    "Score (MLflow protocol: dataframe_split, dataframe_records, instances, "
                    "inputs, or text/csv)",
                    body={**json_body, "text/csv": {"schema": {"type": "string"}}},
                    errors=infer_errors,
                    role="scorer",
                )
            },
            "/ping": {"get": _op("MLflow ping", ok=health, errors=(503,), role=None)},
            "/health": {"get": _op("Health", ok=health, errors=(503,), role=None)},
            "/version": {
                "get": _op(
                    "modelcycle version",
                    ok={
                        "description": "Version text",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                )
            },
            "/predict": {
                "post": _op(
                    "Score rows or columns (plain)",
                    body=json_body,
                    errors=infer_errors,
                    role="scorer",
                )
            },
            "/predict/{name}": {
                "post": _op(
                    "Score with one served model (plain)",
                    body=json_body,
                    params=("name",),
                    errors=infer_errors,
                    role="scorer",
                )
            },
            "/metrics": {
                "get": _op(
                    "Prometheus metrics",
                    ok={
                        "description": "Metrics text",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                )
            },
            "/feedback": {
                "post": _op(
                    "Ground truth for logged predictions",
                    body=json_body,
                    errors=(400, 401, 403, 413, 415, 503),
                    role="scorer",
                )
            },
            "/admin/reload": {
                "post": _op("Reload models and tokens", errors=(401, 403, 503), role="operator")
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "problems": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "InferenceRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "shape", "datatype", "data"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "shape": {"type": "array", "items": {"type": "integer"}},
                                    "datatype": {"type": "string"},
                                    "data": {},
                                },
                            },
                        },
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
        "security": [{"bearer": []}],
    }
