"""Batch scoring: rows/s and peak RSS of the local engine at 1M and 5M rows, against a floor.

The floor is measured in the same run: one process reading the same Parquet in the same
chunks and calling the same model's bare ``predict`` on each (no signature check, no output).
Each measurement runs in a fresh process, so its peak RSS is its own; the engine's figure is
the coordinating process and, separately, the largest worker process.

    .venv/bin/python bench/bench_batch.py [--rows 1000000,5000000] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = 20

_FLOOR = """
import json, resource, sys, time
import pyarrow.parquet as pq
from modelcycle import Workspace
ws = Workspace(sys.argv[1])
model = ws.registry.load("bench/1").model
t0 = time.perf_counter()
rows = 0
fh = pq.ParquetFile(sys.argv[2])
size = int(sys.argv[3])
groups = range(fh.num_row_groups)
for batch in (b for g in groups for b in fh.iter_batches(batch_size=size, row_groups=[g])):
    rows += len(model.predict(batch.to_pandas()))
secs = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"rows": rows, "secs": secs, "peak": peak}))
"""

_ENGINE = """
import json, resource, sys, time
from modelcycle import Workspace
ws = Workspace(sys.argv[1])
t0 = time.perf_counter()
job = ws.batch.score("bench/1", sys.argv[2], sys.argv[4], chunk_rows=int(sys.argv[3]),
                     workers=int(sys.argv[5]))
secs = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rows": job.rows_out, "secs": secs, "peak": peak, "worker_peak": workers}))
"""


def _setup(root: Path, sizes: list[int]) -> dict[int, Path]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.ensemble import HistGradientBoostingClassifier

    from modelcycle import init_workspace

    ws, _ = init_workspace(root / "ws")
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        rng.normal(size=(20_000, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)]
    )
    y = (x.f0 + x.f1 * x.f2 + rng.normal(0, 0.5, len(x)) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    ws.registry.register(model, "bench", input_example=x.head(20))
    ws.close()
    paths = {}
    for n in sizes:
        path = root / f"in-{n}.parquet"
        with pq.ParquetWriter(
            path, pa.schema([(f"f{i}", pa.float64()) for i in range(FEATURES)])
        ) as w:
            for start in range(0, n, 500_000):
                m = min(500_000, n - start)
                cols = rng.normal(size=(m, FEATURES))
                w.write_table(pa.table({f"f{i}": cols[:, i] for i in range(FEATURES)}))
        paths[n] = path
    return paths


def _run(code: str, *args: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="1000000,5000000")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    mb = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        paths = _setup(root, sizes)
        ws = str(root / "ws")
        print(f"HistGradientBoosting (100 trees), {FEATURES} features, chunks of {args.chunk_rows}")
        print(
            f"{'rows':>9} {'what':<22} {'rows/s':>10} {'ratio':>6} "
            f"{'peak RSS MB':>12} {'worker MB':>10}"
        )
        for n, path in paths.items():
            floor = _run(_FLOOR, ws, str(path), str(args.chunk_rows))
            started = time.perf_counter()
            eng = _run(
                _ENGINE,
                ws,
                str(path),
                str(args.chunk_rows),
                str(root / f"out-{n}"),
                str(args.workers),
            )
            del started
            f_rate = floor["rows"] / floor["secs"]
            e_rate = eng["rows"] / eng["secs"]
            print(
                f"{n:>9} {'floor (bare predict)':<22} {f_rate:>10,.0f} {1.0:>6.2f} "
                f"{floor['peak'] / mb:>12.0f} {'-':>10}"
            )
            print(
                f"{n:>9} {f'local engine x{args.workers}':<22} {e_rate:>10,.0f} "
                f"{e_rate / f_rate:>6.2f} {eng['peak'] / mb:>12.0f} "
                f"{eng['worker_peak'] / mb:>10.0f}"
            )


if __name__ == "__main__":
    main()
