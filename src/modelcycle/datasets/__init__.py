"""Data sets: versions by content hash, schemas, and per-column profiles (the drift reference)."""

from modelcycle.datasets._ingest import csv_convert_options, parquet_parts, read_table
from modelcycle.datasets.catalog import AddResult, DatasetCatalog, DatasetRef, parse_dataset_ref
from modelcycle.datasets.diff import ColumnShift, DatasetDiff, TypeChange, psi
from modelcycle.datasets.profile import PROFILE_VERSION, column_kind, profile_table
from modelcycle.datasets.samples import SAMPLES, make_credit
from modelcycle.datasets.schema import (
    ColumnSpec,
    arrow_type,
    is_safe_cast,
    schema_from_json,
    schema_of,
)

__all__ = [
    "PROFILE_VERSION",
    "SAMPLES",
    "AddResult",
    "ColumnShift",
    "ColumnSpec",
    "DatasetCatalog",
    "DatasetDiff",
    "DatasetRef",
    "TypeChange",
    "arrow_type",
    "column_kind",
    "csv_convert_options",
    "is_safe_cast",
    "make_credit",
    "parquet_parts",
    "parse_dataset_ref",
    "profile_table",
    "psi",
    "read_table",
    "schema_from_json",
    "schema_of",
]
