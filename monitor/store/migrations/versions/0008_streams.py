"""streams: the registry of (model, version, arm) that window closing probes by index

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-02 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import monitor.store.base
from alembic import op

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "streams",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("first_seen_at", monitor.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "model_version", "arm", name=op.f("pk_streams")),
    )
    # one scan, once: the streams that logged before the registry existed
    op.execute(
        "INSERT INTO streams (model, model_version, arm, first_seen_at) "
        "SELECT model, model_version, COALESCE(arm, 'all'), MIN(ingested_at) FROM predictions "
        "GROUP BY model, model_version, COALESCE(arm, 'all')"
    )
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.drop_index("ix_predictions_model_version_id")
        batch_op.create_index(
            "ix_predictions_stream_id", ["model", "model_version", "arm", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.drop_index("ix_predictions_stream_id")
        batch_op.create_index(
            "ix_predictions_model_version_id", ["model", "model_version", "id"], unique=False
        )
    op.drop_table("streams")
