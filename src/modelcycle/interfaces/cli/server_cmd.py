"""``modelcycle server``: the management API (``/api/v1``) on uvicorn."""

from __future__ import annotations

import os

import typer
from rich.markup import escape

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console, open_workspace


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: local only)."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="Worker processes (PostgreSQL: several)."),
) -> None:
    """Serve the management API: every stage over HTTP, with tokens, roles and live events."""
    import uvicorn

    if not 0 < port < 65536:
        raise InvalidInput(f"must be within 1..65535, got {port}", field="--port")
    if workers < 1:
        raise InvalidInput(f"must be at least 1, got {workers}", field="--workers")
    ws = open_workspace()
    ws.metadata  # noqa: B018 - fail here, before binding, if the database is not ready
    console.print(
        f"modelcycle API on http://{escape(host)}:{port}/api/v1 (docs: /api/v1/docs, "
        f"{workers} worker{'s' if workers > 1 else ''})",
        highlight=False,
    )
    if workers == 1:
        from modelcycle.interfaces.http import create_app
        from modelcycle.interfaces.http.app import prepare_server_process

        with ws:
            app = create_app(ws)
            prepare_server_process()
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    ws.close()
    # Each worker process opens the workspace itself: tell it which one (a workspace named by
    # URLs alone is named by the MODELCYCLE_* variables the workers inherit).
    if not ws.settings.stateless:
        os.environ["MODELCYCLE_HOME"] = str(ws.root)
    uvicorn.run(
        "modelcycle.interfaces.http.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # No line per request: at warning level nothing would be printed, but each request
        # still went through the access logger.
        access_log=False,
    )
