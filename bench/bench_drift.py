"""Data drift speed and memory: modelcycle against a scipy floor measured in the same run.

Reference and current tables of N rows, 20 numerical + 5 categorical columns, a shift
injected into 3 columns. Each contender runs in its own process (so peak RSS is its own):

- floor: the default tests written plainly (pandas per column, scipy per column);
- modelcycle: ``compute_drift`` with the default policy;
- Evidently's DataDriftPreset, when ``evidently`` is importable (``EVIDENTLY_PYTHON=/path/to/
  python`` runs that contender with another interpreter, e.g. a venv holding Evidently).

Prints wall time of the drift computation, peak RSS of the process, the drifted columns, and
the ratios to the floor. Run: .venv/bin/python bench/bench_drift.py [ROWS ...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

SHIFTED = ("n0", "n1", "c0")


def make_tables(rows: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(42)

    def table(shift: bool) -> pa.Table:
        cols = {}
        for i in range(20):
            loc = 0.5 if shift and f"n{i}" in SHIFTED else 0.0
            cols[f"n{i}"] = rng.normal(loc, 1.0 + i / 10, rows)
        for i in range(5):
            p = [0.5, 0.3, 0.2] if not (shift and f"c{i}" in SHIFTED) else [0.3, 0.3, 0.4]
            cols[f"c{i}"] = rng.choice(["red", "green", "blue"], rows, p=p)
        return pa.table(cols)

    return table(False), table(True)


def run_floor(rows: int) -> list[str]:
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    ref_t, cur_t = make_tables(rows)
    t0 = time.perf_counter()
    ref, cur = ref_t.to_pandas(), cur_t.to_pandas()
    drifted = []
    for col in ref.columns:
        r, c = ref[col].dropna(), cur[col].dropna()
        if r.dtype.kind == "f":
            if len(r) > 1000:
                score = stats.wasserstein_distance(r, c) / max(np.std(r), 0.001)
                hit = score >= 0.1
            else:
                hit = stats.ks_2samp(r, c).pvalue <= 0.05
        else:
            keys = sorted(set(r) | set(c))
            rp = np.array([r.value_counts().get(k, 0) / len(r) for k in keys])
            cp = np.array([c.value_counts().get(k, 0) / len(c) for k in keys])
            hit = distance.jensenshannon(rp, cp) >= 0.1
        if hit:
            drifted.append(col)
    _report("floor (pandas + scipy per column)", time.perf_counter() - t0, drifted)
    return drifted


def run_modelcycle(rows: int) -> None:
    from modelcycle.monitoring import compute_drift

    ref, cur = make_tables(rows)
    t0 = time.perf_counter()
    report = compute_drift(ref, cur)
    drifted = [c.name for c in report.columns if c.drifted]
    _report("modelcycle compute_drift", time.perf_counter() - t0, drifted)


def run_evidently(rows: int) -> None:
    from evidently import Report  # type: ignore[import-not-found]
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

    ref, cur = make_tables(rows)
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(cur.to_pandas(), ref.to_pandas())
    seconds = time.perf_counter() - t0
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        p_value = "p_value" in config["method"]
        if (value < threshold) if p_value else (value >= threshold):
            drifted.append(config["column"])
    _report("evidently 0.7 DataDriftPreset", seconds, drifted)


def _report(name: str, seconds: float, drifted: list[str]) -> None:
    import resource

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"name": name, "seconds": seconds, "rss_mb": rss_mb, "drifted": drifted}))


def _child(kind: str, rows: int) -> dict[str, object] | None:
    env = dict(os.environ)
    # Evidently is not a dependency: point EVIDENTLY_PYTHON at an interpreter that has it.
    python = os.environ.get("EVIDENTLY_PYTHON", sys.executable) if kind == "evidently" else None
    proc = subprocess.run(
        [python or sys.executable, __file__, "--child", kind, str(rows)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if proc.returncode != 0:
        if kind == "evidently":
            return None
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        {"floor": run_floor, "modelcycle": run_modelcycle, "evidently": run_evidently}[sys.argv[2]](
            int(sys.argv[3])
        )
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    for rows in sizes:
        print(f"== {rows:,} vs {rows:,} rows, 25 columns, shift in {', '.join(SHIFTED)}")
        floor = _child("floor", rows)
        assert floor is not None
        results = [floor, _child("modelcycle", rows), _child("evidently", rows)]
        for res in results:
            if res is None:
                print(f"  {'evidently DataDriftPreset':<36} not installed in this environment")
                continue
            ratio_t = float(res["seconds"]) / float(floor["seconds"])  # type: ignore[arg-type]
            ratio_m = float(res["rss_mb"]) / float(floor["rss_mb"])  # type: ignore[arg-type]
            print(
                f"  {res['name']:<36} {float(res['seconds']):7.2f} s ({ratio_t:4.2f}x floor)  "  # type: ignore[arg-type]
                f"peak RSS {float(res['rss_mb']):7.0f} MB ({ratio_m:4.2f}x floor)  "  # type: ignore[arg-type]
                f"drifted: {','.join(res['drifted']) or '-'}"  # type: ignore[arg-type]
            )


if __name__ == "__main__":
    main()
