"""Impact tables: a reference's calibration, each window's accuracy estimate, per-log scores,
and the label queue.

``window_estimates`` holds the label-free estimate of a window beside its realized accuracy,
which late labels update; ``log_scores`` one row per evaluated log (calibrated confidence and
outlier score) for the worst-images grid and the label queue. Rows go with their window,
prediction or profile (``ON DELETE CASCADE``), so retention needs nothing new.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base, BigId, UTCDateTime, utcnow


class ImpactProfileRow(Base):
    """The :class:`monitor.impact.profile.ImpactProfile` of one reference profile."""

    __tablename__ = "impact_profiles"

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("reference_profiles.id", ondelete="CASCADE"), primary_key=True
    )
    temperature: Mapped[float] = mapped_column(Float)
    n_labelled: Mapped[int] = mapped_column(Integer)
    ece_before: Mapped[float | None] = mapped_column(Float, nullable=True)
    ece_after: Mapped[float | None] = mapped_column(Float, nullable=True)
    reference_accuracy: Mapped[float] = mapped_column(Float)
    reference_realized: Mapped[float | None] = mapped_column(Float, nullable=True)
    outlier_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outlier_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WindowEstimateRow(Base):
    """Estimated (label-free) and realized accuracy of one window, against its reference."""

    __tablename__ = "window_estimates"
    __table_args__ = (
        Index("ix_window_estimates_model_version_end", "model", "model_version", "window_end"),
    )

    window_id: Mapped[int] = mapped_column(
        ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True
    )
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("reference_profiles.id", ondelete="SET NULL"), nullable=True
    )
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(128))
    arm: Mapped[str] = mapped_column(String(16), default="all")
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    n: Mapped[int] = mapped_column(Integer)
    level: Mapped[float] = mapped_column(Float)
    estimated_accuracy: Mapped[float] = mapped_column(Float)
    estimated_low: Mapped[float] = mapped_column(Float)
    estimated_high: Mapped[float] = mapped_column(Float)
    estimated_se: Mapped[float] = mapped_column(Float)
    reference_accuracy: Mapped[float] = mapped_column(Float)
    reference_se: Mapped[float] = mapped_column(Float)
    reference_realized: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_labelled: Mapped[int] = mapped_column(Integer, default=0)
    realized_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    realized_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    realized_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    outlier_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    outlier_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    temperature: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LogScoreRow(Base):
    """One evaluated log's calibrated confidence and outlier score (None without features)."""

    __tablename__ = "log_scores"
    __table_args__ = (Index("ix_log_scores_window_id", "window_id"),)

    prediction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    window_id: Mapped[int] = mapped_column(BigId, ForeignKey("windows.id", ondelete="CASCADE"))
    calibrated_confidence: Mapped[float] = mapped_column(Float)
    outlier_score: Mapped[float | None] = mapped_column(Float, nullable=True)


class LabelQueueRow(Base):
    """A log exported for labelling: why it was picked and how urgent it was."""

    __tablename__ = "label_queue"
    __table_args__ = (Index("ix_label_queue_model_version", "model", "model_version"),)

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    prediction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("predictions.id", ondelete="CASCADE")
    )
    model_version: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(16))
    priority: Mapped[float] = mapped_column(Float)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
