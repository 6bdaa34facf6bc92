"""Static files: the console's CSS and htmx (in this package), Plotly's bundle (from plotly)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from modelcycle.errors import NotFound
from modelcycle.interfaces.ui.web import ConsoleRoute

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

_HERE = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_FILES = {p.name: p for p in _HERE.iterdir() if p.suffix in _TYPES}
_CACHE = {"Cache-Control": "public, max-age=3600"}


def _plotly() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(_plotly(), media_type="text/javascript", headers=_CACHE)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = _FILES.get(name)
    if path is None:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_CACHE)
