"""Console pages (filled in by later commits)."""

from __future__ import annotations

from fastapi import APIRouter

from modelcycle.interfaces.ui.web import ConsoleRoute

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)
