"""Core tables: prediction logs, labels, reference profiles, windows and drift results."""

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
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base, BigId, UTCDateTime, utcnow


class Prediction(Base):
    """One prediction log. Arrays are little-endian bytes: ``probs`` float32, ``embedding``
    float16 or float32 as sent (``embedding_dtype``)."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("model", "request_id"),
        Index("ix_predictions_model_version_ts", "model", "model_version", "ts"),
        # a stream's logs in id order: window closing, loading, the stream probe
        Index("ix_predictions_stream_id", "model", "model_version", "arm", "id"),
        Index("ix_predictions_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    predicted_class: Mapped[int] = mapped_column(Integer)
    n_classes: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    probs: Mapped[bytes] = mapped_column(LargeBinary)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_dtype: Mapped[str | None] = mapped_column(String(8), nullable=True)
    pixel_stats: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    arm: Mapped[str | None] = mapped_column(String(16), nullable=True)
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tags: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)


class Label(Base):
    """Ground truth, kept even when its prediction has not arrived yet."""

    __tablename__ = "labels"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferenceProfile(Base):
    """A fitted reference for one model version; at most one active per (model, version)."""

    __tablename__ = "reference_profiles"
    __table_args__ = (Index("ix_reference_profiles_model_version", "model", "model_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    n_ref: Mapped[int] = mapped_column(Integer)
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProfilePart(Base):
    """One detector family's fitted state inside a profile (``kind`` names its format)."""

    __tablename__ = "profile_parts"
    __table_args__ = (UniqueConstraint("profile_id", "family"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("reference_profiles.id", ondelete="CASCADE"))
    family: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class Window(Base):
    """A closed tumbling window: prediction ids ``first_id..last_id`` of one model/version/arm."""

    __tablename__ = "windows"
    __table_args__ = (
        UniqueConstraint("model", "model_version", "arm", "first_id"),
        Index("ix_windows_state", "state"),
        Index("ix_windows_model_version_end_ts", "model", "model_version", "end_ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    arm: Mapped[str] = mapped_column(String(16), default="all")
    first_id: Mapped[int] = mapped_column(BigId)
    last_id: Mapped[int] = mapped_column(BigId)
    start_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    end_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    n: Mapped[int] = mapped_column(Integer)
    closed_by: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="closed")
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DriftResultRow(Base):
    """A stored :class:`monitor.results.DriftResult` for one window and family."""

    __tablename__ = "drift_results"
    __table_args__ = (
        UniqueConstraint("window_id", "family"),
        Index(
            "ix_drift_results_model_family_end", "model", "model_version", "family", "window_end"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id", ondelete="CASCADE"))
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("reference_profiles.id", ondelete="SET NULL"), nullable=True
    )
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    arm: Mapped[str] = mapped_column(String(16), default="all")
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    family: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64))
    statistic: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    effect_size: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    alpha: Mapped[float] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    n_ref: Mapped[int] = mapped_column(Integer)
    n_cur: Mapped[int] = mapped_column(Integer)
    details: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
