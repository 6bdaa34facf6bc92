"""Boosted trees compiled to native code, in batch jobs and the server's fast path: the labels
are scikit-learn's, always.

Real builds with the machine's C compiler (treelite + tl2cgen); the test is skipped only on a
machine without one, where the feature itself stands aside.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _scoring_helpers import ServerProcess
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelcycle import Workspace, init_workspace

pytestmark = pytest.mark.skipif(
    not (shutil.which("gcc") or shutil.which("clang")), reason="no C compiler on this machine"
)

N_FEATURES = 6
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]


def _frame(n: int, seed: int, *, extremes: bool = True) -> pd.DataFrame:
    """Random rows with missing values, extreme values and integer-valued floats."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)) * rng.choice([0.01, 1.0, 1e3], N_FEATURES)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[np.arange(N_FEATURES), np.arange(N_FEATURES)] = np.nan  # the example allows NaN anywhere
    if extremes:
        x[rng.random(x.shape) < 0.002] = 1e300
        x[rng.random(x.shape) < 0.002] = -1e300
    x[:, 0] = np.round(x[:, 0])  # an int column sent as floats
    return pd.DataFrame(x, columns=COLUMNS)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("compiled") / "ws"
    init_workspace(root)[0].close()
    # Every job builds (the default waits for a million rows).
    (root / "modelcycle.toml").write_text("[scoring]\ncompiled_trees_min_rows = 0\n")
    train = _frame(3_000, seed=1, extremes=False)
    signal = np.nan_to_num(train["f1"].to_numpy()) + np.nan_to_num(train["f2"].to_numpy())
    binary = (signal > 0).astype(int)
    three = np.digitize(signal, [-0.5, 0.5])
    workspace = Workspace(root)
    fit = dict(max_iter=30, random_state=0)
    pipe = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(**fit))
    workspace.registry.register(pipe.fit(train, binary), "binary", input_example=train.head(20))
    multi = HistGradientBoostingClassifier(**fit).fit(train, three)
    workspace.registry.register(multi, "multi", input_example=train.head(20))
    reg = HistGradientBoostingRegressor(**fit).fit(train, signal)
    workspace.registry.register(reg, "reg", input_example=train.head(20))
    try:
        yield workspace
    finally:
        workspace.close()


def _score(ws: Workspace, ref: str, rows: pd.DataFrame, out: Path) -> np.ndarray:
    source = out.with_suffix(".parquet")
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source)
    job = ws.batch.score(ref, source, out, workers=2, chunk_rows=2_500)
    assert job.status == "succeeded"
    return np.asarray(pq.read_table(out).column("prediction").to_numpy())


def _libraries(ws: Workspace) -> list[Path]:
    folder = ws.settings.local_dir("compiled")
    return sorted(folder.glob("*.so")) if folder.is_dir() else []


@pytest.mark.parametrize("name", ["binary", "multi"])
def test_compiled_labels_equal_sklearn_on_random_rows(
    ws: Workspace, tmp_path: Path, name: str
) -> None:
    before = set(_libraries(ws))
    rows = _frame(10_000, seed=7)
    got = _score(ws, f"{name}/1", rows, tmp_path / "out")
    built = set(_libraries(ws)) - before
    assert len(built) == 1, "the job built one library for this model"
    expected = ws.registry.load(f"{name}/1").model.predict(rows)
    np.testing.assert_array_equal(got, expected)
    # A second job reads the library back instead of building it again.
    again = _score(ws, f"{name}/1", rows, tmp_path / "again")
    np.testing.assert_array_equal(again, expected)
    assert set(_libraries(ws)) - before == built
    assert [p.stat().st_mtime_ns for p in built] == [
        p.stat().st_mtime_ns for p in set(_libraries(ws)) - before
    ]


def test_a_changed_library_is_built_again_not_loaded(ws: Workspace, tmp_path: Path) -> None:
    folder = ws.settings.local_dir("compiled")
    shutil.rmtree(folder, ignore_errors=True)
    rows = _frame(5_000, seed=11)
    _score(ws, "binary/1", rows, tmp_path / "first")
    (lib,) = _libraries(ws)
    digest = (folder / f"{lib.name}.sha256").read_text().strip()
    # One byte flipped: the library no longer matches its sha256, so it is built again
    # (loading it could run anything, or predict wrong).
    data = bytearray(lib.read_bytes())
    data[len(data) // 2] ^= 0xFF
    lib.write_bytes(bytes(data))
    got = _score(ws, "binary/1", rows, tmp_path / "second")
    np.testing.assert_array_equal(got, ws.registry.load("binary/1").model.predict(rows))
    assert _libraries(ws) == [lib]
    assert hashlib.sha256(lib.read_bytes()).hexdigest() == digest


def test_a_regressor_is_not_compiled(ws: Workspace, tmp_path: Path) -> None:
    before = set(_libraries(ws))
    rows = _frame(3_000, seed=5)
    got = _score(ws, "reg/1", rows, tmp_path / "out")
    # A regressor's output is the margin itself: compiled sums differ in the last bits.
    assert set(_libraries(ws)) == before
    np.testing.assert_array_equal(got, ws.registry.load("reg/1").model.predict(rows))


def test_a_server_swaps_in_compiled_trees_with_the_same_answers(
    ws: Workspace, tmp_path: Path
) -> None:
    server = ServerProcess(ws.root, "binary/1", log=tmp_path / "server.log")
    try:
        server.wait_ready()
        meta = f"{server.url}/v2/models/binary"
        deadline = time.monotonic() + 120
        predictor = ""
        while time.monotonic() < deadline:
            predictor = httpx.get(meta, timeout=10).json()["parameters"]["predictor"]
            if predictor == "compiled-trees":
                break
            time.sleep(0.2)
        assert predictor == "compiled-trees", server.log()
        rows = _frame(10_000, seed=13)
        expected = ws.registry.load("binary/1").model.predict(rows)
        got: list[int] = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for start in range(0, len(rows), 1_000):
                part = rows.iloc[start : start + 1_000]
                data = [[None if np.isnan(v) else v for v in row] for row in part.to_numpy()]
                body = {"dataframe_split": {"columns": COLUMNS, "data": data}}
                answer = client.post("/invocations", json=body)
                assert answer.status_code == 200, answer.text
                got.extend(answer.json()["predictions"])
            # One row at a time, as most real traffic comes.
            for i in range(40):
                data = [[None if np.isnan(v) else v for v in rows.iloc[i].to_numpy()]]
                body = {"dataframe_split": {"columns": COLUMNS, "data": data}}
                answer = client.post("/invocations", json=body)
                assert answer.json()["predictions"] == [int(expected[i])]
        np.testing.assert_array_equal(np.asarray(got), expected)
    finally:
        server.stop()
