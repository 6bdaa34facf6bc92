"""``--workers 2``: two processes on one port, keep-alive answers without the 40 ms Nagle stall."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _scoring_helpers import Models, ServerProcess, metric

from modelcycle.scoring._metrics import MetricStore
from modelcycle.scoring.runner import bind_socket


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        cmdline = (status.parent / "cmdline").read_bytes()
        # multiprocessing's resource tracker is a child too; the workers run spawn_main.
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            out.append(int(status.parent.name))
    return out


def test_two_workers_keep_alive_latency_summed_metrics_and_clean_stop(
    models: Models, tmp_path: Path
) -> None:
    run = models.root / ".modelcycle" / "run"
    # What a killed server leaves: its metrics directory, with counts that must not be added.
    stale = run / "metrics-999999999"
    stale.mkdir(parents=True, exist_ok=True)
    store = MetricStore(stale)
    store.counter("modelcycle_requests", (("protocol", "plain"), ("code", "200"))).inc(1000)
    store.close()
    server = ServerProcess(models.root, "ridge/1", "--workers", "2", log=tmp_path / "log")
    try:
        server.wait_ready()
        deadline = time.monotonic() + 30
        while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(server.proc.pid)
        assert len(workers) >= 2, server.log()
        # Each worker loads on its own; wait until fresh connections (spread over both by
        # SO_REUSEPORT) find every one ready.
        streak, deadline = 0, time.monotonic() + 60
        while streak < 12 and time.monotonic() < deadline:
            ok = httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
            streak = streak + 1 if ok else 0
        assert streak >= 12, server.log()
        body = {"rows": [{"a": 1.0, "b": 2.0, "c": 3.0}]}
        timings = []
        for _ in range(4):  # several connections, so both workers answer some
            with httpx.Client(base_url=server.url, timeout=10) as client:
                client.post("/predict", json=body)
                for _ in range(10):
                    started = time.perf_counter()
                    resp = client.post("/predict", json=body)
                    timings.append(time.perf_counter() - started)
                    assert resp.status_code == 200, resp.text
        # Without TCP_NODELAY every keep-alive answer waits ~40 ms for a delayed ACK.
        assert statistics.median(timings) < 0.025, timings
        _check_summed_metrics(server, run / f"metrics-{server.proc.pid}", workers, 44)
        assert not stale.exists()
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert not (run / f"metrics-{server.proc.pid}").exists()  # removed at a clean stop
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _check_summed_metrics(
    server: ServerProcess, directory: Path, workers: list[int], n: int
) -> None:
    """Every scrape shows the whole server's ``n`` answers, whichever worker answers it."""
    # Each worker wrote its own counts (the requests above went over several connections).
    writers = {int(f.stem.split("_")[-1]) for f in directory.glob("counter_*.db")}
    assert writers == set(workers), (writers, workers)
    for _ in range(8):  # fresh connections: SO_REUSEPORT spreads them over the workers
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert metric(text, "modelcycle_requests_total", protocol="plain", code="200") == n
        labels = {"model": "ridge", "version": "1"}
        assert metric(text, "modelcycle_model_requests_total", **labels) == n
        assert metric(text, "modelcycle_scored_rows_total", **labels) == n
        assert metric(text, "modelcycle_request_duration_seconds_count") == n
        calls = metric(text, "modelcycle_predict_calls_total", **labels)
        assert metric(text, "modelcycle_batch_size_count", **labels) == calls >= 1


def test_serves_when_the_metrics_directory_cannot_be_made(models: Models, tmp_path: Path) -> None:
    run = models.root / ".modelcycle" / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.write_text("a file where the folder would go\n")
    server = ServerProcess(models.root, "ridge/1", log=tmp_path / "log")
    try:
        server.wait_ready()
        body = {"rows": [{"a": 1.0, "b": 2.0, "c": 3.0}]}
        assert httpx.post(f"{server.url}/predict", json=body, timeout=10).status_code == 200
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert metric(text, "modelcycle_requests_total", protocol="plain", code="200") == 1
        assert "no shared metrics directory" in server.log()
    finally:
        server.stop()
        run.unlink()


def test_unknown_ref_fails_before_serving(models: Models) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "modelcycle", "serve", "nope/1", "--port", "0"],
        cwd=models.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "nope" in proc.stderr


def test_accepted_connections_inherit_tcp_nodelay() -> None:
    """The listening socket's TCP_NODELAY reaches accepted connections whatever the loop does."""
    listener = bind_socket("127.0.0.1", 0, reuse_port=True)
    try:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = listener.accept()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()
