"""grafana views: the read-only contract (grafana_* views, role driftwatch_readonly)

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-02 13:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "driftwatch_readonly"
VIEWS = {
    "grafana_drift_results": (
        "SELECT window_end AS time, model, model_version, arm, family, kind, method, "
        "statistic, p_value, effect_size, threshold, drifted, n_ref, n_cur FROM drift_results"
    ),
    "grafana_windows": (
        "SELECT end_ts AS time, id AS window_id, model, model_version, arm, start_ts, n, state "
        "FROM windows"
    ),
    "grafana_alerts": (
        "SELECT opened_at AS time, id AS alert_id, model, model_version, family, severity, "
        "status, resolved_at, acked_at, acked_by, silenced_until, summary, reopen_count "
        "FROM alerts"
    ),
}


def upgrade() -> None:
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {select}")
    if op.get_bind().dialect.name != "postgresql":
        return
    # Roles are cluster-wide: another database of the same server may have created it.
    op.execute(
        f"DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO {ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
