"""An index on runs (started_at, id): the newest-first run listing and its page cursor
(``GET /api/v1/runs``, ``runs list``) read an index range instead of sorting every run.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_started_at_id", "runs", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_started_at_id", "runs")
