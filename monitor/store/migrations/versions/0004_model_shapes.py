"""model_shapes: the class count and embedding dimension pinned per model at first sight

Revision ID: 0004
Revises: 0007
Create Date: 2026-12-02 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import monitor.store.base
from alembic import op

revision: str = "0004"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_shapes",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("pinned_at", monitor.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_model_shapes")),
    )


def downgrade() -> None:
    op.drop_table("model_shapes")
