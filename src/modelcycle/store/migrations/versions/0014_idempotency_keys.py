"""Idempotency keys of the management API in the database, so that a retried POST reaching
another worker (or another host) of ``modelcycle server`` gets the first answer again.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(200), primary_key=True),
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Index("ix_idempotency_keys_created_at", "created_at"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
