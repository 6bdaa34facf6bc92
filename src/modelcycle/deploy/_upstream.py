"""The router's HTTP/1.1 client to one backend: pooled keep-alive connections, httptools.

A general client (httpx) cost the router about 1 ms per request on these machines, as much
as the scoring server itself; the router needs only this: send one request with a known
body over a kept-alive connection, read the whole answer (the scoring servers answer with
bounded JSON bodies), and give the connection back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

__all__ = ["Answer", "NoConnection", "Upstream", "UpstreamError"]

_MAX_ANSWER = 256 * 1024 * 1024
_READ = 256 * 1024


class UpstreamError(Exception):
    """The backend broke the exchange after the request went out (or answered garbage)."""


class NoConnection(UpstreamError):
    """No connection to the backend could be made: nothing was sent."""


@dataclass
class Answer:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    size: int = 0
    done: bool = False
    keep_alive: bool = True
    head: bool = False  # an answer to HEAD has headers only, whatever its content-length says

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head:
            self.done = True

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > _MAX_ANSWER:
            raise UpstreamError(f"the backend's answer is over {_MAX_ANSWER} bytes")
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.done = True


class Upstream:
    """Keep-alive connections to ``host:port``; at most ``max_idle`` kept between requests."""

    def __init__(self, host: str, port: int, *, max_idle: int = 64) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._max_idle = max_idle

    async def request(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """Send one request; the whole answer. A kept-alive connection the backend closed
        while idle is replaced once (nothing of the request was processed on it)."""
        head = [f"{method} ".encode(), target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        data = b"".join(head) + body
        is_head = method == "HEAD"
        while self._idle:
            reader, writer = self._idle.pop()
            try:
                return await self._exchange(reader, writer, data, is_head)
            except _StaleConnection:
                continue
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise NoConnection(str(exc) or type(exc).__name__) from exc
        try:
            return await self._exchange(reader, writer, data, is_head)
        except _StaleConnection as exc:
            raise UpstreamError("the backend closed the connection without an answer") from exc

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        data: bytes,
        is_head: bool,
    ) -> Answer:
        import httptools  # here: the deploying command imports this module, never calls it

        answer = Answer(head=is_head)
        parser = httptools.HttpResponseParser(answer)
        received = False
        try:
            writer.write(data)
            while not answer.done:
                chunk = await reader.read(_READ)
                if not chunk:
                    if not received:
                        raise _StaleConnection
                    raise UpstreamError("the backend closed the connection mid-answer")
                received = True
                parser.feed_data(chunk)
            answer.status = parser.get_status_code()
            # After HEAD the parser still expects a body: the connection is not reused.
            answer.keep_alive = parser.should_keep_alive() and not is_head
        except (ConnectionError, httptools.HttpParserError) as exc:
            writer.close()
            if not received and isinstance(exc, ConnectionError):
                raise _StaleConnection from exc
            raise UpstreamError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            writer.close()
            raise
        if answer.keep_alive and len(self._idle) < self._max_idle:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return answer

    async def close(self) -> None:
        """Close the idle connections (busy ones close when their request ends)."""
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _StaleConnection(Exception):
    """The connection was closed before any answer byte: safe to send again elsewhere."""
