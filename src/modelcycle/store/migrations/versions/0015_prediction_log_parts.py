"""The Parquet prediction-log sink's parts: where each part file is, and its aggregates
(counts, latency sketch, column summaries) per model version and hour.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log_parts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("part_id", sa.String(32), nullable=False),
        sa.Column("location", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("shadow", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("hour", sa.String(13), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("first_at", sa.String(32), nullable=False),
        sa.Column("last_at", sa.String(32), nullable=False),
        sa.Column("latency", sa.Text, nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Index("ix_prediction_log_parts_model_hour", "model_name", "hour"),
        sa.Index("ix_prediction_log_parts_part_id", "part_id"),
    )


def downgrade() -> None:
    op.drop_table("prediction_log_parts")
