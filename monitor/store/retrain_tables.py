"""Retraining tables: jobs with their history, the model registry, its audit trail, rollouts.

States
------
- job: ``queued -> running -> succeeded | failed`` (``history`` lists every transition).
- model version: ``candidate -> canary -> promoted | rolled_back``, or ``failed``; the first
  version of a model may be registered directly as ``promoted`` (the baseline).
- rollout: ``running -> promoted | rolled_back``; one row per step taken in ``rollout_steps``.
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
from monitor.vocabulary import JobState, RolloutState, VersionState

JOB_STATES = ("queued", "running", "succeeded", "failed")
VERSION_STATES = ("candidate", "canary", "promoted", "rolled_back", "failed", "retired")


class RetrainJob(Base):
    """One retraining job; ``trigger_key`` makes a trigger idempotent."""

    __tablename__ = "retrain_jobs"
    __table_args__ = (
        UniqueConstraint("trigger_key"),
        Index("ix_retrain_jobs_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trigger_key: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))  # policy | schedule | manual
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[JobState] = mapped_column(String(16), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    candidate_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """A registered model version; ``artifacts`` maps name -> {path, sha256, bytes}."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model", "version"),
        Index("ix_model_versions_model_state", "model", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    state: Mapped[VersionState] = mapped_column(String(16), default="candidate")
    parent_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("retrain_jobs.id", ondelete="SET NULL"), nullable=True
    )
    recipe: Mapped[str] = mapped_column(String(256), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegistryEvent(Base):
    """The audit trail: every state change and action on a model version or job."""

    __tablename__ = "registry_events"
    __table_args__ = (Index("ix_registry_events_model_ts", "model", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    job_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    event: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CanaryReport(Base):
    """A stored offline gate report: candidate vs current, with the verdict and reasons."""

    __tablename__ = "canary_reports"
    __table_args__ = (Index("ix_canary_reports_model_candidate", "model", "candidate_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    candidate_version: Mapped[str] = mapped_column(String(128))
    current_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    job_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rollout(Base):
    """An online canary rollout of ``candidate_version`` beside ``stable_version``."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_model_state", "model", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    stable_version: Mapped[str] = mapped_column(String(128))
    candidate_version: Mapped[str] = mapped_column(String(128))
    plan: Mapped[list[int]] = mapped_column(JSON, default=list)
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[RolloutState] = mapped_column(String(16), default="running")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RolloutStep(Base):
    """The evidence and outcome of one rollout step (``advance`` | ``promote`` | ``rollback``)."""

    __tablename__ = "rollout_steps"
    __table_args__ = (UniqueConstraint("rollout_id", "step_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    stable_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    canary_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
