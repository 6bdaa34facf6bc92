"""Data set versions: content hash, schema, profile.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("num_rows", sa.BigInteger, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),
    )
    op.create_index("ix_dataset_versions_name_sha256", "dataset_versions", ["name", "sha256"])


def downgrade() -> None:
    op.drop_index("ix_dataset_versions_name_sha256", "dataset_versions")
    op.drop_table("dataset_versions")
