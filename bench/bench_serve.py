"""Real-time scoring benchmark: ``modelcycle serve`` against a bare floor, side by side.

    [MLFLOW_PYTHON=...] .venv/bin/python bench/bench_serve.py [--seconds 5] [--workers 1]

Registers a HistGradientBoosting credit model in a throw-away workspace, starts our server
(``python -m modelcycle serve credit/1``) and the floor (a bare Starlette app on uvicorn with
the same workers, native threads limited to one, TCP_NODELAY set, calling ``model.predict`` on
the parsed row) on 127.0.0.1, and drives each from a separate load-generator process:
single-row ``POST /predict`` requests over keep-alive connections, concurrency 1 and 16, each
run bounded in time. Prints requests/s and p50/p99 latency with the ratio to the floor.

With ``MLFLOW_PYTHON=/path/to/python`` (an environment of its own with mlflow, and the same
scikit-learn and skops; not a dependency of modelcycle), MLflow's scoring server (``mlflow
models serve --env-manager local``, same workers) runs on the same model too, driven with
``POST /invocations`` ``{"dataframe_records": [row]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

FLOOR_APP = textwrap.dedent(
    """
    import socket, sys, asyncio
    import orjson, pandas as pd, skops.io as sio, uvicorn, uvloop
    from threadpoolctl import threadpool_limits
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    path, port = sys.argv[1], int(sys.argv[2])
    data = open(path, "rb").read()
    model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    threadpool_limits(1)

    async def predict(request):
        body = orjson.loads(await request.body())
        frame = pd.DataFrame(body["rows"])
        return Response(orjson.dumps({"predictions": model.predict(frame).tolist()}),
                        media_type="application/json")

    async def ready(request):
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                            Route("/v2/health/ready", ready)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    config = uvicorn.Config(app, loop="none", http="httptools", access_log=False,
                            log_level="warning")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve(sockets=[sock]))
    """
)

LOAD_GENERATOR = textwrap.dedent(
    """
    import asyncio, json, sys, time
    port, concurrency = int(sys.argv[1]), int(sys.argv[2])
    seconds, body, path = float(sys.argv[3]), sys.argv[4], sys.argv[5]
    payload = body.encode()
    request = (
        f"POST {path} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Type: application/json\\r\\n"
        f"Content-Length: {len(payload)}\\r\\n\\r\\n"
    ).encode() + payload

    async def client(deadline, latencies, errors):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\\r\\n")[0].decode())
        writer.close()

    async def main():
        latencies, errors = [], []
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(client(deadline, latencies, errors) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        print(json.dumps({"rps": len(latencies) / elapsed, "p50": pick(0.5), "p99": pick(0.99),
                          "n": len(latencies), "errors": len(errors)}))

    asyncio.run(main())
    """
)


# Run by MLFLOW_PYTHON: the same model, saved in MLflow's sklearn flavor.
MLFLOW_SAVE = textwrap.dedent(
    """
    import sys
    import mlflow.sklearn, skops.io as sio
    data = open(sys.argv[1], "rb").read()
    model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    mlflow.sklearn.save_model(model, sys.argv[2], serialization_format="cloudpickle")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build_workspace(folder: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A workspace with credit/1 registered; the model file for the floor; one JSON row."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from modelcycle import init_workspace
    from modelcycle.datasets import make_credit

    os.environ.setdefault("MODELCYCLE_ACTOR", "bench")
    table = make_credit(3000, seed=0)
    frame = table.drop(["default"]).to_pandas()
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
    )
    pre = ColumnTransformer(
        [("cat", encoder, ["employment", "home_ownership", "purpose"])], remainder="passthrough"
    )
    model = make_pipeline(pre, HistGradientBoostingClassifier(max_iter=100, random_state=0))
    model.fit(frame, table.column("default").to_numpy())
    ws, _ = init_workspace(folder / "ws", db_url=f"sqlite:///{folder / 'meta.db'}")
    with ws:
        ws.registry.register(model, "credit", input_example=frame.head(50))
    import skops.io as sio

    model_file = folder / "model.skops"
    model_file.write_bytes(sio.dumps(model))
    row = table.drop(["default"]).slice(5, 1).to_pylist()[0]
    return ws.root, model_file, row


def wait_ready(
    port: int,
    procs: list[subprocess.Popen[bytes]],
    timeout: float = 90,
    path: str = "/v2/health/ready",
) -> None:
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline and streak < 10:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a server exited during start-up")
        try:
            ok = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).is_success
        except httpx.TransportError:
            ok = False
        streak = streak + 1 if ok else 0
        time.sleep(0.05 if ok else 0.2)
    if streak < 10:
        raise SystemExit(f"server on port {port} not ready after {timeout} s")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def drive(
    port: int, concurrency: int, seconds: float, body: str, path: str = "/predict"
) -> dict[str, float]:
    argv = [str(port), str(concurrency), str(seconds), body, path]
    out = subprocess.run(
        [sys.executable, "-c", LOAD_GENERATOR, *argv],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env["MODELCYCLE_ACTOR"] = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        root, model_file, row = build_workspace(Path(tmp))
        body = json.dumps({"rows": [row]})
        results: dict[tuple[str, int], dict[str, float]] = {}
        labels = ["floor", "modelcycle"]
        mlflow_python = os.environ.get("MLFLOW_PYTHON")
        if mlflow_python:
            labels.append("mlflow")
            mlflow_model = Path(tmp) / "mlflow-model"
            subprocess.run(
                [mlflow_python, "-c", MLFLOW_SAVE, str(model_file), str(mlflow_model)],
                check=True,
                timeout=300,
            )
        for label in labels:
            port = free_port()
            path, ready, request = "/predict", "/v2/health/ready", body
            if label == "floor":
                procs = [
                    subprocess.Popen(
                        [sys.executable, "-c", FLOOR_APP, str(model_file), str(port)], env=env
                    )
                    for _ in range(args.workers)
                ]
            elif label == "modelcycle":
                cmd = [sys.executable, "-m", "modelcycle", "serve", "credit/1"]
                cmd += ["--port", str(port), "--workers", str(args.workers)]
                procs = [subprocess.Popen(cmd, cwd=root, env=env, stderr=subprocess.DEVNULL)]
            else:
                # MLflow's own scoring server, as its users run it, from its own environment.
                cmd = [mlflow_python or "", "-m", "mlflow", "models", "serve", "-m"]
                cmd += [str(mlflow_model), "--env-manager", "local", "--host", "127.0.0.1"]
                cmd += ["--port", str(port), "--workers", str(args.workers)]
                # It starts `uvicorn` by name: its environment's bin folder goes first on PATH.
                bin_dir = str(Path(mlflow_python or "").parent)
                ml_env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
                procs = [
                    subprocess.Popen(
                        cmd, env=ml_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                ]
                path, ready = "/invocations", "/ping"
                request = json.dumps({"dataframe_records": [row]})
            try:
                wait_ready(port, procs, path=ready)
                drive(port, 4, 1.0, request, path)  # warm-up
                for concurrency in (1, 16):
                    results[(label, concurrency)] = drive(
                        port, concurrency, args.seconds, request, path
                    )
            finally:
                stop(procs)
    print(f"\nsingle-row POST /predict, {args.workers} worker(s), {args.seconds:g} s per run")
    print(
        f"{'concurrency':>11} | {'server':<10} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7}"
        f" | {'x floor req/s':>13} | {'x floor p50':>11} | {'x floor p99':>11} | errors"
    )
    for concurrency in (1, 16):
        floor = results[("floor", concurrency)]
        for label in labels:
            r = results[(label, concurrency)]
            print(
                f"{concurrency:>11} | {label:<10} | {r['rps']:>8.0f} | {r['p50'] * 1e3:>7.2f} | "
                f"{r['p99'] * 1e3:>7.2f} | {r['rps'] / floor['rps']:>13.2f} | "
                f"{r['p50'] / floor['p50']:>11.2f} | {r['p99'] / floor['p99']:>11.2f} | "
                f"{int(r['errors'])}"
            )


if __name__ == "__main__":
    main()
