"""Model cards over HTTP: ``GET /api/v1/models/{name}/versions/{version}/card`` (as
``modelcycle models card``). A read: reader role, not audited; never loads a model that needs
trust (pickle), whose holdout section then says so."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, PlainTextResponse

from modelcycle.interfaces.http.auth import Reader

__all__ = ["router"]

router = APIRouter(tags=["models"])

Name = Annotated[str, Path(min_length=1, max_length=200)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "/models/{name}/versions/{version}/card",
    response_model=None,
    responses={200: {"content": {"text/markdown": {}, "text/html": {}, "application/json": {}}}},
)
def model_card(
    caller: Reader,
    name: Name,
    version: Version,
    format: Annotated[Literal["json", "md", "html"], Query()] = "json",
    slice: Annotated[list[str] | None, Query(max_length=10)] = None,
) -> Any:
    """The version's model card: every figure computed from the registry and the audit log."""
    from modelcycle.evidence import build_card, card_html, card_markdown

    card = build_card(caller.ws, f"{name}/{version}", slices=tuple(slice or ()))
    if format == "md":
        return PlainTextResponse(card_markdown(card), media_type="text/markdown; charset=utf-8")
    if format == "html":
        return HTMLResponse(card_html(card))
    return card
