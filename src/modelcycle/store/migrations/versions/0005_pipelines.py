"""Pipeline runs and their steps (the step cache is the succeeded steps' cache keys).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("ref", sa.String(500), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("failure", sa.String(20), nullable=True),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("datasets", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("resumed_from", sa.String(32), nullable=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("heartbeat_at", sa.String(32), nullable=True),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_pipeline_started_at", "runs", ["pipeline", "started_at"])
    op.create_table(
        "run_steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("datasets", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=False),
        sa.Column("log_sha256", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cached_from", sa.String(32), nullable=True),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.UniqueConstraint("run_id", "name", name="uq_run_steps_run_id_name"),
    )
    op.create_index("ix_run_steps_cache_key", "run_steps", ["cache_key"])


def downgrade() -> None:
    op.drop_index("ix_run_steps_cache_key", "run_steps")
    op.drop_table("run_steps")
    op.drop_index("ix_runs_pipeline_started_at", "runs")
    op.drop_index("ix_runs_status", "runs")
    op.drop_table("runs")
