"""Step outputs as bytes in the artifact store, and back.

Arrow tables and pandas frames go as Parquet, numeric numpy arrays as ``.npy`` (no pickle),
JSON data as canonical JSON, ``bytes`` as they are (an HTML page or a PNG stays a file that
``modelcycle artifacts get`` gives back as is); anything else (a fitted estimator, say) as
pickle. Pickle is only ever loaded for a blob whose sha256 this workspace's metadata database
recorded as the output of a step it ran, and the artifact store re-checks that hash on every
read: see docs/pipelines.md, "Why loading a pickled output is safe here". The encodings are
byte-stable, so an unchanged value gets an unchanged hash and downstream steps stay cached.
"""

from __future__ import annotations

import io
import json
import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelcycle.errors import InvalidInput

__all__ = ["FORMATS", "decode", "encode"]

FORMATS = ("arrow-parquet", "pandas-parquet", "npy", "json", "bytes", "pickle")


def encode(value: Any) -> tuple[bytes, str]:
    """``(bytes, format)`` for one output value."""
    if isinstance(value, pa.Table):
        return _parquet(value), "arrow-parquet"
    if _is_pandas_frame(value):
        return _parquet(pa.Table.from_pandas(value, preserve_index=True)), "pandas-parquet"
    if isinstance(value, bytes):
        return value, "bytes"
    if isinstance(value, np.ndarray) and value.dtype != object:
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return buf.getvalue(), "npy"
    text = _json_exact(value)
    if text is not None:
        return text.encode("utf-8"), "json"
    return pickle.dumps(value, protocol=5), "pickle"


def decode(data: bytes, fmt: str) -> Any:
    """The value from :func:`encode`'s bytes; callers pass only hash-verified bytes whose
    hash this workspace recorded (the rule that makes ``pickle`` acceptable here)."""
    if fmt == "arrow-parquet":
        return pq.read_table(pa.BufferReader(data))
    if fmt == "pandas-parquet":
        return pq.read_table(pa.BufferReader(data)).to_pandas()
    if fmt == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "json":
        return json.loads(data.decode("utf-8"))
    if fmt == "bytes":
        return data
    if fmt == "pickle":
        return pickle.loads(data)  # noqa: S301 - only blobs recorded by this workspace, see above
    raise InvalidInput(f"unknown output format {fmt!r}; expected one of {FORMATS}", field="format")


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _is_pandas_frame(value: Any) -> bool:
    if not type(value).__module__.startswith("pandas"):
        return False
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _json_exact(value: Any) -> str | None:
    """Canonical JSON text when it gives back an equal value of the same kind, else None."""
    if not isinstance(value, (type(None), bool, int, float, str, list, dict)):
        return None
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError):
        return None
    back = json.loads(text)
    return text if back == value and _same_shape(back, value) else None


def _same_shape(back: Any, value: Any) -> bool:
    # json turns tuples into lists and int keys into strings, which equality alone misses.
    if type(back) is not type(value):
        # numpy scalars (float and int subclasses) come back as plain numbers: that is fine.
        return type(back) in (int, float) and not isinstance(value, bool)
    if isinstance(back, list):
        return all(_same_shape(x, y) for x, y in zip(back, value, strict=True))
    if isinstance(back, dict):
        return all(_same_shape(back[k], value[k]) for k in back)
    return True
