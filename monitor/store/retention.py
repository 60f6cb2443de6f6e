"""Retention: what the evaluator deletes once it is older than the configured periods."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from monitor.store.alerting_tables import AlertRow, PolicyTransitionRow
from monitor.store.ingest_repo import delete_older_than
from monitor.store.tables import Window


def delete_expired(session: Session, logs_cut: datetime, results_cut: datetime) -> dict[str, int]:
    """Delete logs and labels before ``logs_cut``; windows, policy transitions and resolved
    alerts before ``results_cut``. Returns the rows deleted per kind; the caller commits."""
    predictions, labels = delete_older_than(session, logs_cut)
    counts = {"predictions": predictions, "labels": labels}
    statements = {
        "windows": delete(Window).where(Window.end_ts < results_cut),
        "transitions": delete(PolicyTransitionRow).where(PolicyTransitionRow.at < results_cut),
        "alerts": delete(AlertRow).where(
            AlertRow.status == "resolved", AlertRow.resolved_at < results_cut
        ),
    }
    for name, stmt in statements.items():
        counts[name] = max(int(getattr(session.execute(stmt), "rowcount", 0) or 0), 0)
    return counts
