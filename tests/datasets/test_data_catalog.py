"""Adding, reading and listing data set versions through ``ws.datasets``, on both backends."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from _data_helpers import small_table, stored_state, write_jsonl

from modelcycle import IntegrityError, InvalidInput, NotFound, Workspace
from modelcycle.datasets import parse_dataset_ref


def _write_all_formats(table: pa.Table, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pa_csv.write_csv(table, folder / "d.csv")
    pq.write_table(table, folder / "d.parquet")
    write_jsonl(table, folder / "d.jsonl")
    parts = folder / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, table.num_rows, 70)):
        pq.write_table(table.slice(start, 70), parts / f"part-{i:03d}.parquet", row_group_size=33)
    return {
        "csv": folder / "d.csv",
        "parquet": folder / "d.parquet",
        "jsonl": folder / "d.jsonl",
        "folder": parts,
        "glob": Path(str(parts / "part-*.parquet")),
    }


def test_every_format_gives_the_same_version(
    workspace: Workspace, table: pa.Table, tmp_path: Path
) -> None:
    files = _write_all_formats(table, tmp_path / "src")
    first = workspace.datasets.ingest("demo", files["csv"])
    assert first.created
    v = first.version
    assert (v.name, v.version, v.num_rows) == ("demo", 1, table.num_rows)
    assert [c["name"] for c in v.schema] == table.column_names
    assert [c["type"] for c in v.schema] == ["int64", "double", "string", "bool"]
    assert v.source.startswith("csv:")
    for kind in ("parquet", "jsonl", "folder", "glob"):
        again = workspace.datasets.ingest("demo", str(files[kind]))
        assert not again.created, kind
        assert again.version == v, kind
    for source in (table, table.to_pandas(), pa.Table.from_batches(table.to_batches(17))):
        assert workspace.datasets.add("demo", source) == v
    assert [x.ref for x in workspace.datasets.list()] == ["demo@1"]
    # One change, one event: the duplicates wrote nothing.
    events = [e for e in workspace.audit.events() if e.action == "dataset.version_created"]
    assert [(e.subject, e.payload["sha256"]) for e in events] == [("dataset:demo@1", v.sha256)]


def test_changed_content_is_version_two_and_get_round_trips(
    workspace: Workspace, table: pa.Table
) -> None:
    v1 = workspace.datasets.add("demo", table, description="first cut")
    changed = table.set_column(1, "x", pa.array([1.5] * table.num_rows))
    v2 = workspace.datasets.add("demo", changed)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.sha256 != v2.sha256
    assert workspace.datasets.get("demo", 1).equals(table)
    assert workspace.datasets.get("demo").equals(changed)
    assert workspace.datasets.get("demo@1").equals(table)
    assert workspace.datasets.get("demo", None).equals(changed)
    assert workspace.datasets.get("demo", "latest").to_pandas().equals(changed.to_pandas())
    assert workspace.datasets.version("demo") == v2
    assert workspace.datasets.version("demo", 1).description == "first cut"
    # Adding the first content again does not make a third version.
    assert workspace.datasets.ingest("demo", table).version == v1
    assert [v.ref for v in workspace.datasets.list("demo")] == ["demo@1", "demo@2"]
    assert workspace.audit.verify().ok


def test_pandas_types_are_normalised(workspace: Workspace) -> None:
    import pandas as pd

    df = pd.DataFrame(
        {"s": ["a", "b", None], "c": pd.Categorical(["x", "y", "x"]), "n": [1.0, None, 3.0]}
    )
    v = workspace.datasets.add("pd", df)
    assert [(c["name"], c["type"], c["nullable"]) for c in v.schema] == [
        ("s", "string", True),
        ("c", "string", False),
        ("n", "double", True),
    ]
    back = workspace.datasets.get("pd").to_pandas()
    assert back["s"].tolist()[:2] == ["a", "b"]
    assert back["c"].tolist() == ["x", "y", "x"]


def test_missing_names_and_versions(workspace: Workspace, table: pa.Table) -> None:
    with pytest.raises(NotFound, match="no data set named 'nope'"):
        workspace.datasets.get("nope")
    workspace.datasets.add("demo", table)
    with pytest.raises(NotFound, match="no version 4 \\(latest is 1\\)"):
        workspace.datasets.version("demo", 4)
    with pytest.raises(InvalidInput, match="version"):
        workspace.datasets.version("demo", "two")


def test_tampered_blob_is_refused(workspace: Workspace, table: pa.Table) -> None:
    v = workspace.datasets.add("demo", table)
    blob = workspace.root / ".modelcycle" / "artifacts" / "objects" / v.artifact_sha256[:2]
    path = blob / v.artifact_sha256
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=v.artifact_sha256):
        workspace.datasets.get("demo")


def test_parse_dataset_ref() -> None:
    assert parse_dataset_ref("credit") == ("credit", None)
    assert parse_dataset_ref("credit@latest") == ("credit", None)
    assert parse_dataset_ref("credit@12") == ("credit", 12)
    assert str(parse_dataset_ref("credit@12")) == "credit@12"
    for bad in ("credit@0", "credit@x", "@3", "a/b@1", "../x", "credit@1@2", ""):
        with pytest.raises(InvalidInput):
            parse_dataset_ref(bad)


def test_parts_with_different_columns_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(small_table(10), parts / "a.parquet")
    pq.write_table(small_table(10).drop_columns(["flag"]), parts / "b.parquet")
    with pytest.raises(InvalidInput, match="same columns"):
        workspace.datasets.add("demo", parts)
    assert stored_state(workspace)[0] == 0


def test_read_table_reads_like_add(table: pa.Table, tmp_path: Path) -> None:
    from modelcycle.datasets import read_table

    pq.write_table(table, tmp_path / "d.parquet")
    assert read_table(tmp_path / "d.parquet").equals(table)
    with pytest.raises(InvalidInput) as info:
        read_table(tmp_path / "nope.csv", field="--data")
    assert info.value.field == "--data"
    assert str(info.value).startswith("--data: no such file")
