"""Endpoint router overhead: the same requests to a deployed version's own server (the floor)
and through the endpoint's router, side by side.

    .venv/bin/python bench/bench_router.py [--requests 2000] [--rounds 5]

Registers a small credit model in a throw-away workspace, deploys it to a local endpoint
(router + server on 127.0.0.1) and sends single-row v2 ``infer`` requests over one keep-alive
connection, concurrency 1, alternating rounds direct / through the router. Prints p50 and p99
of each and the p50 the router adds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BODY = json.dumps(
    {
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [1], "data": [30]},
            {"name": "income", "datatype": "FP64", "shape": [1], "data": [40.0]},
        ]
    }
).encode()


def run(url: str, n: int) -> list[float]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    out: list[float] = []
    headers = {"Content-Type": "application/json"}
    for _ in range(n):
        started = time.perf_counter()
        conn.request("POST", "/v2/models/credit/infer", body=BODY, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - started) * 1000.0)
        assert resp.status == 200, resp.status
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelcycle import init_workspace

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"age": rng.integers(18, 80, 200), "income": rng.normal(50.0, 10.0, 200)})
    y = ((x["age"] > 45) ^ (x["income"] > 52.0)).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = init_workspace(Path(tmp) / "ws")
        ws.registry.register(LogisticRegression().fit(x, y), "credit", input_example=x.head(5))
        dep = ws.deploy("credit/1", endpoint="bench")
        try:
            direct_url, router_url = dep.backend_url or "", dep.url or ""
            run(direct_url, 200)  # warm both paths
            run(router_url, 200)
            direct: list[float] = []
            routed: list[float] = []
            for _ in range(args.rounds):
                direct += run(direct_url, args.requests)
                routed += run(router_url, args.requests)
        finally:
            ws.deploy.stop("bench")
            ws.close()

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1]

    d50, r50 = statistics.median(direct), statistics.median(routed)
    print(f"requests per path: {len(direct)} (concurrency 1, keep-alive, single-row v2 infer)")
    print(f"direct to the server : p50 {d50:.3f} ms  p99 {p(direct, 99):.3f} ms")
    print(f"through the router   : p50 {r50:.3f} ms  p99 {p(routed, 99):.3f} ms")
    print(f"router adds          : p50 {r50 - d50:+.3f} ms (ratio {r50 / d50:.2f}x)")


if __name__ == "__main__":
    main()
