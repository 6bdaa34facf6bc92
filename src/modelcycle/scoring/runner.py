"""Run the scoring app on uvicorn: one process per worker, each with its own listening socket.

Each worker binds ``host:port`` with ``SO_REUSEPORT`` (the kernel spreads connections over the
workers) and sets ``TCP_NODELAY`` on its listening socket, which Linux copies to every accepted
connection. uvicorn's own ``--workers`` hands one socket to spawned children, whose accepted
connections lose ``TCP_NODELAY`` (uvicorn issue #3149): every keep-alive answer then waits for
a delayed ACK, about 40 ms. One worker runs in this process; more run as child processes,
stopped with SIGTERM when the parent gets SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from modelcycle.errors import Conflict, InvalidInput
from modelcycle.scoring._metrics import prepare_directory, use_directory
from modelcycle.scoring._startup import import_skops_lazily
from modelcycle.scoring.engine import ScoringEngine
from modelcycle.scoring.server import DEFAULT_MAX_BODY_BYTES, Serving, create_app

__all__ = ["bind_socket", "serve"]

_log = logging.getLogger("modelcycle.scoring")

# Builds one worker's engine, or a Serving (engine + prediction log, tokens, alias follower).
EngineFactory = Callable[[], ScoringEngine | Serving]


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket with TCP_NODELAY (inherited by accepted connections on Linux)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Conflict(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    engine_factory: EngineFactory,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
    metrics_parent: Path | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (0 after a clean stop).

    ``engine_factory`` builds each worker's engine or :class:`Serving` (called in the worker;
    with ``workers > 1`` it must be picklable, e.g. a module-level function or a
    ``functools.partial`` of one). ``metrics_parent``: where the server's metrics directory
    is made (fresh at each start, removed at a clean stop), in which every worker writes its
    counts so that ``/metrics`` sums the workers; None: each worker counts for itself.
    """
    if not isinstance(workers, int) or workers < 1:
        raise InvalidInput(f"must be an integer >= 1, got {workers!r}", field="workers")
    options: dict[str, Any] = {"max_body_bytes": max_body_bytes, "log_level": log_level}
    metrics_dir = None
    if metrics_parent is not None:
        try:
            metrics_dir = prepare_directory(metrics_parent)
        except OSError as exc:  # e.g. a read-only state folder: serve, each worker counting alone
            _log.warning("no shared metrics directory in %s (%s): /metrics is per worker",
                         metrics_parent, exc.strerror or exc)  # fmt: skip
    options["metrics_dir"] = metrics_dir
    try:
        return _serve(engine_factory, host, port, workers, options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # kept while another server's files are in it
                metrics_dir.parent.rmdir()


def _serve(
    engine_factory: EngineFactory, host: str, port: int, workers: int, options: dict[str, Any]
) -> int:
    if workers == 1:
        return _run_worker(engine_factory, bind_socket(host, port), options)
    # Held (bound, never listening) for the whole run: it reserves the port, and port 0
    # becomes one concrete port that every worker then binds.
    guard = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    guard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        guard.bind((host, port))
    except OSError as exc:
        guard.close()
        raise Conflict(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    port = guard.getsockname()[1]
    try:
        return _supervise(engine_factory, host, port, workers, options)
    finally:
        guard.close()


def _run_worker(engine_factory: EngineFactory, sock: socket.socket, options: dict[str, Any]) -> int:
    import uvicorn

    import_skops_lazily()
    # The prediction log's flush thread makes rows and talks to the database holding the GIL;
    # a request arriving meanwhile waits for the switch interval (5 ms by default) before the
    # event loop runs again. 0.5 ms bounds that wait.
    sys.setswitchinterval(0.0005)
    use_directory(options.get("metrics_dir"))
    engine = engine_factory()
    failed: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_load_error(exc: BaseException) -> None:
        failed.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(
        engine,
        max_body_bytes=int(options["max_body_bytes"]),
        on_load_error=on_load_error,
        freeze_after_load=True,
    )
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="none",
        lifespan="on",
        access_log=False,
        log_level=str(options["log_level"]),
        timeout_keep_alive=30,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it is done; with these handlers in
    # place that re-raise is a no-op, so a clean SIGTERM stop exits with code 0.
    main = threading.current_thread() is threading.main_thread()
    stops = (signal.SIGTERM, signal.SIGINT) if main else ()
    previous = {s: signal.signal(s, _ignore) for s in stops}
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(server.serve(sockets=[sock]))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    if failed:
        print(f"error: loading the models failed: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Stands in for the default handlers while uvicorn runs (it installs its own)."""


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _child(
    engine_factory: EngineFactory,
    host: str,
    port: int,
    options: dict[str, Any],
) -> None:
    sys.exit(_run_worker(engine_factory, bind_socket(host, port, reuse_port=True), options))


def _supervise(
    engine_factory: EngineFactory,
    host: str,
    port: int,
    workers: int,
    options: dict[str, Any],
) -> int:
    ctx = multiprocessing.get_context("spawn")
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    procs = []
    try:
        for i in range(workers):
            proc = ctx.Process(
                target=_child,
                args=(engine_factory, host, port, options),
                name=f"modelcycle-serve-{i}",
            )
            proc.start()
            procs.append(proc)
        code = 0
        while not stopping:
            dead = [p for p in procs if not p.is_alive()]
            if dead:
                # A worker that dies takes the server down with it: a supervisor
                # (systemd, Kubernetes) restarts the whole thing, with a clear log.
                code = 1
                _log.error("worker %s exited with %s; stopping", dead[0].name, dead[0].exitcode)
                break
            time.sleep(0.2)
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
