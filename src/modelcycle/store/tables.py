"""The metadata schema as SQLAlchemy Core tables: the code's view of what the migrations build.

Change a table here only together with a new migration under ``migrations/versions``; a test
compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "api_tokens",
    "artifacts",
    "audit_events",
    "audit_head",
    "batch_chunks",
    "batch_jobs",
    "dataset_versions",
    "deployments",
    "drift_results",
    "event_cursors",
    "feedback",
    "idempotency_keys",
    "jobs",
    "metadata",
    "model_aliases",
    "model_evaluations",
    "model_notes",
    "model_versions",
    "prediction_log",
    "prediction_log_parts",
    "promotion_approvals",
    "promotion_requests",
    "registered_models",
    "run_steps",
    "runs",
    "workspace_info",
]

metadata = MetaData()

workspace_info = Table(
    "workspace_info",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# at: ISO 8601 UTC text of fixed width; payload: canonical JSON text (exactly what is hashed).
audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Index("ix_audit_events_subject", "subject"),
    Index("ix_audit_events_action", "action"),
)

# One row (id = 1): the chain head. Writers lock it to append, so the chain has one order.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("label", String(500), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
)

# -- datasets (migration 0003) ----------------------------------------------------------------
# schema and profile: canonical JSON text.
dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("num_rows", BigInteger, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("schema", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("description", Text, nullable=True),
    UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),
    Index("ix_dataset_versions_name_sha256", "name", "sha256"),
)
# -- end datasets ------------------------------------------------------------------------------

# -- registry (migration 0004) ----------------------------------------------------------------
registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
)

# signature, metrics, params, tags, datasets, requirements: canonical JSON text.
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), ForeignKey("registered_models.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("flavor", String(50), nullable=False),
    Column("signature", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("datasets", Text, nullable=False),
    Column("requirements", Text, nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("example_sha256", String(64), nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), ForeignKey("registered_models.name"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# Figures measured by promotion gates (and later evaluations): one row per version and data set.
model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("dataset", String(300), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("value", Float, nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_model_evaluations_name_version", "name", "version"),
)

# Notes on a version (migration 0011): kept, never edited; each with its author and time.
model_notes = Table(
    "model_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("note", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("at", String(32), nullable=False),
    Index("ix_model_notes_name_version", "name", "version"),
)

# Promotion requests (migration 0013): an alias move waiting for approvals under a policy.
promotion_requests = Table(
    "promotion_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("alias", String(100), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("state", String(20), nullable=False),
    Column("approvals_needed", Integer, nullable=False),
    Column("policy", Text, nullable=False),
    Column("gate", Text, nullable=True),
    Column("forced", Boolean, nullable=False),
    Column("reason", Text, nullable=True),
    Column("origin", Text, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=True),
    Column("decided_by", String(200), nullable=True),
    Column("decided_at", String(32), nullable=True),
    Column("comment", Text, nullable=True),
    Index("ix_promotion_requests_state_requested", "state", "requested_at"),
    Index("ix_promotion_requests_name_alias", "name", "alias"),
)

# One row per approver of a request: the same person approving twice counts once.
promotion_approvals = Table(
    "promotion_approvals",
    metadata,
    Column("request_id", String(32), ForeignKey("promotion_requests.id"), primary_key=True),
    Column("approver", String(200), primary_key=True),
    Column("at", String(32), nullable=False),
    Column("comment", Text, nullable=True),
)
# -- end registry ------------------------------------------------------------------------------

# -- pipelines (migration 0005) ---------------------------------------------------------------
# params, metrics, code, environment, datasets, models: canonical JSON text. heartbeat_at is
# refreshed by the running process so that a run whose process died can be told apart.
runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("ref", String(500), nullable=True),
    Column("status", String(20), nullable=False),
    Column("failure", String(20), nullable=True),
    Column("params", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("datasets", Text, nullable=False),
    Column("models", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("resumed_from", String(32), nullable=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("heartbeat_at", String(32), nullable=True),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32), nullable=True),
    Column("created_by", String(200), nullable=False),
    Index("ix_runs_status", "status"),
    Index("ix_runs_pipeline_started_at", "pipeline", "started_at"),
    Index("ix_runs_started_at_id", "started_at", "id"),
)

# One row per step of a run; a succeeded row with a cache_key is what the step cache finds.
run_steps = Table(
    "run_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("cache_key", String(64), nullable=True),
    Column("source_sha256", String(64), nullable=False),
    Column("params", Text, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("datasets", Text, nullable=False),
    Column("models", Text, nullable=False),
    Column("log_sha256", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("cached_from", String(32), nullable=True),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32), nullable=True),
    Column("duration_s", Float, nullable=True),
    UniqueConstraint("run_id", "name", name="uq_run_steps_run_id_name"),
    Index("ix_run_steps_cache_key", "cache_key"),
)
# -- end pipelines -----------------------------------------------------------------------------

# -- scoring (migration 0006) -----------------------------------------------------------------
# One row per scored row (row_index: its position in the request). inputs/outputs: JSON text.
# source: "online" or "batch". Written by MetadataStore.append_rows (observations, not audited).
prediction_log = Table(
    "prediction_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("request_id", String(160), nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("source", String(20), nullable=False),
    Column("job_id", String(32), nullable=True),
    Column("shadow", Boolean, nullable=False),
    Column("at", String(32), nullable=False),
    Column("latency_ms", Float, nullable=True),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),
    # Set on rows ingested from a spill file (its name): re-ingesting the file replaces them.
    Column("spill_id", String(32), nullable=True),
    Index("ix_prediction_log_model_at", "model_name", "at"),
    Index("ix_prediction_log_request_id", "request_id"),
    Index("ix_prediction_log_spill_id", "spill_id"),
)

feedback = Table(
    "feedback",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("request_id", String(160), nullable=False),
    Column("row_index", Integer, nullable=True),
    Column("model_name", String(200), nullable=True),
    Column("label", Text, nullable=False),
    Column("at", String(32), nullable=False),
    Index("ix_feedback_request_id", "request_id"),
)

# Tokens are stored as a hash only; token_id is the public prefix shown in listings.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(128), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", String(32), nullable=True),
)
# -- end scoring -------------------------------------------------------------------------------

# -- batch scoring (migration 0007) -----------------------------------------------------------
batch_jobs = Table(
    "batch_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=False),
    Column("engine", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("params", Text, nullable=False),
    Column("rows_in", BigInteger, nullable=False),
    Column("rows_out", BigInteger, nullable=False),
    Column("chunks_total", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("hostname", String(200), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("heartbeat_at", String(32), nullable=True),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32), nullable=True),
    Column("created_by", String(200), nullable=False),
)

# A chunk is committed (row written) only after its part file is complete and renamed.
batch_chunks = Table(
    "batch_chunks",
    metadata,
    Column("job_id", String(32), ForeignKey("batch_jobs.id"), primary_key=True),
    Column("chunk", Integer, primary_key=True, autoincrement=False),
    Column("rows", BigInteger, nullable=False),
    Column("part", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("committed_at", String(32), nullable=False),
)
# -- end batch scoring -------------------------------------------------------------------------

# -- monitoring (migration 0008) --------------------------------------------------------------
# result: the full DriftReport as canonical JSON text.
drift_results = Table(
    "drift_results",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model_name", String(200), nullable=True),
    Column("model_version", Integer, nullable=True),
    Column("reference", Text, nullable=False),
    Column("current", Text, nullable=False),
    Column("window_start", String(32), nullable=True),
    Column("window_end", String(32), nullable=True),
    Column("at", String(32), nullable=False),
    Column("dataset_drift", Boolean, nullable=False),
    Column("share_drifted", Float, nullable=False),
    Column("result", Text, nullable=False),
    Index("ix_drift_results_model_at", "model_name", "at"),
)
# -- end monitoring ----------------------------------------------------------------------------

# -- deploy (migration 0009) ------------------------------------------------------------------
# details: canonical JSON text (ports, pids, image, manifest ids ...).
deployments = Table(
    "deployments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("target", String(20), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("bundle_sha256", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("color", String(10), nullable=True),
    Column("url", Text, nullable=True),
    Column("details", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ix_deployments_endpoint", "endpoint"),
)
# -- end deploy --------------------------------------------------------------------------------

# -- automations (migration 0010) -------------------------------------------------------------
# One row per unit of work. idempotency_key = rule + causing event: the unique constraint is
# what makes "one effect per event" hold when two dispatchers or workers race.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("rule", String(200), nullable=True),
    Column("event_seq", BigInteger, nullable=True),
    Column("idempotency_key", String(300), nullable=False, unique=True),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("params", Text, nullable=False),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("log", Text, nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", String(32), nullable=True),
    Column("run_after", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ix_jobs_state_run_after", "state", "run_after"),
)

# How far the rule dispatcher has read the audit log (the log doubles as the event outbox).
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)
# -- end automations ---------------------------------------------------------------------------

# The management API's Idempotency-Key answers (migration 0014): bookkeeping, not audited.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("caller", String(200), primary_key=True),
    Column("scope", String(300), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("status", Integer, nullable=True),
    Column("body", Text, nullable=True),
    Column("created_at", String(32), nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# The Parquet prediction-log sink's index and aggregates (migration 0015): one row per part
# file and (version, shadow, source) in it. location: the part's URL or path in the object
# store; hour: YYYY-MM-DDTHH (UTC); latency/columns: JSON (mergeable sketches and summaries).
# Observations like prediction_log, so not audited; re-ingesting a part replaces its rows.
prediction_log_parts = Table(
    "prediction_log_parts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("part_id", String(32), nullable=False),
    Column("location", String(1000), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("shadow", Boolean, nullable=False),
    Column("source", String(20), nullable=False),
    Column("hour", String(13), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("first_at", String(32), nullable=False),
    Column("last_at", String(32), nullable=False),
    Column("latency", Text, nullable=False),
    Column("columns", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_prediction_log_parts_model_hour", "model_name", "hour"),
    Index("ix_prediction_log_parts_part_id", "part_id"),
)
