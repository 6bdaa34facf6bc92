"""Real-time scoring benchmark, the reference harness's way: same model, same floors, wrk.

    .venv/bin/python bench/bench_serve.py [--workers 1] [--rounds 3] [--seconds 15] [--no-log]

Builds the reference fixture (``Pipeline(StandardScaler, HistGradientBoostingClassifier(
max_iter=100))`` on 50,000 rows of ``make_classification(n_features=20, n_informative=10,
n_redundant=4, flip_y=0.02, class_sep=0.8, random_state=42)``, columns ``f0..f19``) and one
row in MLflow's ``dataframe_split`` form, registers the model in a throw-away workspace and
starts, one at a time, on 127.0.0.1:

* ``floor``: the harness's floor server (bare Starlette on stock ``uvicorn --workers N``,
  ``json`` row -> ``np.asarray`` -> ``model.predict``), library defaults;
* ``floor_tuned``: the same with ``OMP_NUM_THREADS=1`` and TCP_NODELAY restored for N > 1;
* ``modelcycle``: ``python -m modelcycle serve bench-clf/1 --workers N``.

Then ``--rounds`` rounds, target order rotating: ``wrk -t1 -c{1,16} --latency`` POSTing the
row to ``/invocations`` (3 s warm-up discarded, ``--seconds`` measured). Prints the medians
and the median per-round ratio to the floor (``floor`` for 1 worker, ``floor_tuned`` for
more, as ``../shared/bench/measure.sh`` does), then modelcycle's batch-size histogram from
``/metrics``. Needs ``wrk`` on PATH. The machine is shared: quote ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from statistics import median
from typing import Any

FLOOR_SERVER = textwrap.dedent(
    """
    import json, os, warnings
    import joblib, numpy as np
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    model = joblib.load(os.environ["BENCH_MODEL"])

    async def invocations(request):
        body = json.loads(await request.body())
        X = np.asarray(body["dataframe_split"]["data"], dtype=np.float64)
        pred = model.predict(X)
        return Response(json.dumps({"predictions": pred.tolist()}),
                        media_type="application/json")

    app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"])])
    """
)

# uvicorn --workers N binds with proto 0 and its workers lose TCP_NODELAY (uvicorn #3149).
RUN_TUNED = textwrap.dedent(
    """
    import socket, sys
    import uvicorn
    from uvicorn.config import Config
    _orig = Config.bind_socket
    def _bind(self):
        s = _orig(self)
        if s.family in (socket.AF_INET, socket.AF_INET6) and s.proto == 0:
            s = socket.socket(s.family, s.type, socket.IPPROTO_TCP, fileno=s.detach())
            s.set_inheritable(True)
        return s
    Config.bind_socket = _bind
    uvicorn.run("floor_server:app", host="127.0.0.1", port=int(sys.argv[1]),
                workers=int(sys.argv[2]), log_level="warning", access_log=False)
    """
)

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
"""


def build(folder: Path) -> Path:
    """The reference fixture: the model (joblib for the floors, registered for modelcycle)."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from modelcycle import init_workspace

    x, y = make_classification(
        n_samples=50_000, n_features=20, n_informative=10, n_redundant=4, n_classes=2,
        flip_y=0.02, class_sep=0.8, random_state=42,
    )  # fmt: skip
    frame = pd.DataFrame(x.astype(np.float64), columns=[f"f{i}" for i in range(20)])
    model = Pipeline(
        [("scale", StandardScaler()), ("clf", HistGradientBoostingClassifier(max_iter=100))]
    ).fit(frame, y.astype(np.int64))
    joblib.dump(model, folder / "model.joblib")
    (folder / "floor_server.py").write_text(FLOOR_SERVER)
    (folder / "post.lua").write_text(LUA)
    row = {"dataframe_split": {"columns": list(frame.columns), "data": [x[0].tolist()]}}
    (folder / "row.json").write_text(json.dumps(row))
    os.environ["MODELCYCLE_ACTOR"] = "bench"
    ws, _ = init_workspace(folder / "ws", db_url=f"sqlite:///{folder / 'meta.db'}")
    with ws:
        ws.registry.register(model, "bench-clf", input_example=frame.head(100))
    return folder / "ws"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(port: int, body: bytes, proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 180:
        if proc.poll() is not None:
            raise SystemExit(f"a server exited during start-up ({proc.args})")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server on port {port} not ready after 180 s")


def wrk(port: int, concurrency: int, seconds: int, folder: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(folder / "post.lua"), f"http://127.0.0.1:{port}/invocations"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
        env={**os.environ, "WRK_BODY": str(folder / "row.json")},
    ).stdout  # fmt: skip
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(p: str) -> float:
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert m is not None, out
        return float(m.group(1)) * unit[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps is not None, out
    return {
        "rps": float(rps.group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def histogram(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return "\n".join(line for line in text.splitlines() if line.startswith("modelcycle_batch_size"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--no-log", action="store_true", help="serve with --no-log")
    args = parser.parse_args()
    ref = "floor" if args.workers == 1 else "floor_tuned"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = build(folder)
        body = (folder / "row.json").read_bytes()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
        mc = [sys.executable, "-m", "modelcycle", "serve", "bench-clf/1", "--workers"]
        mc += [str(args.workers)] + (["--no-log"] if args.no_log else [])
        uv = [sys.executable, "-m", "uvicorn", "floor_server:app", "--workers"]
        uv += [str(args.workers), "--log-level", "warning", "--no-access-log"]
        targets: dict[str, tuple[list[str], dict[str, str], Path]] = {
            "floor": (uv, {"BENCH_MODEL": str(folder / "model.joblib")}, folder),
            "floor_tuned": (
                [sys.executable, "-c", RUN_TUNED],
                {"BENCH_MODEL": str(folder / "model.joblib"), "OMP_NUM_THREADS": "1"},
                folder,
            ),
            "modelcycle": (mc, {"MODELCYCLE_ACTOR": "bench"}, root),
        }
        procs: dict[str, subprocess.Popen[bytes]] = {}
        ports: dict[str, int] = {}
        try:
            for name, (cmd, env, cwd) in targets.items():
                ports[name] = port = free_port()
                argv = [*cmd, "--port", str(port)] if name != "floor_tuned" else [*cmd, str(port)]
                if name == "floor_tuned":
                    argv.append(str(args.workers))
                procs[name] = subprocess.Popen(
                    argv, cwd=cwd, env={**base_env, **env}, start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                print(f"{name}: ready in {wait_ready(port, body, procs[name]):.1f} s", flush=True)
            names = list(targets)
            runs: dict[tuple[str, int], list[dict[str, float]]] = {}
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for c in (1, 16):
                    for name in order:
                        wrk(ports[name], c, 3, folder)  # warm-up, discarded
                        runs.setdefault((name, c), []).append(
                            wrk(ports[name], c, args.seconds, folder)
                        )
            report(runs, names, ref, args)
            print(f"\nmodelcycle batch sizes (rows per predict call, whole run):\n"
                  f"{histogram(ports['modelcycle'])}")  # fmt: skip
        finally:
            for proc in procs.values():
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs.values():
                proc.wait(30)


def report(runs: dict[tuple[str, int], list[dict[str, float]]], names: list[str], ref: str,
           args: Any) -> None:  # fmt: skip
    print(
        f"\nPOST /invocations, one row, {args.workers} worker(s), {args.rounds} rounds x "
        f"{args.seconds} s, wrk -t1; medians; ratio = median of per-round target/{ref}"
    )
    for c in (1, 16):
        for name in names:
            rs, fl = runs[(name, c)], runs[(ref, c)]

            def ratio(key: str, rs: list[dict[str, float]] = rs, fl: Any = fl) -> float:
                # A round where the reference answered nothing (an OpenMP stall of the stock
                # floor on a busy machine) has no ratio; the harness drops it the same way.
                pairs = [a[key] / b[key] for a, b in zip(rs, fl, strict=True) if b[key]]
                return median(pairs) if pairs else float("nan")

            print(
                f"c={c:<3} {name:<12} {median(x['rps'] for x in rs):>8.0f} req/s "
                f"({ratio('rps'):.2f}x)  p50 {median(x['p50'] for x in rs):.3f} ms "
                f"({ratio('p50'):.2f}x)  p99 {median(x['p99'] for x in rs):.3f} ms "
                f"({ratio('p99'):.2f}x)  non-2xx {int(sum(x['errors'] for x in rs))}"
            )


if __name__ == "__main__":
    main()
