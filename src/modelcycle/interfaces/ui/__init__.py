"""The web console: server-rendered pages over the Workspace facades, at ``/`` of the API app.

``mount_console(app)`` adds the pages to the app ``create_app`` builds (its token gate and
problem handlers are shared). Every front-end file is served from the package: htmx (shipped
here with its licence) and Plotly's bundle from the installed ``plotly`` package; no CDN.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["mount_console"]


def mount_console(app: FastAPI) -> None:
    """Add the console's routes (pages, sign-in, static files) to ``app``."""
    from modelcycle.interfaces.ui import (
        pages_approvals,
        pages_data,
        pages_models,
        pages_ops,
        pages_overview,
        pages_runs,
        pages_watch,
        session,
        static,
    )

    for module in (
        static,
        session,
        pages_overview,
        pages_models,
        pages_runs,
        pages_watch,
        pages_data,
        pages_ops,
        pages_approvals,
    ):
        app.include_router(module.router, include_in_schema=False)
