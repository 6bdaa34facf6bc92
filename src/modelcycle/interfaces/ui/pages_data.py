"""Data sets: the list, one data set's versions, a version's schema and profile (histogram or
top values, missing shares), and the diff of two versions with changed columns highlighted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from modelcycle.entities import DatasetVersion
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.interfaces.ui.web import ConsoleRoute, paginate, render, viewer

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


@router.get("/datasets")
def datasets(request: Request) -> HTMLResponse:
    who = viewer(request)
    by_name: dict[str, list[DatasetVersion]] = {}
    for v in who.caller.ws.datasets.list():
        by_name.setdefault(v.name, []).append(v)
    rows = [
        {"name": n, "versions": len(vs), "latest": max(vs, key=lambda v: v.version)}
        for n, vs in sorted(by_name.items())
    ]
    return render(request, "datasets.html", who, page=paginate(request, rows))


@router.get("/datasets/{name}")
def dataset(request: Request, name: str) -> HTMLResponse:
    who = viewer(request)
    versions = who.caller.ws.datasets.list(name)
    if not versions:
        raise NotFound(f"no data set named {name!r}")
    page = paginate(request, sorted(versions, key=lambda v: -v.version))
    return render(request, "dataset.html", who, name=name, page=page, versions=versions)


def bars(counts: list[int], width: int = 160, height: int = 36) -> list[dict[str, float]]:
    """Bars of a histogram scaled into a width x height box (drawn as inline SVG)."""
    if not counts:
        return []
    top = max(counts) or 1
    step = width / len(counts)
    return [
        {
            "x": i * step,
            "w": max(step - 1, 1),
            "h": c / top * height,
            "y": height - c / top * height,
        }
        for i, c in enumerate(counts)
    ]


@router.get("/datasets/{name}/versions/{version}")
def dataset_version(request: Request, name: str, version: int) -> HTMLResponse:
    who = viewer(request)
    v = who.caller.ws.datasets.version(name, version)
    columns: list[dict[str, Any]] = []
    profile = v.profile.get("columns", {})
    for spec in v.schema:
        col = profile.get(spec["name"], {})
        count = int(col.get("count", 0)) + int(col.get("nulls", 0))
        hist = col.get("histogram") or {}
        columns.append(
            {"spec": spec, "p": col, "missing": (col.get("nulls", 0) / count) if count else 0.0,
             "bars": bars(list(hist.get("counts", []))), "edges": hist.get("edges", [])}
        )  # fmt: skip
    return render(request, "dataset_version.html", who, v=v, columns=columns)


@router.get("/datasets/{name}/diff")
def diff(request: Request, name: str, a: int | None = None, b: int | None = None) -> HTMLResponse:
    who = viewer(request)
    versions = sorted(v.version for v in who.caller.ws.datasets.list(name))
    if len(versions) < 2 and (a is None or b is None):
        raise InvalidInput(f"{name} has only one version: nothing to compare", field="b")
    a = a if a is not None else versions[-2]
    b = b if b is not None else versions[-1]
    d = who.caller.ws.datasets.diff(f"{name}@{a}", f"{name}@{b}")
    return render(request, "dataset_diff.html", who, d=d, name=name, a=a, b=b, versions=versions)
