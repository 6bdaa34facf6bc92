"""Data drift: wall time and peak memory of `modelcycle monitor drift` against a floor.

Data, floor and timing are the reference harness's (``../shared/bench/drift_peer.sh``):
reference and current Parquet files of N rows, 20 numeric columns ``f0..f19`` (gaussians with
per-column mean and scale) and 5 categorical ``c0..c4`` (4 values, shares 0.4/0.3/0.2/0.1), a
shift injected into ``f0`` (mean +0.5 sd), ``f5`` (scale x1.5) and ``c2`` (even shares), row
groups of 100,000. The floor reads both files with pyarrow and runs scipy per column, both
method families in one process, as the harness's ``peers/drift_floor.py`` does: K-S /
chi-square, then Evidently's defaults above 1,000 rows (Wasserstein distance normed by the
reference's std >= 0.1, Jensen-Shannon distance on category shares >= 0.1). modelcycle runs as
a user runs it: ``modelcycle monitor drift --reference R --current C --json``. Every
measurement is a fresh process timed whole (interpreter, imports, reading included); rounds
rotate the order, and the figures are medians of per-round ratios to the floor.

    .venv/bin/python bench/bench_drift.py [--rows 100000 1000000] [--rounds 3]

Evidently (not a dependency) runs too when ``EVIDENTLY_PYTHON`` names an interpreter that has
it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHIFTED = ["c2", "f0", "f5"]

_FLOOR = """
import json, sys
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import stats
from scipy.spatial import distance

rt, ct = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
num = [c for c in rt.column_names if c.startswith("f")]
cat = [c for c in rt.column_names if c.startswith("c")]
R = {c: rt.column(c).to_numpy() for c in num}
C = {c: ct.column(c).to_numpy() for c in num}

def shares(col_r, col_c):
    vr = {d["values"]: d["counts"] for d in pc.value_counts(col_r).to_pylist()}
    vc = {d["values"]: d["counts"] for d in pc.value_counts(col_c).to_pylist()}
    keys = sorted((set(vr) | set(vc)) - {None})
    return (np.array([vr.get(k, 0) for k in keys], float),
            np.array([vc.get(k, 0) for k in keys], float))

flagged = []
for c in num:  # K-S / chi-square
    stats.ks_2samp(R[c], C[c]).pvalue
for c in cat:
    r, k = shares(rt.column(c), ct.column(c))
    stats.chisquare(k, r * (k.sum() / r.sum())).pvalue
for c in num:  # Evidently's defaults: what the drifted flags below come from
    if stats.wasserstein_distance(R[c], C[c]) / max(np.std(R[c]), 0.001) >= 0.1:
        flagged.append(c)
for c in cat:
    r, k = shares(rt.column(c), ct.column(c))
    if distance.jensenshannon(r / r.sum(), k / k.sum()) >= 0.1:
        flagged.append(c)
print(json.dumps({"flagged": sorted(flagged)}))
"""

_EVIDENTLY = """
import json, sys
import pyarrow.parquet as pq
from evidently import Report
from evidently.presets import DataDriftPreset

ref, cur = pq.read_table(sys.argv[1]).to_pandas(), pq.read_table(sys.argv[2]).to_pandas()
flagged = []
for metric in Report([DataDriftPreset()]).run(cur, ref).dict()["metrics"]:
    config = metric["config"]
    if config["type"].endswith("ValueDrift"):
        value, threshold = float(metric["value"]), float(config["threshold"])
        if (value < threshold) if "p_value" in config["method"] else (value >= threshold):
            flagged.append(config["column"])
print(json.dumps({"flagged": sorted(flagged)}))
"""


def write_tables(rows: int, folder: Path) -> tuple[Path, Path]:
    """The harness's drift files (make_fixture.py's drift_frame, seeds 43 and 44)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(seed: int, shifted: bool) -> pa.Table:
        rng = np.random.default_rng(seed)
        cols: dict[str, Any] = {}
        for i in range(20):
            name, mu, sd = f"f{i}", (i % 5) - 2.0, 1.0 + (i % 3) * 0.5
            x = rng.normal(mu, sd, rows)
            if shifted and name == "f0":
                x = x + 0.5 * sd
            if shifted and name == "f5":
                x = mu + (x - mu) * 1.5
            cols[name] = x
        for i in range(5):
            name = f"c{i}"
            values = np.array([f"{name}_v{k}" for k in range(4)])
            p = [0.25] * 4 if shifted and name == "c2" else [0.4, 0.3, 0.2, 0.1]
            cols[name] = values[rng.choice(4, size=rows, p=p)]
        return pa.table(cols)

    ref, cur = folder / f"ref-{rows}.parquet", folder / f"cur-{rows}.parquet"
    pq.write_table(table(43, False), ref, row_group_size=100_000)
    pq.write_table(table(44, True), cur, row_group_size=100_000)
    return ref, cur


def timed(cmd: list[str]) -> dict[str, Any]:
    """Wall time, CPU time (user + system: steadier than wall time on a shared machine) and
    peak RSS of one process run to its end, and the JSON it printed."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:3])}... failed:\n{err[-2000:]}")
        out.seek(0)
        printed = json.loads(out.read())
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": wall, "cpu_s": cpu, "rss_mb": usage.ru_maxrss / 1024, "json": printed}


def flagged_by_modelcycle(result: dict[str, Any]) -> list[str]:
    return sorted(c["name"] for c in result.get("columns", []) if c.get("drifted"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modelcycle = str(Path(sys.executable).with_name("modelcycle"))
    evidently = os.environ.get("EVIDENTLY_PYTHON")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            ref, cur = write_tables(rows, Path(tmp))
            contenders = {
                "floor (pyarrow + scipy per column)": [sys.executable, "-c", _FLOOR],
                "modelcycle monitor drift": [modelcycle, "monitor", "drift", "--reference"],
            }
            if evidently:
                contenders["evidently DataDriftPreset"] = [evidently, "-c", _EVIDENTLY]
            names = list(contenders)
            runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            for rnd in range(args.rounds):
                for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                    cmd = contenders[name]
                    if name.startswith("modelcycle"):
                        cmd = [*cmd, str(ref), "--current", str(cur), "--json"]
                    else:
                        cmd = [*cmd, str(ref), str(cur)]
                    runs[name].append(timed(cmd))
            floor = runs[names[0]]
            print(f"== {rows:,} vs {rows:,} rows, 25 columns, shift in {', '.join(SHIFTED)}")
            for name in names:
                rs = runs[name]
                wall = statistics.median(r["wall_s"] for r in rs)
                rss = statistics.median(r["rss_mb"] for r in rs)
                cpu = statistics.median(r["cpu_s"] for r in rs)
                cpu_ratio = statistics.median(
                    r["cpu_s"] / f["cpu_s"] for r, f in zip(rs, floor, strict=True)
                )
                ratio = statistics.median(
                    r["wall_s"] / f["wall_s"] for r, f in zip(rs, floor, strict=True)
                )
                rss_ratio = statistics.median(
                    r["rss_mb"] / f["rss_mb"] for r, f in zip(rs, floor, strict=True)
                )
                last = rs[-1]["json"]
                flagged = (
                    flagged_by_modelcycle(last)
                    if name.startswith("modelcycle")
                    else last["flagged"]
                )
                print(
                    f"  {name:<36} wall {wall:6.2f} s ({ratio:4.2f}x floor)  "
                    f"CPU {cpu:6.2f} s ({cpu_ratio:4.2f}x)  "
                    f"peak RSS {rss:6.0f} MiB ({rss_ratio:4.2f}x)  drifted: {','.join(flagged)}"
                )
            print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
