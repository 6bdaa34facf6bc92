"""Stored drift results.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_results",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("current", sa.Text, nullable=False),
        sa.Column("window_start", sa.String(32), nullable=True),
        sa.Column("window_end", sa.String(32), nullable=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("dataset_drift", sa.Boolean, nullable=False),
        sa.Column("share_drifted", sa.Float, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
    )
    op.create_index("ix_drift_results_model_at", "drift_results", ["model_name", "at"])


def downgrade() -> None:
    op.drop_index("ix_drift_results_model_at", "drift_results")
    op.drop_table("drift_results")
