"""``modelcycle data ...`` run as a real subprocess in a workspace."""

from __future__ import annotations

import json
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from _data_helpers import stored_state

from modelcycle import Workspace
from modelcycle.datasets import make_credit

Cli = Callable[..., CompletedProcess[str]]


def test_sample_add_list_show_diff(cli: Any, workspace: Workspace) -> None:
    root = workspace.root
    out = cli("data", "sample", "credit", "a.parquet", "--rows", "1500", "--seed", "3", check=True)
    assert "Wrote 1500 rows" in out.stdout
    assert pq.read_table(root / "a.parquet").equals(make_credit(1500, seed=3))
    pa_csv.write_csv(make_credit(1500, seed=4, drift=0.8), root / "b.csv")

    added = cli("data", "add", "credit", "a.parquet", "-d", "baseline", check=True)
    assert "Added credit@1: 1500 rows, 12 columns" in added.stdout
    again = cli("data", "add", "credit", "a.parquet", check=True)
    assert "credit@1 already exists" in again.stdout
    assert "Added credit@2" in cli("data", "add", "credit", "b.csv", check=True).stdout

    listing = cli("data", "list", check=True).stdout
    assert "credit@1" in listing
    assert "credit@2" in listing
    assert "2 version(s)" in listing

    shown = cli("data", "show", "credit@1", check=True).stdout
    for text in ("credit@1", "numeric", "categorical", "debt_ratio", "employment", "baseline"):
        assert text in shown, text
    record = json.loads(cli("data", "show", "credit@1", "--json", check=True).stdout)
    assert record == workspace.datasets.version("credit", 1).as_dict()

    diff = cli("data", "diff", "credit@1", "credit@2", check=True).stdout
    assert "credit@1 -> credit@2" in diff
    assert "PSI" in diff
    assert "debt_ratio" in diff
    events = [e.subject for e in workspace.audit.events() if e.action.startswith("dataset.")]
    assert events == ["dataset:credit@1", "dataset:credit@2"]
    assert workspace.audit.verify().ok


def test_cli_errors_name_the_field(sqlite_cli: Cli, sqlite_ws: Workspace) -> None:
    root = sqlite_ws.root
    (root / "mixed.csv").write_text("a\n1\nx\n")
    (root / "dup.csv").write_text("a,a\n1,2\n")
    for args, code, expected in [
        (("data", "add", "d", "mixed.csv"), 2, "columns: column 'a' mixes numbers and text"),
        (("data", "add", "d", "dup.csv"), 2, "columns: duplicate column name(s): 'a'"),
        (("data", "add", "../x", "dup.csv"), 2, "name: '../x' is not a valid name"),
        (("data", "add", "d", "missing.parquet"), 2, "source: no such file"),
        (("data", "show", "nothing"), 3, "no data set named 'nothing'"),
        (("data", "diff", "x@1", "x@two"), 2, "ref_b: 'two' is not a version"),
        (("data", "sample", "credit", "out.xlsx"), 2, "out: out.xlsx: expected a .csv"),
    ]:
        proc = sqlite_cli(*args)
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        assert expected in " ".join(proc.stderr.split()), (args, proc.stderr)
    assert stored_state(sqlite_ws)[:2] == (0, ["workspace.created"])
    assert not (root / "out.xlsx").exists()
