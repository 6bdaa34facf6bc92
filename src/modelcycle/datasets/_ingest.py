"""Reading a source into normalised record batches, hashing its content, writing Parquet.

Content identity (hash scheme ``modelcycle-dataset-v1``): the sha256 over the column names and
Arrow types of the normalised schema, then one digest per column computed from a canonical
encoding of its values (validity byte per row; fixed-width values little-endian with nulls as
zero and one NaN bit pattern; variable-width values as int64 lengths plus bytes). The encoding
concatenates across batches, so the hash does not depend on how the rows were chunked, on the
file format they came from, or on Parquet writer metadata.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from modelcycle.audit import canonical_json
from modelcycle.errors import InvalidInput

HASH_SCHEME = "modelcycle-dataset-v1"
ROW_GROUP_ROWS = 65_536
# Fixed writer options: the same batches give the same Parquet bytes with one pyarrow version.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}
_CSV_EXT = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
_JSONL_EXT = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_PARQUET_EXT = (".parquet", ".pq")
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


@dataclass
class Source:
    """Normalised batches of one source, readable once."""

    description: str
    schema: pa.Schema
    num_rows: int
    batches: Iterator[pa.RecordBatch]


@dataclass(frozen=True)
class Staged:
    """A source written to local Parquet, with its content identity."""

    path: Path
    sha256: str
    num_rows: int
    schema: pa.Schema
    description: str


# -- opening sources ---------------------------------------------------------------------------


def open_source(source: Any) -> Source:
    """Turn a path, glob, folder, Arrow table or pandas DataFrame into normalised batches."""
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        return _from_table(source, "arrow table")
    if _is_dataframe(source):
        return _from_table(_table_from_pandas(source), "pandas DataFrame")
    if isinstance(source, str | os.PathLike):
        return _from_path(os.fspath(source))
    raise InvalidInput(
        f"got a {type(source).__name__}; expected a file path, a folder or glob of Parquet "
        "parts, a pyarrow.Table or a pandas.DataFrame",
        field="source",
    )


def read_table(source: Any, *, field: str = "source") -> pa.Table:
    """Read a source as :meth:`DatasetCatalog.add` does, into a normalised in-memory table.

    The same formats and the same checks; problems are InvalidInput naming ``field``.
    """
    try:
        src = open_source(source)
        table = pa.Table.from_batches(list(src.batches), schema=src.schema)
    except InvalidInput as exc:
        if exc.field != "source" or field == "source":
            raise
        raise InvalidInput(exc.message.removeprefix("source: "), field=field) from exc
    return table


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas")


def _table_from_pandas(df: Any) -> pa.Table:
    names = [str(c) for c in df.columns]
    _check_names(names)
    try:
        return pa.Table.from_pandas(df)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(_arrow_message(exc), field="source") from exc


def _from_table(table: pa.Table, description: str) -> Source:
    _check_names(table.column_names)
    schema = normal_schema(table.schema)
    if table.num_rows == 0:
        raise InvalidInput(f"the {description} has no rows", field="source")
    batches = (normalise(b, schema) for b in table.to_batches(max_chunksize=ROW_GROUP_ROWS))
    return Source(description, schema, table.num_rows, batches)


def parquet_parts(text: str, *, field: str = "source") -> tuple[list[Path], str] | None:
    """The files of a glob or a folder of Parquet parts, sorted, and a description of them;
    None when ``text`` names neither (a single file, or nothing)."""
    if any(ch in text for ch in "*?["):
        matches = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not matches:
            raise InvalidInput(f"the glob {text!r} matches no file", field=field)
        return [Path(p) for p in matches], f"parquet glob:{text}"
    path = Path(text).expanduser()
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not parts:
            raise InvalidInput(f"the folder {path} holds no Parquet parts", field=field)
        return parts, f"parquet folder:{path.resolve()}"
    return None


def _from_path(text: str) -> Source:
    if text.startswith("s3://"):
        return _from_s3(text)
    found = parquet_parts(text)
    if found is not None:
        return _from_parquet_parts(*found)
    path = Path(text).expanduser()
    if not path.exists():
        raise InvalidInput(f"no such file: {path}", field="source")
    lower = path.name.lower()
    where = str(path.resolve())
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"{path} is not readable (permission denied)", field="source")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path} is empty", field="source")
    if lower.endswith(_CSV_EXT):
        return _from_table(_read_csv(path), f"csv:{where}")
    if lower.endswith(_JSONL_EXT):
        return _from_table(_read_jsonl(path), f"jsonl:{where}")
    if lower.endswith(_PARQUET_EXT):
        return _from_parquet_parts([path], f"parquet:{where}")
    raise InvalidInput(
        f"{path.name}: unknown file type; expected one of "
        f"{', '.join(_CSV_EXT + _JSONL_EXT + _PARQUET_EXT)}, a folder or a glob of Parquet parts",
        field="source",
    )


def csv_convert_options(**options: Any) -> pa_csv.ConvertOptions:
    """Arrow's CSV conversion as every CSV reader here uses it: a blank field (and the usual
    null markers: ``NA``, ``N/A``, ``null``, ``NaN`` ...) is a null in every column type.

    Arrow's default keeps a blank in a text column as the empty string, a category of its own,
    while the same data stored as Parquet holds nulls: the two copies would make different
    data set versions and models with different signatures. Reading them as nulls is also
    what pandas does.
    """
    return pa_csv.ConvertOptions(strings_can_be_null=True, **options)


def _read_csv(path: Path) -> pa.Table:
    try:
        table = pa_csv.read_csv(path, convert_options=csv_convert_options())
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"{path} cannot be read as CSV: {_arrow_message(exc)}", field="source"
        ) from exc
    _check_names(table.column_names)
    _check_csv_mixed(table)
    return table


def _check_csv_mixed(table: pa.Table) -> None:
    """Arrow reads a column of numbers with some text as strings; call that out instead."""
    problems = []
    for name in table.column_names:
        column = table.column(name)
        if not pa.types.is_string(column.type) or column.null_count == len(column):
            continue
        numeric = pc.match_substring_regex(column, _NUMBER)
        n_numeric = pc.sum(numeric).as_py() or 0
        n_valid = len(column) - column.null_count
        if 0 < n_numeric < n_valid:
            flags = numeric.to_pylist()
            first_num = flags.index(True)
            first_text = flags.index(False)
            problems.append(
                f"column {name!r} mixes numbers and text (row {first_num + 1}: "
                f"{column[first_num].as_py()!r}, "
                f"row {first_text + 1}: {column[first_text].as_py()!r})"
            )
    if problems:
        raise InvalidInput(
            "; ".join(problems)
            + "; clean the values or store the column with explicit types (Parquet, a table)",
            field="columns",
        )


def _read_jsonl(path: Path) -> pa.Table:
    try:
        table = pa_json.read_json(path)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        # Arrow names the column and row of a type change: "Column(/x) changed from number ..."
        raise InvalidInput(
            f"{path} cannot be read as JSON lines: {_arrow_message(exc)}", field="source"
        ) from exc
    _check_names(table.column_names)
    return table


def _from_s3(url: str) -> Source:
    """Parquet parts in S3-compatible storage, read by ranged requests: no local copy."""
    from modelcycle.store.s3_files import list_s3_files, s3_filesystem

    parts = list_s3_files(url, field="source")
    filesystem = s3_filesystem()
    return _from_parquet_parts(
        [PurePosixPath(p) for p in parts],
        f"parquet s3:{url}",
        opener=lambda part: filesystem.open_input_file(str(part)),
    )


def _from_parquet_parts(
    parts: Sequence[PurePath], description: str, opener: Callable[[Any], Any] = lambda p: p
) -> Source:
    """``opener`` turns a part into what ``pq.ParquetFile`` reads (a path, or a remote file)."""
    files = []
    for part in parts:
        if not part.name.lower().endswith(_PARQUET_EXT):
            raise InvalidInput(
                f"{part} is not a Parquet part (.parquet or .pq); a folder or glob may hold "
                "only Parquet parts",
                field="source",
            )
        try:
            files.append(pq.ParquetFile(opener(part)))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(
                f"{part} cannot be read as Parquet: {_arrow_message(exc)}", field="source"
            ) from exc
    first = files[0].schema_arrow
    _check_names(first.names)
    schema = normal_schema(first)
    for part, fh in zip(parts[1:], files[1:], strict=True):
        other = normal_schema(fh.schema_arrow)
        if not other.equals(schema):
            raise InvalidInput(
                f"the part {part} has columns {_describe(other)}, the first part "
                f"{parts[0]} has {_describe(schema)}; all parts must have the same columns",
                field="source",
            )
    num_rows = sum(fh.metadata.num_rows for fh in files)
    if num_rows == 0:
        raise InvalidInput(f"{description.split(':', 1)[1]} has no rows", field="source")

    def batches() -> Iterator[pa.RecordBatch]:
        for part, fh in zip(parts, files, strict=True):
            try:
                for batch in fh.iter_batches(batch_size=ROW_GROUP_ROWS):
                    yield normalise(batch, schema)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(
                    f"{part} cannot be read as Parquet: {_arrow_message(exc)}", field="source"
                ) from exc

    return Source(description, schema, num_rows, batches())


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def _check_names(names: list[str]) -> None:
    if not names:
        raise InvalidInput("the data has no columns", field="source")
    blank = [i + 1 for i, n in enumerate(names) if not str(n).strip()]
    if blank:
        raise InvalidInput(
            f"column(s) at position {', '.join(map(str, blank))} have no name", field="columns"
        )
    seen: set[str] = set()
    dup = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dup:
        raise InvalidInput(
            f"duplicate column name(s): {', '.join(map(repr, dup))}; "
            "each column needs its own name",
            field="columns",
        )


def _arrow_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(a) for a in exc.args) if exc.args else type(exc).__name__


# -- normalisation -----------------------------------------------------------------------------


def _normal_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _normal_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


def normal_schema(schema: pa.Schema) -> pa.Schema:
    """One spelling per content: no metadata, every column nullable, dictionaries decoded,
    large and view string types as ``string``/``binary``."""
    return pa.schema([pa.field(f.name, _normal_type(f.type), nullable=True) for f in schema])


def normalise(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for i, field in enumerate(schema):
        column = batch.column(i)
        if not column.type.equals(field.type):
            column = pc.cast(column, field.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# -- content hash ------------------------------------------------------------------------------


class ContentHasher:
    """The content identity of a stream of normalised batches (see the module docstring)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._columns = [(hashlib.sha256(), hashlib.sha256(), hashlib.sha256()) for _ in schema]

    def update(self, batch: pa.RecordBatch) -> None:
        for column, hashers in zip(batch.columns, self._columns, strict=True):
            for hasher, part in zip(hashers, _encode(column), strict=True):
                hasher.update(part)

    def hexdigest(self) -> str:
        header = canonical_json([[f.name, str(f.type)] for f in self.schema])
        total = hashlib.sha256(f"{HASH_SCHEME}\n{header}\n".encode())
        for hashers in self._columns:
            total.update(hashlib.sha256(b"".join(h.digest() for h in hashers)).digest())
        return total.hexdigest()


def content_sha256(table: pa.Table) -> str:
    """The content identity of a table, as the catalog computes it."""
    schema = normal_schema(table.schema)
    hasher = ContentHasher(schema)
    for batch in table.to_batches():
        hasher.update(normalise(batch, schema))
    return hasher.hexdigest()


def _encode(arr: pa.Array) -> tuple[bytes, bytes, bytes]:
    """(validity, fixed-width values or lengths, variable-width bytes) of one array."""
    n = len(arr)
    if arr.null_count:
        validity = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=np.uint8)
    else:
        validity = np.ones(n, dtype=np.uint8)
    t = arr.type
    if pa.types.is_null(t):
        return validity.tobytes(), b"", b""
    if pa.types.is_boolean(t):
        filled = pc.fill_null(arr, False).to_numpy(zero_copy_only=False)
        return validity.tobytes(), np.asarray(filled, dtype=np.uint8).tobytes(), b""
    if pa.types.is_temporal(t):
        arr = arr.view(pa.int64() if t.bit_width == 64 else pa.int32())
        t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = pc.fill_null(arr, pa.scalar(0, t)).to_numpy(zero_copy_only=False)
        if pa.types.is_floating(t):
            values = np.where(np.isnan(values), np.nan, values).astype(values.dtype)
        return validity.tobytes(), values.astype(values.dtype.newbyteorder("<")).tobytes(), b""
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t):
        return (validity.tobytes(), *_var_width(pc.fill_null(arr, pa.scalar("", t))))
    if pa.types.is_decimal(t):
        return (validity.tobytes(), *_var_width(pc.fill_null(pc.cast(arr, pa.string()), "")))
    # Nested and rare types: one canonical JSON text per value.
    texts = pa.array(
        [json.dumps(v, sort_keys=True, default=str) for v in arr.to_pylist()], type=pa.string()
    )
    return (validity.tobytes(), *_var_width(texts))


def _var_width(arr: pa.Array) -> tuple[bytes, bytes]:
    big = arr.cast(pa.large_binary())
    buffers = big.buffers()
    offsets = np.frombuffer(buffers[1], dtype="<i8")[big.offset : big.offset + len(big) + 1]
    lengths = np.diff(offsets).astype("<i8")
    data = b"" if buffers[2] is None else buffers[2].to_pybytes()[offsets[0] : offsets[-1]]
    return lengths.tobytes(), data


# -- staging -----------------------------------------------------------------------------------


def stage(source: Source, path: Path) -> Staged:
    """Write the source to ``path`` as Parquet in fixed row groups, hashing as it goes."""
    hasher = ContentHasher(source.schema)
    num_rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with pq.ParquetWriter(path, source.schema, **_PARQUET_OPTIONS) as writer:
        for batch in source.batches:
            hasher.update(batch)
            num_rows += batch.num_rows
            pending.append(batch)
            pending_rows += batch.num_rows
            # Row groups of a fixed size whatever the input chunking: the same bytes each time.
            while pending_rows >= ROW_GROUP_ROWS:
                table = pa.Table.from_batches(pending, schema=source.schema)
                writer.write_table(table.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                rest = table.slice(ROW_GROUP_ROWS)
                pending = rest.to_batches()
                pending_rows = rest.num_rows
        if pending_rows:
            writer.write_table(
                pa.Table.from_batches(pending, schema=source.schema), row_group_size=ROW_GROUP_ROWS
            )
    if num_rows == 0:
        raise InvalidInput(f"{source.description} has no rows", field="source")
    return Staged(path, hasher.hexdigest(), num_rows, source.schema, source.description)
