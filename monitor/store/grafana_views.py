"""The read-only contract Grafana (and any other reader) queries: ``grafana_*`` views over the
app's tables, and the PostgreSQL role ``driftwatch_readonly`` that may read them and nothing
else. Migration 0006 creates both; a login user for Grafana is granted the role
(``CREATE ROLE grafana LOGIN PASSWORD '...' IN ROLE driftwatch_readonly``).

Columns may be added to a view; none is renamed or removed without a new view name.
"""

from __future__ import annotations

#: The role that reads the views (NOLOGIN; cluster-wide, so downgrades keep it).
READONLY_ROLE = "driftwatch_readonly"

#: view name -> SELECT it is defined by (migration 0006 holds its own frozen copy).
VIEWS: dict[str, str] = {
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
