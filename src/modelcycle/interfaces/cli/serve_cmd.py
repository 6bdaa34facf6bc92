"""``modelcycle serve REF [REF ...]``: the real-time scoring server.

Traffic options: ``--canary NAME/V=PCT`` sends PCT percent of the requests for NAME (those
naming no version) to version V; ``--shadow NAME/V[=PCT]`` mirrors (PCT percent of) them to
version V, whose answers are logged, never returned. A ``NAME@ALIAS`` ref is followed: every
``--poll-seconds`` (and on ``POST /admin/reload``) the server swaps in the version the alias
points at.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console, open_workspace
from modelcycle.settings import Settings
from modelcycle.workspace import Workspace

if TYPE_CHECKING:
    from modelcycle.registry import LoadedModel
    from modelcycle.scoring import Serving


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
    canary: list[str] = typer.Option(
        [], "--canary", help="NAME/VERSION=PERCENT: that share of NAME's requests (repeatable)."
    ),
    shadow: list[str] = typer.Option(
        [], "--shadow", help="NAME/VERSION[=PERCENT]: mirror requests, log answers (repeatable)."
    ),
    log_sample: float = typer.Option(
        1.0, "--log-sample", min=0.0, max=1.0, help="Share of requests in the prediction log."
    ),
    no_log: bool = typer.Option(False, "--no-log", help="Keep no prediction log."),
    poll_seconds: float = typer.Option(
        5.0, "--poll-seconds", min=0.0, help="How often to check followed aliases (0: never)."
    ),
    access_log: str = typer.Option("off", "--access-log", help="'json': one line per request."),
) -> None:
    """Serve models over HTTP: Open Inference Protocol v2, MLflow /invocations, /predict."""
    # Imported here, not at the top: the server stack costs a second every other command skips.
    from modelcycle.scoring import DEFAULT_MAX_BODY_BYTES
    from modelcycle.scoring import serve as run_server

    if access_log not in ("off", "json"):
        raise InvalidInput(f"expected 'json' or 'off', got {access_log!r}", field="--access-log")
    canaries = [_split_ref(v, "--canary", default=None) for v in canary]
    shadows = [_split_ref(v, "--shadow", default=100.0) for v in shadow]
    with open_workspace() as ws:
        # Resolve aliases once, here: every worker then serves the same versions.
        resolved = [ws.registry.get(ref) for ref in refs]
        versions = [mv.ref for mv in resolved]
        follows = [(mv.name, ref) for mv, ref in zip(resolved, refs, strict=True) if "@" in ref]
        names = {mv.name for mv in resolved}
        extra = []
        for option, parts in (("--canary", canaries), ("--shadow", shadows)):
            for ref, _ in parts:
                mv = ws.registry.get(ref)
                if mv.name not in names:
                    raise InvalidInput(
                        f"{ref}: {mv.name!r} is not among the models served", field=option
                    )
                extra.append(mv.ref)
        settings = ws.settings
    _check_log_sink(settings)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    factory = functools.partial(
        _serving,
        settings,
        versions + extra,
        trust=trust,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_rows=max_rows,
        threads=threads,
        canary=_by_name(canaries),
        shadow=_by_name(shadows),
        follows=follows,
        log_sample=None if no_log else log_sample,
        poll_seconds=poll_seconds,
        access_log=access_log == "json",
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
        # The workers' metric files: /metrics sums them whichever worker answers.
        metrics_parent=settings.local_dir("run"),
    )
    raise typer.Exit(code)


def _check_log_sink(settings: Settings) -> None:
    """A bad ``[scoring]`` value stops the command here (exit 2), before any worker starts."""
    from modelcycle.scoring.log_sinks import check_log_sink

    check_log_sink(settings.config, settings.artifacts_url)


def _split_ref(value: str, option: str, *, default: float | None) -> tuple[str, float]:
    """``NAME/VERSION=PERCENT`` (``=PERCENT`` optional when ``default`` is given)."""
    ref, sep, share = value.rpartition("=") if "=" in value else (value, "", "")
    if not sep:
        if default is None:
            raise InvalidInput(f"{value!r}: expected NAME/VERSION=PERCENT", field=option)
        return value, default
    try:
        percent = float(share)
    except ValueError:
        raise InvalidInput(f"{value!r}: {share!r} is not a percentage", field=option) from None
    if not 0 < percent <= 100:
        raise InvalidInput(f"{value!r}: the share must be within (0, 100]", field=option)
    if "/" not in ref:
        raise InvalidInput(f"{value!r}: name a version, e.g. credit/3={share}", field=option)
    return ref, percent


def _by_name(parts: list[tuple[str, float]]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for ref, percent in parts:
        name, _, version = ref.partition("/")
        out.setdefault(name, []).append((int(version), percent))
    return out


def _serving(
    settings: Settings,
    refs: list[str],
    *,
    trust: bool,
    max_batch: int,
    max_wait_ms: float,
    max_rows: int,
    threads: int,
    canary: dict[str, list[tuple[int, float]]],
    shadow: dict[str, list[tuple[int, float]]],
    follows: list[tuple[str, str]],
    log_sample: float | None,
    poll_seconds: float,
    access_log: bool,
) -> Serving:
    """Each worker's engine and what goes around it; the models load in ``engine.load()``."""
    from modelcycle.scoring import (
        AliasFollower,
        FollowedAlias,
        PredictionLog,
        ScoringEngine,
        Serving,
    )
    from modelcycle.store.tokens import TokenStore

    # The settings, not a folder: a workspace named by URLs alone has none (stateless).
    ws = Workspace(settings=settings)
    loaders = [functools.partial(ws.registry.load, ref, trust=trust) for ref in refs]
    engine = ScoringEngine(
        loaders,
        max_batch_rows=max_batch,
        max_wait_ms=max_wait_ms,
        max_rows_per_request=max_rows,
        native_threads=threads,
        canary=canary,
        shadow=shadow,
        compiled_cache=ws.compiled_cache,
    )
    follower = None
    if follows:
        follower = AliasFollower(
            engine,
            [
                FollowedAlias(
                    name,
                    ref,
                    resolve=functools.partial(_alias_version, ws, ref),
                    load=functools.partial(_load_version, ws, name, trust),
                )
                for name, ref in follows
            ],
        )
    log = None
    if log_sample is not None:
        spill = settings.local_dir("spill")
        log = PredictionLog.from_config(
            settings.config,
            ws.metadata,
            spill,
            artifacts_url=settings.artifacts_url,
            sample=log_sample,
        )
    return Serving(
        engine,
        prediction_log=log,
        metadata=ws.metadata,
        tokens=lambda: TokenStore(ws.metadata, ws.actor).snapshot(),
        follower=follower,
        poll_seconds=poll_seconds,
        access_log=access_log,
    )


def _alias_version(ws: Workspace, ref: str) -> int:
    return ws.registry.get(ref).version


def _load_version(ws: Workspace, name: str, trust: bool, version: int) -> LoadedModel:
    return ws.registry.load(f"{name}/{version}", trust=trust)
