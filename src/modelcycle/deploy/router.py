"""The endpoint router: one small front process per endpoint, on the endpoint's stable port.

Clients call ``http://127.0.0.1:PORT`` (the port is fixed by the endpoint's first deployment);
the router forwards every request (method, path, query, headers, body) to the endpoint's
active backend and relays the answer (status, headers such as ``X-Model-Version``, body).
Backends change at each deployment; the front port does not.

**The switch.** The router listens on a second socket, an admin port on 127.0.0.1 that only
answers requests carrying the token from ``router.json`` (mode 0600, readable by the workspace
owner only). ``POST /router/switch`` replaces the backend with one assignment in the router's
event loop: a request picks its backend once, after its body is read, so every request that
starts after the assignment goes to the new backend. The answer is sent only after the
requests still in flight to the old backend have finished (or ``drain_seconds`` passed), so
when the deploying process stops the old backend, nothing can be sent to it any more. A
request whose connection to a backend is refused (a backend that just stopped) is retried
once on the current backend: the connection never opened, so nothing was sent twice.

Per backend the router counts requests, 5xx answers and connection errors, and keeps a
latency histogram; ``GET /router/stats`` returns them (the ``--watch`` after a switch reads
them). A backend's figures start from zero each time it becomes the backend. The same
figures per minute, for the last three hours and the last few backends, are kept in memory
and returned by ``GET /router/history`` (the console's charts; lost when the router restarts).

Files, in ``DEPLOYMENTS/ENDPOINT/router/``: ``router.json`` (ports, token, first backend),
``server.pid`` and ``router.log``. The process is detached (its own session): it outlives the
command that started it, until ``modelcycle deployments stop``.

This module's top level imports the standard library only; the server's imports (uvicorn,
httptools) happen in the router process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import json
import os
import secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from modelcycle.deploy._processes import alive, free_port, port_free, spawn, terminate
from modelcycle.deploy._router_stats import (
    BackendStats,
    Counters,
    LatencyHistogram,
    RouterHistory,
)
from modelcycle.deploy._upstream import NoConnection, Upstream, UpstreamError
from modelcycle.errors import Conflict, NotReady

__all__ = ["BackendStats", "EndpointRouter", "LatencyHistogram", "main"]

HOST = "127.0.0.1"
_MODULE = "modelcycle.deploy.router"
# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, never forwarded; host and
# content-length are set again for the upstream request.
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_DROP_REQUEST = _HOP | {b"host", b"content-length"}
_MAX_BODY = 256 * 1024 * 1024
_NO_CONNECTION = -1
_UPSTREAM_TIMEOUT = 120.0
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- the router process ---------------------------------------------------------------------


class _Router:
    """The ASGI app: the proxy on the front socket, the admin routes on the admin socket."""

    def __init__(self, *, token: str, admin_port: int, backend: str | None) -> None:
        self.token = token
        self.admin_port = admin_port
        self.backend = backend
        self.stats: dict[str, Counters] = {}
        self.clients: dict[str, Upstream] = {}
        self.history = RouterHistory()
        if backend is not None:
            self.stats[backend] = Counters()
            self.history.get(backend)

    def client(self, backend: str) -> Upstream:
        client = self.clients.get(backend)
        if client is None:
            parsed = urllib.parse.urlsplit(backend)
            client = Upstream(parsed.hostname or HOST, parsed.port or 80)
            self.clients[backend] = client
        return client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] != "http":
            return
        elif scope.get("server") and scope["server"][1] == self.admin_port:
            await self._admin(scope, receive, send)
        else:
            await self._proxy(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for client in list(self.clients.values()):
                    await client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, {"error": f"request body over {_MAX_BODY} bytes"})
            return
        backend = self.backend
        if backend is None:
            await _answer(send, 503, {"error": "the endpoint has no backend"})
            return
        counters = self.stats.setdefault(backend, Counters())
        counters.in_flight += 1
        counters.requests += 1
        started = time.perf_counter()
        status = _NO_CONNECTION
        try:
            status = await self._forward(scope, body, backend, send)
        finally:
            counters.in_flight -= 1
            if status == _NO_CONNECTION:
                counters.connection_errors += 1
            elif status >= 500:
                counters.status_5xx += 1
            ms = (time.perf_counter() - started) * 1000.0
            counters.hist.observe(ms)
            self.history.get(backend).observe(ms, status == _NO_CONNECTION or status >= 500)

    async def _forward(self, scope: Scope, body: bytes, backend: str, send: Send) -> int:
        """Relay one request; the status relayed (``_NO_CONNECTION``: none could be made)."""
        path = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            path += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope["headers"] if k not in _DROP_REQUEST]
        headers.append((b"host", backend.partition("://")[2].encode()))
        client_addr = scope.get("client")
        if client_addr:
            headers.append((b"x-forwarded-for", str(client_addr[0]).encode()))
        target = backend
        for attempt in (1, 2):
            try:
                answer = await asyncio.wait_for(
                    self.client(target).request(scope["method"], path, headers, body),
                    timeout=_UPSTREAM_TIMEOUT,
                )
            except NoConnection as exc:
                current = self.backend
                if attempt == 1 and current is not None:
                    target = current  # nothing was sent; the switch may have moved on
                    continue
                await _answer(send, 502, {"error": f"no connection to the backend ({exc})"})
                return _NO_CONNECTION
            except TimeoutError:
                await _answer(send, 504, {"error": "the backend did not answer in time"})
                return 504
            except UpstreamError as exc:
                await _answer(send, 502, {"error": f"the backend failed ({exc})"})
                return 502
            break
        relayed = [
            (k, v)
            for k, v in answer.headers
            if k.lower() not in _HOP and k.lower() != b"content-length"
        ]
        relayed.append((b"content-length", str(answer.size).encode()))
        # The backend's Date (and Server, when it sends one) go through as sent (RFC 9110
        # 6.6.1, 10.2.4): the router adds a Date only to an answer that lacks one, so a client
        # never sees two (uvicorn's own date header is off in this process, see main()).
        if not any(k.lower() == b"date" for k, _ in relayed):
            relayed.append((b"date", _http_date()))
        await send({"type": "http.response.start", "status": answer.status, "headers": relayed})
        await send({"type": "http.response.body", "body": b"".join(answer.body)})
        return answer.status

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        if not secrets.compare_digest(headers.get(b"x-router-token", b""), self.token.encode()):
            await _answer(send, 401, {"error": "missing or wrong X-Router-Token"})
            return
        body = await _read_body(receive) or b"{}"
        route = (scope["method"], scope["path"])
        if route == ("GET", "/router/health"):
            await _answer(send, 200, {"backend": self.backend, "pid": os.getpid()})
        elif route == ("GET", "/router/stats"):
            stats = {url: c.as_dict(url) for url, c in self.stats.items()}
            await _answer(send, 200, {"backend": self.backend, "backends": stats})
        elif route == ("GET", "/router/history"):
            await _answer(send, 200, {"backend": self.backend, **self.history.as_dict()})
        elif route == ("POST", "/router/switch"):
            try:
                data = json.loads(body)
                new = data["backend"]
                drain = float(data.get("drain_seconds", 30.0))
            except (ValueError, KeyError, TypeError):
                await _answer(send, 400, {"error": "expected {backend, drain_seconds}"})
                return
            await _answer(send, 200, await self.switch(new, drain))
        else:
            await _answer(send, 404, {"error": f"no admin route {route[0]} {route[1]}"})

    async def switch(self, new: str | None, drain_seconds: float) -> dict[str, Any]:
        previous = self.backend
        if new is not None and new != previous:
            self.stats[new] = Counters()  # a port reused by a later backend starts afresh
            self.history.restart(new)
        self.backend = new  # from here on, every request that starts goes to `new`
        for url in [u for u in self.stats if u not in (new, previous)]:
            del self.stats[url]
        in_flight = 0
        if previous is not None and previous != new:
            old = self.stats.get(previous)
            deadline = time.monotonic() + drain_seconds
            while old is not None and old.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            in_flight = old.in_flight if old is not None else 0
            client = self.clients.pop(previous, None)
            if client is not None and not in_flight:
                await client.close()
        return {"previous": previous, "backend": new, "in_flight_previous": in_flight}


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _http_date() -> bytes:
    return email.utils.formatdate(usegmt=True).encode()


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    """The router's own answer (502, 503, 504, the admin routes): its Date and Server."""
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"date", _http_date()),
                (b"server", b"modelcycle-router"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by accepted connections on Linux: no delayed-ACK stall on keep-alive answers.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def _ignore(signum: int, frame: Any) -> None:
    """Stands in for the default handlers while uvicorn runs (it installs its own)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the router of the endpoint whose router folder is given (reads its router.json)."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=main.__doc__)
    parser.add_argument("folder", help="DEPLOYMENTS/ENDPOINT/router")
    args = parser.parse_args(argv)
    config = json.loads((Path(args.folder) / "router.json").read_text(encoding="utf-8"))
    sockets: list[socket.socket] = []
    for port in (int(config["port"]), int(config["admin_port"])):
        try:
            sockets.append(_listen(port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            print(f"error: cannot listen on {HOST}:{port} ({exc.strerror})", file=sys.stderr)
            return 1

    import uvicorn
    import uvloop

    app = _Router(
        token=str(config["token"]),
        admin_port=int(config["admin_port"]),
        backend=config.get("backend"),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http="httptools",
            loop="none",
            lifespan="on",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=30,
            # Every answer's Date and Server are set by _forward and _answer: uvicorn's own
            # would be a second copy of the backend's.
            server_header=False,
            date_header=False,
        )
    )
    print(
        f"Router of endpoint {config.get('endpoint')} on http://{HOST}:{config['port']} "
        f"-> {config.get('backend') or '(no backend yet)'}",
        flush=True,
    )
    # uvicorn re-raises the signal that stopped it; with these in place that is a no-op and a
    # SIGTERM stop exits 0.
    previous = {s: signal.signal(s, _ignore) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve(sockets=sockets))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for sock in sockets:
            sock.close()
    return 0


# -- the deploying process's handle on a router ---------------------------------------------


class EndpointRouter:
    """The router of one endpoint, seen from the deploying process. Constructing it does no
    I/O; :meth:`ensure` starts the router (or finds it running), :meth:`switch` moves it."""

    def __init__(self, folder: Path, *, endpoint: str) -> None:
        self.folder = Path(folder)
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"EndpointRouter({self.endpoint!r}, port={self.port})"

    def config(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(
                (self.folder / "router.json").read_text(encoding="utf-8")
            )
        except (FileNotFoundError, ValueError):
            return None
        return data

    @property
    def port(self) -> int | None:
        """The endpoint's stable port (kept after a stop, for the next deployment)."""
        config = self.config()
        return int(config["port"]) if config else None

    @property
    def url(self) -> str | None:
        port = self.port
        return f"http://{HOST}:{port}" if port is not None else None

    def pid(self) -> int | None:
        try:
            return int((self.folder / "server.pid").read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        return pid is not None and alive(pid, str(self.folder))

    def ensure(self, *, port: int | None, backend: str | None, timeout: float = 20.0) -> str:
        """The router's URL: the running router's, else a new router's on ``port`` (default:
        the endpoint's port from before, else a free one) forwarding to ``backend``."""
        known = self.port
        if self.is_running() and known is not None:
            if port is not None and port != known:
                raise Conflict(
                    f"endpoint {self.endpoint!r} answers on port {known}; its port stays fixed "
                    f"while it serves (stop it first to move it to {port})"
                )
            try:
                self.health()
                return f"http://{HOST}:{known}"
            except NotReady:
                self.stop()  # alive but deaf: replace it
        chosen = port if port is not None else known
        if chosen is not None and not port_free(HOST, chosen):
            raise Conflict(
                f"port {chosen} on {HOST}, the front port of endpoint {self.endpoint!r}, is "
                "in use by another program; free it or give another with --port"
            )
        return self._start(chosen if chosen is not None else free_port(HOST), backend, timeout)

    def _start(self, port: int, backend: str | None, timeout: float) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "endpoint": self.endpoint,
            "port": port,
            "admin_port": free_port(HOST),
            "token": secrets.token_urlsafe(24),
            "backend": backend,
        }
        tmp = self.folder / ".router.json.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # The token guards the admin port: only the workspace's owner may read it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, sort_keys=True)
        os.replace(tmp, self.folder / "router.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
        log_path = self.folder / "router.log"
        proc = spawn(
            [sys.executable, "-m", _MODULE, str(self.folder)],
            cwd=self.folder,
            log_path=log_path,
            env=env,
        )
        (self.folder / "server.pid").write_text(f"{proc.pid}\n", encoding="utf-8")
        deadline = time.monotonic() + timeout
        while True:
            if not alive(proc.pid, None):
                lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                errors = [line for line in lines if line.startswith("error:")]
                why = errors[-1][len("error:") :].strip() if errors else "it exited"
                raise Conflict(f"the router of endpoint {self.endpoint!r} did not start: {why}")
            try:
                self.health()
                return f"http://{HOST}:{port}"
            except NotReady:
                if time.monotonic() > deadline:
                    self.stop()
                    raise NotReady(
                        f"the router of endpoint {self.endpoint!r} did not answer within "
                        f"{timeout:g} s; see {log_path}"
                    ) from None
                time.sleep(0.05)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        config = self.config()
        if config is None:
            raise NotReady(f"endpoint {self.endpoint!r} has no router")
        request = urllib.request.Request(
            f"http://{HOST}:{config['admin_port']}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-Router-Token": str(config["token"]), "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
                data: dict[str, Any] = json.loads(resp.read())
                return data
        except urllib.error.HTTPError as exc:
            raise NotReady(
                f"the router of endpoint {self.endpoint!r} refused {method} {path} "
                f"({exc.code}: {exc.read()[:200].decode('utf-8', 'replace')})"
            ) from None
        except (OSError, ValueError) as exc:
            raise NotReady(
                f"the router of endpoint {self.endpoint!r} does not answer ({exc})"
            ) from None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/router/health", timeout=2.0)

    def switch(self, backend: str | None, *, drain_seconds: float = 30.0) -> dict[str, Any]:
        """Send new requests to ``backend``; returns once none still runs on the old one (or
        ``drain_seconds`` passed: ``in_flight_previous`` says how many still do)."""
        return self._call(
            "POST",
            "/router/switch",
            {"backend": backend, "drain_seconds": drain_seconds},
            timeout=drain_seconds + 10.0,
        )

    def stats(self, backend: str) -> BackendStats | None:
        """What the router saw of ``backend`` since it became the backend."""
        data = self._call("GET", "/router/stats")["backends"].get(backend)
        return BackendStats.from_dict(data) if data is not None else None

    def history(self) -> dict[str, Any]:
        """Per backend (URL) the router served lately, one row per minute with requests:
        ``[minute start (unix s), requests, errors, p50 ms, p99 ms]``, oldest first."""
        return self._call("GET", "/router/history", timeout=2.0)

    def stop(self, *, timeout: float = 10.0) -> bool:
        """Stop the router (in-flight requests finish first); False if it was not running."""
        pid = self.pid()
        running = pid is not None and terminate(pid, str(self.folder), timeout=timeout)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / "server.pid").unlink()
        return running


if __name__ == "__main__":
    sys.exit(main())
