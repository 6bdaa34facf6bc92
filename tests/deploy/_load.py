"""Client threads that call an endpoint continuously and keep every answer (and failure)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass

BODY = json.dumps(
    {
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [2], "data": [30, 70]},
            {"name": "income", "datatype": "FP64", "shape": [2], "data": [40.0, 60.0]},
        ]
    }
).encode()


@dataclass(frozen=True)
class Answer:
    started: float
    thread: int
    status: int | None
    version: str | None
    error: str | None = None


class Load:
    """``threads`` clients sending v2 infer requests to ``url`` until stopped (or ``max_each``
    requests each): half reuse one keep-alive connection, half open a new one per request."""

    def __init__(
        self,
        url: str,
        *,
        threads: int = 4,
        model: str = "credit",
        body: bytes = BODY,
        max_each: int = 20_000,
        pause: float = 0.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", int(parts.port or 80)
        assert self.host == "127.0.0.1"
        self.path = f"/v2/models/{model}/infer"
        self.body = body
        self.max_each = max_each
        self.pause = pause
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for t in self._threads:
            t.join(30)
            assert not t.is_alive(), "a load thread did not finish"
        return self.answers

    def count(self, version: str | None = None) -> int:
        with self._lock:
            return sum(1 for a in self.answers if version is None or a.version == version)

    def wait_for(self, n: int, *, version: str | None = None, timeout: float = 60.0) -> None:
        """Until ``n`` more answers (of ``version``) arrived."""
        goal = self.count(version) + n
        deadline = time.monotonic() + timeout
        while self.count(version) < goal:
            assert time.monotonic() < deadline, f"no {n} answers within {timeout} s"
            time.sleep(0.02)

    @property
    def failures(self) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.error is not None or a.status != 200]

    def _run(self, index: int) -> None:
        keep_alive = index % 2 == 0
        conn: http.client.HTTPConnection | None = None
        for _ in range(self.max_each):
            if self._stop.is_set():
                break
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                conn.request(
                    "POST", self.path, body=self.body, headers={"Content-Type": "application/json"}
                )
                resp = conn.getresponse()
                resp.read()
                answer = Answer(started, index, resp.status, resp.getheader("X-Model-Version"))
                if not keep_alive or resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                answer = Answer(started, index, None, None, f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                self.answers.append(answer)
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()
