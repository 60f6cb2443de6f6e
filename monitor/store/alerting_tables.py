"""Alerting tables: policy state, its transitions, alerts (ack/silence) and their deliveries.

Deliveries are an outbox: the evaluator writes ``pending`` rows in the same transaction as the
decision, and the router sends them later, so a dead channel never blocks evaluation, and a
delivered row is never sent again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base, BigId, UTCDateTime, utcnow
from monitor.store.tables import DriftResultRow
from monitor.vocabulary import AlertStatus, Severity


class PolicyStateRow(Base):
    """The remembered :class:`monitor.policy.rules.PolicyState` of one model/version/family."""

    __tablename__ = "policy_states"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    family: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="ok")
    drift_streak: Mapped[int] = mapped_column(Integer, default=0)
    clean_streak: Mapped[int] = mapped_column(Integer, default=0)
    severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_paged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_window_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyTransitionRow(Base):
    """A change of state with its reason and evidence (and whether it asked for a retrain)."""

    __tablename__ = "policy_transitions"
    __table_args__ = (
        UniqueConstraint("model", "model_version", "family", "window_id"),
        Index("ix_policy_transitions_model_at", "model", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(32))
    window_id: Mapped[int] = mapped_column(BigId)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    notify: Mapped[bool] = mapped_column(Boolean)
    severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    retrain: Mapped[bool] = mapped_column(Boolean, default=False)
    retrain_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertRow(Base):
    """One alert of a model/version/family: firing until resolved; can be acked or silenced."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_status", "status"),
        Index("ix_alerts_model_version_family", "model", "model_version", "family"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    family: Mapped[str] = mapped_column(String(32))
    severity: Mapped[Severity] = mapped_column(String(16))
    status: Mapped[AlertStatus] = mapped_column(String(16), default="firing")
    dedup_key: Mapped[str] = mapped_column(String(255))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    paged: Mapped[bool] = mapped_column(Boolean, default=True)
    grouped_into: Mapped[int | None] = mapped_column(BigId, nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    silenced_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertDeliveryRow(Base):
    """One message of one alert to one channel: pending, delivered, silenced or gave_up."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", "event_key"),
        Index("ix_alert_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))
    event_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


#: The API's drift history of one model over a time range reads this index in order (a
#: range scan, no sort), whatever the number of versions and families.
DRIFT_HISTORY_INDEX = Index(
    "ix_drift_results_model_window_end_id",
    DriftResultRow.model,
    DriftResultRow.window_end,
    DriftResultRow.id,
)
