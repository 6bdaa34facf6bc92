"""The store: the metadata database (with its audit append) and the artifact store."""

from modelcycle.store import tables
from modelcycle.store.artifacts import ArtifactStore, Upload, check_digest, open_artifact_store
from modelcycle.store.audit_trail import AuditFilter, AuditTrail
from modelcycle.store.ids import resolve_id
from modelcycle.store.metadata import (
    MetadataStore,
    WriteTx,
    caused_by,
    normalize_db_url,
    redact_db_url,
)
from modelcycle.store.schema import SCHEMA_HEAD, SchemaStatus

__all__ = [
    "SCHEMA_HEAD",
    "ArtifactStore",
    "AuditFilter",
    "AuditTrail",
    "MetadataStore",
    "SchemaStatus",
    "Upload",
    "WriteTx",
    "caused_by",
    "check_digest",
    "normalize_db_url",
    "open_artifact_store",
    "redact_db_url",
    "resolve_id",
    "tables",
]
