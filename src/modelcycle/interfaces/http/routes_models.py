"""Models (``modelcycle models ...``): versions, lineage, aliases with ETags, archive, upload.

An alias's ETag names the version it points at; ``PUT``/``DELETE`` with ``If-Match`` hand that
version to the registry, which checks it inside the same transaction as the move (412 when the
alias moved meanwhile). ``PUT`` runs the registry's promotion gate, as ``models promote`` does.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Path, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from modelcycle.entities import ModelVersion
from modelcycle.errors import Forbidden, InvalidInput, PreconditionFailed
from modelcycle.interfaces.http.auth import Operator, Reader
from modelcycle.interfaces.http.paging import Cursor, Limit, Page, page_of
from modelcycle.interfaces.http.problems import ContentTooLarge
from modelcycle.interfaces.http.routes_approvals import ApprovalOut, accepted, from_http
from modelcycle.interfaces.http.schemas import (
    AliasOut,
    AuditEventOut,
    ModelOut,
    ModelVersionDetail,
    ModelVersionOut,
    PromotionOut,
)
from modelcycle.registry import DEFAULT_MIN_ROWS, get_flavor

__all__ = ["router"]

router = APIRouter(tags=["models"])

Name = Annotated[str, Path(min_length=1, max_length=200)]
AliasName = Annotated[str, Path(min_length=1, max_length=100)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
IfMatch = Annotated[str | None, Header(max_length=200, description="An alias ETag.")]
_ALIAS_ETAG = re.compile(r'^(?:W/)?"alias-(\d{1,10})"$')


class AliasMove(BaseModel):
    """Where to point the alias, and the gate's settings (as `models promote`)."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1)
    metric: str | None = Field(None, max_length=100, description="e.g. roc_auc, rmse")
    min_gain: float = Field(0.0, ge=0, allow_inf_nan=False)
    on: str | None = Field(None, max_length=200, description="Holdout DATASET@VERSION")
    target: str | None = Field(None, max_length=200, description="The holdout's label column")
    force: bool = Field(False, description="Skip the gate (admin only; audited as forced)")
    reason: str | None = Field(
        None, max_length=2000, description="Why (required with force; kept in the audit events)"
    )
    min_rows: int = Field(
        DEFAULT_MIN_ROWS, ge=1, le=10**9, description="Fewest holdout rows neither model trained on"
    )


def alias_etag(version: int) -> str:
    return f'"alias-{version}"'


def version_etag(mv: ModelVersion) -> str:
    return f'"mv-{mv.sha256[:16]}-{mv.status}-{"+".join(mv.aliases)}"'


def _expected(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ALIAS_ETAG.match(if_match.strip())
    if match is None:
        raise PreconditionFailed(f"If-Match {if_match!r} is not an ETag of this alias")
    return int(match.group(1))


@router.get("/models")
def list_models(
    caller: Reader, request: Request, response: Response, limit: Limit = 50, cursor: Cursor = None
) -> Page[ModelOut]:
    """Models by name: version count, latest version, aliases (as `models list`)."""
    by_name: dict[str, list[ModelVersion]] = {}
    for mv in caller.ws.registry.list():
        by_name.setdefault(mv.name, []).append(mv)
    items = [
        ModelOut(
            name=name,
            versions=len(vs),
            latest=max(v.version for v in vs),
            aliases={a: v.version for v in vs for a in v.aliases},
        )
        for name, vs in sorted(by_name.items())
    ]
    return page_of(request, response, items, limit, cursor, lambda m: (m.name,))


@router.get("/models/{name}")
def model_versions(
    caller: Reader,
    name: Name,
    request: Request,
    response: Response,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ModelVersionOut]:
    """The versions of one model, oldest first, with their aliases."""
    items = [ModelVersionOut.of(mv) for mv in caller.ws.registry.list(name)]
    return page_of(request, response, items, limit, cursor, lambda v: (v.version,))


@router.get("/models/{name}/versions/{version}")
def model_version(
    caller: Reader, name: Name, version: Version, response: Response
) -> ModelVersionDetail:
    """Signature, metrics, lineage, evaluations, audit events, deployments (as `models show`)."""
    lineage = caller.ws.registry.lineage(f"{name}/{version}")
    mv = lineage.version
    deployed = [
        {"endpoint": d.endpoint, "target": d.target, "url": d.url, "since": d.created_at}
        for d in caller.ws.deploy.list()
        if d.model_name == mv.name and d.model_version == mv.version
    ]
    response.headers["ETag"] = version_etag(mv)
    return ModelVersionDetail(
        **ModelVersionOut.of(mv).model_dump(),
        signature=lineage.signature,
        params=mv.params,
        requirements=mv.requirements,
        code_version=lineage.code_version,
        evaluations=lineage.evaluations,
        events=[AuditEventOut.of(e) for e in lineage.events],
        deployments=deployed,
        etag=version_etag(mv),
    )


@router.get("/models/{name}/aliases/{alias}")
def get_alias(caller: Reader, name: Name, alias: AliasName, response: Response) -> AliasOut:
    """The version an alias points at; its ETag is what If-Match takes."""
    mv = caller.ws.registry.get(f"{name}@{alias}")
    response.headers["ETag"] = alias_etag(mv.version)
    return AliasOut(name=mv.name, alias=alias, version=mv.version, etag=alias_etag(mv.version))


@router.put(
    "/models/{name}/aliases/{alias}",
    response_model=PromotionOut,
    responses={
        202: {"model": ApprovalOut, "description": "A policy needs approvals: the request"},
        412: {"description": "Alias moved"},
    },
)
def put_alias(
    caller: Operator,
    name: Name,
    alias: AliasName,
    body: AliasMove,
    response: Response,
    if_match: IfMatch = None,
) -> PromotionOut | JSONResponse:
    """Promote: move the alias through the gate (409 with both scores when refused); under a
    promotion policy that needs approvals, 202 with the request and the alias unmoved."""
    if body.force and caller.role != "admin":
        raise Forbidden(f"token {caller.token_id} has role {caller.role!r}; force needs 'admin'")
    if body.force and not (body.reason or "").strip():
        # As `models promote --force` demands --reason: a skipped gate is always explained.
        raise InvalidInput("force skips the gate: say why in 'reason'", field="reason")
    with from_http():
        result = caller.ws.registry.promote(
            f"{name}/{body.version}",
            alias,
            metric=body.metric,
            min_gain=body.min_gain,
            on=body.on,
            target=body.target,
            force=body.force,
            if_version=_expected(if_match),
            min_rows=body.min_rows,
            reason=body.reason,
        )
    if result.request is not None:
        return accepted(caller.ws.approvals.get(result.request))
    response.headers["ETag"] = alias_etag(result.version)
    return PromotionOut(
        name=result.name, alias=result.alias, version=result.version,
        etag=alias_etag(result.version), previous=result.previous, moved=result.moved,
        forced=result.forced, first=result.first, metric=result.metric,
        candidate_score=result.candidate_score, champion_score=result.champion_score,
        dataset=result.dataset, rows=result.rows, warnings=list(result.warnings),
    )  # fmt: skip


@router.delete(
    "/models/{name}/aliases/{alias}",
    status_code=204,
    responses={412: {"description": "Alias moved"}},
)
def delete_alias(caller: Operator, name: Name, alias: AliasName, if_match: IfMatch = None) -> None:
    """Remove an alias (as `models alias delete`)."""
    caller.ws.registry.delete_alias(name, alias, if_version=_expected(if_match))


@router.post("/models/{name}/versions/{version}/archive")
def archive(caller: Operator, name: Name, version: Version) -> ModelVersionOut:
    """Archive a version: it can no longer take an alias or be served."""
    return ModelVersionOut.of(caller.ws.registry.archive(f"{name}/{version}"))


@router.post(
    "/models/{name}/versions",
    status_code=201,
    responses={413: {"description": "The file is larger than the server's upload limit"}},
)
def upload(
    caller: Operator,
    request: Request,
    name: Name,
    file: Annotated[
        UploadFile, File(description="A model file (flavors that run code: admin+trust)")
    ],
    flavor: Annotated[
        str, Form(max_length=64, description="skops, onnx, xgboost, lightgbm, pickle ...")
    ],
    signature: Annotated[
        str | None, Form(max_length=1_000_000, description="The signature as JSON")
    ] = None,
    trust: Annotated[bool, Form()] = False,
) -> ModelVersionOut:
    """Register an uploaded model file as the next version of NAME (as `models register`)."""
    flv = get_flavor(flavor)  # InvalidInput listing the flavors
    if (flv.needs_trust or trust) and caller.role != "admin":
        raise Forbidden(
            f"token {caller.token_id} has role {caller.role!r}; trusting a file needs 'admin'"
        )
    if flv.needs_trust and not trust:
        raise InvalidInput(f"{flavor} runs code when loaded; send trust=true", field="trust")
    limit: int = request.app.state.settings.max_upload_bytes
    with tempfile.TemporaryDirectory(prefix="mc-upload-") as tmp:
        path = FsPath(tmp) / f"model.{flv.file_extension}"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, 1 << 20)
        if path.stat().st_size > limit:
            raise ContentTooLarge(limit)
        mv = caller.ws.registry.register_file(
            str(path), name, flavor=flavor, trust=trust, signature=_json(signature, "signature")
        )
    return ModelVersionOut.of(mv)


def _json(text: str | None, field: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"is not JSON ({exc})", field=field) from None
    if not isinstance(value, dict):
        raise InvalidInput("expected a JSON object", field=field)
    return value
