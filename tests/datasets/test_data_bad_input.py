"""Bad input is refused naming the field, and leaves no row, no audit event and no blob."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _data_helpers import small_table, stored_state

from modelcycle import InvalidInput, Workspace

# (label, name, how to build the source in a folder, field named, text in the message)
Case = tuple[str, str, Callable[[Path], Any], str, str]


def _file(name: str, text: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_text(text, encoding="utf-8")
        return path

    return make


def _unreadable(folder: Path) -> Path:
    path = folder / "locked.csv"
    path.write_text("a\n1\n")
    path.chmod(0)
    return path


def _bad_parquet(folder: Path) -> Path:
    path = folder / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    return path


CASES: list[Case] = [
    ("missing file", "d", lambda f: f / "nope.csv", "source", "no such file"),
    ("empty file", "d", _file("empty.csv", ""), "source", "is empty"),
    ("header only", "d", _file("header.csv", "a,b\n"), "source", "no rows"),
    ("no columns", "d", lambda f: pa.table({}), "source", "no columns"),
    ("mixed csv", "d", _file("mixed.csv", "a,b\n1,x\n2,y\nthree,z\n"), "columns", "'a' mixes"),
    (
        "mixed jsonl",
        "d",
        _file("mixed.jsonl", '{"a": 1}\n{"a": "one"}\n'),
        "source",
        "Column(/a) changed from number to string",
    ),
    ("mixed pandas", "d", lambda f: pd.DataFrame({"a": [1, "x"]}), "source", "column a"),
    ("duplicate csv", "d", _file("dup.csv", "a,b,a\n1,2,3\n"), "columns", "duplicate column"),
    (
        "duplicate pandas",
        "d",
        lambda f: pd.DataFrame([[1, 2]], columns=["a", "a"]),
        "columns",
        "'a'",
    ),
    ("slash in name", "a/b", lambda f: small_table(5), "name", "not a valid name"),
    ("dots in name", "a..b", lambda f: small_table(5), "name", "not a valid name"),
    ("unknown extension", "d", _file("data.xlsx", "whatever"), "source", "unknown file type"),
    ("broken parquet", "d", _bad_parquet, "source", "cannot be read as Parquet"),
    ("empty folder", "d", lambda f: (f / "sub").mkdir() or f / "sub", "source", "no Parquet"),
    ("glob of nothing", "d", lambda f: str(f / "*.parquet"), "source", "matches no file"),
    ("not a source", "d", lambda f: 42, "source", "expected a file path"),
]


def test_every_bad_input_is_refused_and_stores_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    before = stored_state(workspace)
    for label, name, make, field, text in CASES:
        folder = tmp_path / label.replace(" ", "_")
        folder.mkdir()
        with pytest.raises(InvalidInput) as info:
            workspace.datasets.add(name, make(folder))
        assert info.value.field == field, (label, str(info.value))
        assert text in str(info.value), (label, str(info.value))
        assert stored_state(workspace) == before, label
    # A folder part that is not Parquet, and a Parquet file without rows.
    parts = tmp_path / "mixed_parts"
    parts.mkdir()
    pq.write_table(small_table(3), parts / "a.parquet")
    (parts / "b.csv").write_text("a\n1\n")
    with pytest.raises(InvalidInput, match="not a Parquet part"):
        workspace.datasets.add("d", parts)
    pq.write_table(small_table(0), tmp_path / "zero.parquet")
    with pytest.raises(InvalidInput, match="no rows"):
        workspace.datasets.add("d", tmp_path / "zero.parquet")
    assert stored_state(workspace) == before


# Root reads any file through its DAC capabilities: as root the command runs without them
# (setpriv), so a file of mode 0 is unreadable to it too and this case runs on every machine.
_NO_DAC = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def test_an_unreadable_file_is_refused_as_any_user(workspace: Workspace, tmp_path: Path) -> None:
    locked = _unreadable(tmp_path)
    before = stored_state(workspace)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    command = [sys.executable, "-m", "modelcycle", "data", "add", "d", str(locked)]
    proc = subprocess.run(
        [*(_NO_DAC if os.geteuid() == 0 else []), *command],
        cwd=workspace.root,
        env={**env, "MODELCYCLE_ACTOR": "tester"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"source: {locked} is not readable (permission denied)" in proc.stderr
    assert stored_state(workspace) == before
