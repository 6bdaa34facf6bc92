"""Helpers for the data set tests: small tables, files, and the state a failed add must keep.

A module of its own (not conftest) so that ``from conftest import`` never picks the wrong one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from modelcycle import Workspace
from modelcycle.store import tables


def small_table(n: int = 200, *, shift: float = 0.0) -> pa.Table:
    """Rows whose types survive CSV and JSON lines unchanged (floats with fractions)."""
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "x": pa.array([round(i * 0.37 + shift + 0.01, 3) for i in range(n)], pa.float64()),
            "city": pa.array([["oslo", "rome", "lima"][i % 3] for i in range(n)], pa.string()),
            "flag": pa.array([i % 4 == 0 for i in range(n)], pa.bool_()),
        }
    )


def write_jsonl(table: pa.Table, path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps(row) + "\n")
    return path


def stored_state(ws: Workspace) -> tuple[int, list[str], list[str]]:
    """(dataset rows, audit actions, blobs): what a failed add must leave unchanged."""
    with ws.metadata.read() as conn:
        rows = conn.execute(tables.dataset_versions.select()).all()
    actions = [e.action for e in ws.audit.events()]
    return len(rows), actions, sorted(ws.artifacts.list())
