"""``modelcycle serve REF [REF ...]``: the real-time scoring server."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from modelcycle.interfaces.cli._context import console, open_workspace
from modelcycle.workspace import Workspace

if TYPE_CHECKING:
    from modelcycle.scoring import ScoringEngine


def serve(
    refs: list[str] = typer.Argument(..., help="Models to serve: NAME@ALIAS or NAME/VERSION."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on (0: any free port)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (one per core)."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Most rows per model call."),
    max_wait_ms: float = typer.Option(
        2.0, "--max-wait-ms", min=0.0, max=1000.0, help="Longest a batch stays open (ms)."
    ),
    max_rows: int = typer.Option(10_000, "--max-rows", min=1, help="Most rows per request."),
    max_body_bytes: int | None = typer.Option(
        None, "--max-body-bytes", min=1, help="Largest request body (default: 10 MiB)."
    ),
    threads: int = typer.Option(
        1, "--threads", min=1, help="Native (OpenMP/BLAS) threads per worker."
    ),
    trust: bool = typer.Option(False, "--trust", help="Load models that need trust (pickle)."),
) -> None:
    """Serve models over HTTP: Open Inference Protocol v2, MLflow /invocations, /predict."""
    # Imported here, not at the top: the server stack costs a second every other command skips.
    from modelcycle.scoring import DEFAULT_MAX_BODY_BYTES
    from modelcycle.scoring import serve as run_server

    with open_workspace() as ws:
        # Resolve aliases once, here: every worker then serves the same versions.
        versions = [ws.registry.get(ref).ref for ref in refs]
        root = ws.root
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    factory = functools.partial(
        _engine,
        root,
        versions,
        trust=trust,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_rows=max_rows,
        threads=threads,
    )
    console.print(
        f"Serving {escape(', '.join(versions))} on http://{escape(host)}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})",
        highlight=False,
    )
    code = run_server(
        factory,
        host=host,
        port=port,
        workers=workers,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
    )
    raise typer.Exit(code)


def _engine(
    root: Path,
    refs: list[str],
    *,
    trust: bool,
    max_batch: int,
    max_wait_ms: float,
    max_rows: int,
    threads: int,
) -> ScoringEngine:
    """Each worker's engine; the models load (hash-checked by the registry) in ``load()``."""
    from modelcycle.scoring import ScoringEngine

    ws = Workspace(root)
    loaders = [functools.partial(ws.registry.load, ref, trust=trust) for ref in refs]
    return ScoringEngine(
        loaders,
        max_batch_rows=max_batch,
        max_wait_ms=max_wait_ms,
        max_rows_per_request=max_rows,
        native_threads=threads,
    )
