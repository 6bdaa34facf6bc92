"""Promotion requests (issue 16): an alias move waiting for approvals under a promotion policy,
and the approvals given to it (one row per approver, so the same person counts once).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promotion_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("approvals_needed", sa.Integer, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("gate", sa.Text, nullable=True),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_promotion_requests_state_requested",
        "promotion_requests",
        ["state", "requested_at"],
    )
    op.create_index("ix_promotion_requests_name_alias", "promotion_requests", ["name", "alias"])
    op.create_table(
        "promotion_approvals",
        sa.Column(
            "request_id",
            sa.String(32),
            sa.ForeignKey("promotion_requests.id"),
            primary_key=True,
        ),
        sa.Column("approver", sa.String(200), primary_key=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("promotion_approvals")
    op.drop_index("ix_promotion_requests_name_alias", "promotion_requests")
    op.drop_index("ix_promotion_requests_state_requested", "promotion_requests")
    op.drop_table("promotion_requests")
