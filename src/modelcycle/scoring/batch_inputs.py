"""Batch scoring's inputs: streaming reads of Parquet, CSV and JSON lines, cut into chunks.

- :func:`open_input` reads a Parquet file, a folder or glob of Parquet parts, a CSV or a JSON
  lines file as a stream of record batches (only the columns the job needs), never the whole
  input at once.
  A Parquet input also lists its row groups (:class:`Segment`), so that a :class:`RangeReader`
  on a worker can read any run of chunks straight from the file(s): the coordinating process
  then ships no data at all;
- :func:`chunks` cuts that stream into chunks of exactly ``chunk_rows`` rows (the last may be
  shorter). Chunk ``i`` is always rows ``[i * chunk_rows, (i + 1) * chunk_rows)`` of the input,
  so a resumed job cuts the same chunks and re-scores only the ones not yet committed;
- a CSV input's bad rows are named by line, or skipped and listed (:class:`Rejects`).

Plain functions over Arrow, shared by the local and the Dask engine (through
:mod:`modelcycle.scoring.batch_io`, which re-exports them).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from modelcycle.datasets import csv_convert_options, parquet_parts
from modelcycle.errors import InvalidInput
from modelcycle.registry import Signature

__all__ = [
    "REJECTS_FILE",
    "InputSource",
    "RangeReader",
    "Rejects",
    "Segment",
    "chunks",
    "open_input",
    "plan_ranges",
]

# In the output folder, but skipped by Parquet readers of the folder (leading underscore).
REJECTS_FILE = "_rejects.csv"
_CSV_EXT = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
_JSONL_EXT = (".jsonl", ".ndjson")
_PARQUET_EXT = (".parquet", ".pq")
_READ_BATCH_ROWS = 16_384
_READ_BUFFER_BYTES = 1 << 18
_CSV_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class Segment:
    """One row group of a Parquet input: rows ``[start, start + rows)`` of the whole input."""

    path: str
    row_group: int
    start: int
    rows: int


@dataclass(frozen=True)
class InputSource:
    """An input opened for streaming: its (full) schema, row count when known, and a reader.

    ``batches(columns)`` starts a new pass over the input each time it is called.
    ``segments`` lists the row groups of a Parquet input (None for CSV, which cannot be
    entered in the middle).
    """

    description: str
    schema: pa.Schema
    num_rows: int | None
    batches: Callable[[list[str]], Iterator[pa.RecordBatch]]
    segments: tuple[Segment, ...] | None = None


def open_input(
    path_text: str, *, signature: Signature | None = None, rejects: Rejects | None = None
) -> InputSource:
    """Open a local input for streaming; problems are InvalidInput naming ``input``.

    For CSV the signature's column types are given to the parser, so numbers are read as the
    model expects them and a bad row is reported with its line; with ``rejects``, bad rows
    are skipped and recorded there instead.
    """
    if path_text.startswith("s3://"):
        # Parquet parts in object storage, read by ranged requests (no local copy).
        from modelcycle.store.s3_files import list_s3_files

        parts = [f"s3://{p}" for p in list_s3_files(path_text, field="input")]
        return _parquet_parts(parts, f"parquet s3:{path_text}")
    found = parquet_parts(path_text, field="input")
    if found is not None:
        return _parquet_parts(*found)
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", field="input")
    lower = path.name.lower()
    if lower.endswith(_PARQUET_EXT):
        return _parquet_parts([path], f"parquet:{path.resolve()}")
    if lower.endswith(_CSV_EXT):
        return _csv(path, signature, rejects)
    if lower.endswith(_JSONL_EXT):
        return _jsonl(path, signature)
    raise InvalidInput(
        f"{path.name}: unknown file type; expected a Parquet file (.parquet, .pq), a CSV file, "
        "a JSON lines file (.jsonl, .ndjson), a folder or glob of Parquet parts, "
        "or data:NAME@VERSION",
        field="input",
    )


def _jsonl(path: Path, signature: Signature | None) -> InputSource:
    """A JSON lines file, streamed by blocks; the signature's columns read in its types."""
    read = pa_json.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    try:
        head = pa_json.open_json(path, read_options=read).schema
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} cannot be read as JSON lines: {exc}", field="input") from exc
    types = {c.name: c.type for c in signature.inputs} if signature is not None else {}
    # Only columns the file has: an explicit field it lacks would be read as all nulls, and
    # the missing column then reported as nulls rather than as missing.
    schema = pa.schema([pa.field(f.name, _csv_type(f, types)) for f in head])
    explicit = pa.schema([f for f in schema if f.name in types])
    parse = pa_json.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="infer")

    def batches(columns: list[str]) -> Iterator[pa.RecordBatch]:
        try:
            reader = pa_json.open_json(path, read_options=read, parse_options=parse)
            for batch in reader:
                yield batch.select(columns)
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
            # Arrow names the column and row of a bad value: "Column(/a) changed from ..."
            raise InvalidInput(
                f"{path} cannot be read as JSON lines: {exc}", field="input"
            ) from exc

    return InputSource(f"jsonl:{path.resolve()}", schema, None, batches)


def _parquet_parts(parts: Sequence[Path | str], description: str) -> InputSource:
    """``parts``: local paths, or ``s3://bucket/key`` strings."""
    files: list[pq.ParquetFile] = []
    for part in parts:
        if not str(part).rsplit("/", 1)[-1].lower().endswith(_PARQUET_EXT):
            raise InvalidInput(
                f"{part} is not a Parquet part (.parquet or .pq); a folder or glob may hold "
                "only Parquet parts",
                field="input",
            )
        try:
            files.append(pq.ParquetFile(_source(part)))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{part} cannot be read as Parquet: {exc}", field="input") from exc
    schema = files[0].schema_arrow
    for part, fh in zip(parts[1:], files[1:], strict=True):
        if fh.schema_arrow.names != schema.names or not fh.schema_arrow.equals(
            schema, check_metadata=False
        ):
            raise InvalidInput(
                f"the part {part} has other columns or types than {parts[0]}; all parts must "
                "have the same columns",
                field="input",
            )
    num_rows = sum(fh.metadata.num_rows for fh in files)
    paths = list(parts)
    segments: list[Segment] = []
    start = 0
    for part, fh in zip(parts, files, strict=True):
        for group in range(fh.num_row_groups):
            rows = fh.metadata.row_group(group).num_rows
            if rows:
                segments.append(Segment(str(part), group, start, rows))
                start += rows
        fh.close()

    def batches(columns: list[str]) -> Iterator[pa.RecordBatch]:
        for part in paths:
            try:
                with pq.ParquetFile(_source(part)) as fh:
                    # One row group at a time: iter_batches over the whole file reads ahead
                    # and its memory grows with the file (measured: 350 MB at 1M rows,
                    # 1 GB at 5M); per row group it stays flat.
                    for group in range(fh.num_row_groups):
                        yield from fh.iter_batches(
                            batch_size=_READ_BATCH_ROWS, columns=columns, row_groups=[group]
                        )
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(
                    f"{part} cannot be read as Parquet: {exc}", field="input"
                ) from exc

    return InputSource(description, schema, num_rows, batches, tuple(segments))


def _csv(path: Path, signature: Signature | None, rejects: Rejects | None) -> InputSource:
    types = {c.name: c.type for c in signature.inputs} if signature is not None else {}

    def open_reader(columns: list[str] | None) -> pa_csv.CSVStreamingReader:
        from modelcycle.datasets import arrow_type

        convert = csv_convert_options(
            column_types={n: arrow_type(t) for n, t in types.items()},
            include_columns=columns,
        )
        return pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=convert,
        )

    try:
        head = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=csv_convert_options(),
            # Only the header and the column types matter here; a bad row is found (and
            # named) by the scoring pass.
            parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
        ).schema
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} cannot be read as CSV: {exc}", field="input") from exc
    # The schema as the scoring pass will read it: signature columns in the signature's types.
    schema = pa.schema([pa.field(f.name, _csv_type(f, types)) for f in head])

    def batches(columns: list[str]) -> Iterator[pa.RecordBatch]:
        if rejects is not None:
            yield from _tolerant_csv(path, types, columns, rejects.add)
            return
        # The fast path: the parser converts to the signature's types. It stops at the first
        # bad row without saying where, so a second, tolerant pass finds the line to name.
        try:
            reader = open_reader(columns)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                yield batch
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _located(path, types, columns, exc) from exc
        except OSError as exc:
            raise InvalidInput(f"{path} cannot be read as CSV: {exc}", field="input") from exc

    return InputSource(f"csv:{path.resolve()}", schema, None, batches)


def _located(path: Path, types: dict[str, str], columns: list[str], exc: Exception) -> InvalidInput:
    """The CSV error as InvalidInput naming the first bad line, found by a tolerant pass.

    The pass stops after the first block holding a bad row, and names that block's lowest.
    """
    found: list[tuple[int, str]] = []

    def collect(line: int | None, reason: str) -> None:
        found.append((line if line is not None else 1 << 62, reason))

    with suppress(InvalidInput, pa.ArrowInvalid, OSError, UnicodeDecodeError):
        for _ in _tolerant_csv(path, types, columns, collect):
            if found:
                break
    if not found:
        return InvalidInput(f"{path}: {exc}", field="input")
    line, reason = min(found)
    where = f"line {line}" if line < 1 << 62 else "a row"
    return InvalidInput(
        f"{path.name}, {where}: {reason}; fix the row, or pass --skip-bad-rows to score the "
        f"other rows and list the bad ones in {REJECTS_FILE}",
        field="input",
    )


def _tolerant_csv(
    path: Path,
    types: dict[str, str],
    columns: list[str],
    on_bad: Callable[[int | None, str], None],
) -> Iterator[pa.RecordBatch]:
    """The CSV's rows that parse and convert, in order; ``on_bad(line, reason)`` for the rest,
    in line order, before the batch they were left out of.

    Slower than the typed parser (values are read as text, then cast), so it only runs to
    skip bad rows or to name one. Lines are the parser's row numbers (header = 1), which are
    the file's lines as long as no quoted value holds a newline.
    """
    from modelcycle.datasets import arrow_type

    skipped: list[int] = []
    unparsed: list[tuple[int | None, str]] = []

    def handler(row: Any) -> str:
        # Called from inside the parser, which would swallow an exception: only note the row.
        number = row.number
        if number is not None:
            skipped.append(number)
        if row.actual_columns > 1 or row.text.strip():  # a blank line is no row, not a bad one
            unparsed.append(
                (number, f"expected {row.expected_columns} fields, got {row.actual_columns}")
            )
        return "skip"

    targets = {n: arrow_type(t) for n, t in types.items() if n in columns}
    try:
        reader = pa_csv.open_csv(
            path,
            # One thread: the handler then learns each bad row's number.
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=False),
            parse_options=pa_csv.ParseOptions(
                ignore_empty_lines=False, invalid_row_handler=handler
            ),
            convert_options=csv_convert_options(
                column_types={n: pa.string() for n in targets},
                include_columns=columns,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} cannot be read as CSV: {exc}", field="input") from exc
    next_line = 2
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}: {exc}", field="input") from exc
        n = batch.num_rows
        gone = sorted(skipped)
        skipped.clear()
        lines = np.setdiff1d(np.arange(next_line, next_line + n + len(gone)), gone)[:n]
        next_line += n + len(gone)
        bad: dict[int, str] = {}
        for name, target in targets.items():
            column = batch.column(name)
            for i in _uncastable(column, target, 0):
                value = column[i].as_py()
                bad.setdefault(i, f"column {name}: {value!r} is not a {target}")
        found = [(int(lines[i]) if i < len(lines) else None, bad[i]) for i in bad] + unparsed
        unparsed.clear()
        for line, reason in sorted(found, key=lambda f: (f[0] is None, f[0] or 0)):
            on_bad(line, reason)
        if bad:
            keep = np.ones(n, dtype=bool)
            keep[list(bad)] = False
            batch = batch.filter(pa.array(keep))
        yield pa.RecordBatch.from_arrays(
            [
                batch.column(f.name).cast(targets[f.name])
                if f.name in targets
                else batch.column(f.name)
                for f in batch.schema
            ],
            names=batch.schema.names,
        )


def _uncastable(column: pa.Array, target: pa.DataType, offset: int) -> list[int]:
    """Positions of the values that do not cast to ``target``: halving, so few casts per bad."""
    try:
        column.cast(target)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(column) == 1:
            return [offset]
    half = len(column) // 2
    return _uncastable(column.slice(0, half), target, offset) + _uncastable(
        column.slice(half), target, offset + half
    )


class Rejects:
    """The rows of a CSV input skipped as bad (``--skip-bad-rows``), with the reason.

    Held in memory until the output exists (nothing is written before the checks pass), then
    written to ``REJECTS_FILE`` beside the parts. Each run writes the file anew: a resumed
    job reads the CSV from its start again, so it finds the same rows.
    """

    def __init__(self) -> None:
        self.count = 0
        self._pending: list[tuple[int | None, str]] = []
        self._fh: Any = None
        self._writer: Any = None

    def add(self, line: int | None, reason: str) -> None:
        self.count += 1
        if self._writer is None:
            self._pending.append((line, reason))
        else:
            self._writer.writerow(["" if line is None else line, reason])

    def open(self, fh: Any) -> None:
        """Write to ``fh`` (a text file named ``REJECTS_FILE`` by the output location)."""
        import csv

        self._fh = fh
        self._writer = csv.writer(self._fh)
        self._writer.writerow(["line", "reason"])
        for line, reason in self._pending:
            self._writer.writerow(["" if line is None else line, reason])
        self._pending.clear()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = self._writer = None


def _csv_type(f: pa.Field, types: dict[str, str]) -> pa.DataType:
    from modelcycle.datasets import arrow_type

    return arrow_type(types[f.name]) if f.name in types else f.type


def chunks(batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.Table]:
    """Cut a stream of batches into tables of exactly ``chunk_rows`` rows (the last shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(chunk_rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == chunk_rows:
                yield pa.Table.from_batches(pending).combine_chunks()
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending).combine_chunks()


def plan_ranges(
    segments: Sequence[Segment], chunk_rows: int, todo: Sequence[int], workers: int
) -> list[tuple[int, int]]:
    """Runs ``[first, end)`` of the chunks in ``todo`` (ascending), one per worker task.

    A worker reads a run straight from the file, and a row group can only be read from its
    start: so a run keeps to the chunks that start in one row group (no row group decoded
    twice), and is cut shorter only so that every worker gets about two runs (balance on a
    busy machine costs at most one partial row group per extra cut).
    """
    if not todo:
        return []
    starts = [seg.start for seg in segments]

    def group(chunk: int) -> int:
        return bisect.bisect_right(starts, chunk * chunk_rows) - 1

    most = max(1, -(-len(todo) // (2 * workers)))
    runs: list[tuple[int, int]] = []
    first = prev = todo[0]
    for chunk in todo[1:]:
        if chunk != prev + 1 or group(chunk) != group(first) or chunk - first >= most:
            runs.append((first, prev + 1))
            first = chunk
        prev = chunk
    runs.append((first, prev + 1))
    return runs


@dataclass(frozen=True, slots=True)
class RangeReader:
    """Reads any run of chunks of a Parquet input on its own (picklable: sent to workers)."""

    segments: tuple[Segment, ...]
    columns: tuple[str, ...]
    chunk_rows: int
    num_rows: int

    @property
    def num_chunks(self) -> int:
        return -(-self.num_rows // self.chunk_rows)

    def tables(self, first: int, end: int) -> Iterator[tuple[int, pa.Table]]:
        """(chunk, table) for chunks ``first`` to ``end - 1``: the same tables as :func:`chunks`."""
        start = first * self.chunk_rows
        stop = min(end * self.chunk_rows, self.num_rows)
        batches = self._rows(start, stop)
        for offset, table in enumerate(chunks(batches, self.chunk_rows)):
            yield first + offset, table

    def head(self) -> pa.Table:
        """The first chunk, read one column at a time.

        The Parquet reader decodes a whole row group of each column it reads: all columns at
        once would make the check of the first chunk cost several times the chunk itself.
        """
        stop = min(self.chunk_rows, self.num_rows)
        columns = {}
        for name in self.columns:
            pieces = [batch.column(0) for batch in self._rows(0, stop, [name])]
            columns[name] = pa.chunked_array(pieces).combine_chunks()
        return pa.table(columns)

    def _rows(
        self, start: int, stop: int, columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        columns = list(self.columns) if columns is None else columns
        opened: dict[str, pq.ParquetFile] = {}
        try:
            for seg in self.segments:
                if seg.start + seg.rows <= start:
                    continue
                if seg.start >= stop:
                    break
                fh = opened.get(seg.path)
                if fh is None:
                    fh = opened[seg.path] = _open_parquet(seg.path)
                pos = seg.start
                # One thread: each worker process already has a core of its own.
                for batch in fh.iter_batches(
                    batch_size=_READ_BATCH_ROWS,
                    columns=columns,
                    row_groups=[seg.row_group],
                    use_threads=False,
                ):
                    lo, pos = pos, pos + batch.num_rows
                    if pos <= start:
                        continue
                    yield batch.slice(max(start - lo, 0), min(pos, stop) - max(lo, start))
                    if pos >= stop:
                        return
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(
                f"the input cannot be read as Parquet: {exc}", field="input"
            ) from exc
        finally:
            for fh in opened.values():
                fh.close()


def _open_parquet(path: str) -> pq.ParquetFile:
    # A bounded read buffer and no pre-buffering: otherwise a row group's column chunks are
    # read whole (tens of MB each for large row groups) before the first batch is decoded.
    # Pre-buffering pays off on high-latency object stores, not on local files.
    return pq.ParquetFile(_source(path), buffer_size=_READ_BUFFER_BYTES, pre_buffer=False)


def _source(part: Path | str) -> Any:
    """What ``pq.ParquetFile`` reads: the local path, or a remote file for ``s3://``."""
    text = str(part)
    if not text.startswith("s3://"):
        return part
    from modelcycle.store.s3_files import s3_filesystem

    return s3_filesystem().open_input_file(text.removeprefix("s3://"))
