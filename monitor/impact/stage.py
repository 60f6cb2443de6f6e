"""The impact stage: calibrate at reference time, estimate and score every evaluated window,
and refresh realized accuracy as late labels arrive. Functions take a Session, never commit.

1. :func:`fit_reference_impact` (called when a reference profile is fitted): temperature
   scaling on the labelled reference logs, the reference's ECE before/after, its own estimate
   and the outlier model, stored in ``impact_profiles``.
2. :func:`assess_window` (called when a window is evaluated): calibrated confidence and outlier
   score per log (``log_scores``), the window's CBPE estimate with its interval, its realized
   accuracy on the labels it has, and its outlier share (``window_estimates``).
3. :func:`refresh_realized` (each evaluator tick): recompute the realized accuracy of recent
   windows that still miss labels.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.impact.estimate import estimate_accuracy, realized_accuracy
from monitor.impact.profile import ImpactProfile, fit_impact
from monitor.impact.view import Impact, impact_of
from monitor.settings import ImpactSettings
from monitor.stats.outliers import score_outliers
from monitor.store.impact_repo import (
    estimates_to_refresh,
    impact_profile_row,
    save_estimate,
    save_impact_profile,
    save_log_scores,
    window_estimate,
    window_labels,
    window_prediction_ids,
)
from monitor.store.impact_tables import ImpactProfileRow, WindowEstimateRow
from monitor.store.tables import Window

log = logging.getLogger(__name__)


def fit_reference_impact(
    session: Session, profile_id: int, batch: LogBatch, settings: ImpactSettings
) -> ImpactProfile:
    """Fit and store the impact profile of reference profile ``profile_id``."""
    prof = fit_impact(batch, min_labelled=settings.min_calibration_labels, level=settings.level)
    save_impact_profile(
        session,
        ImpactProfileRow(
            profile_id=profile_id,
            temperature=prof.temperature,
            n_labelled=prof.n_labelled,
            ece_before=prof.ece_before,
            ece_after=prof.ece_after,
            reference_accuracy=prof.reference.value,
            reference_realized=None
            if prof.reference_realized is None
            else prof.reference_realized.value,
            outlier_source=None if prof.outliers is None else prof.outliers.source,
            outlier_threshold=None if prof.outliers is None else prof.outliers.threshold,
            schema_version=prof.schema_version,
            payload=prof.to_bytes(),
        ),
    )
    return prof


def load_impact(session: Session, profile_id: int) -> ImpactProfile | None:
    """The stored impact profile of ``profile_id`` (None for profiles fitted without one)."""
    row = impact_profile_row(session, profile_id)
    return None if row is None else ImpactProfile.from_bytes(row.payload)


def _calibration_se(prof: ImpactProfile, settings: ImpactSettings) -> float:
    fitted = prof.n_labelled >= settings.min_calibration_labels
    return prof.reference_realized.se if fitted and prof.reference_realized else 0.0


def _realized(
    row: WindowEstimateRow, predicted: np.ndarray, labels: np.ndarray, level: float
) -> None:
    row.n_labelled = int((labels >= 0).sum())
    if row.n_labelled:
        r = realized_accuracy(predicted, labels, level)
        row.realized_accuracy, row.realized_low, row.realized_high = r.value, r.low, r.high


def assess_window(
    session: Session,
    window: Window,
    profile_id: int,
    batch: LogBatch,
    settings: ImpactSettings,
    now: datetime | None = None,
    ids: np.ndarray | None = None,
) -> WindowEstimateRow | None:
    """Score ``window``'s logs and store its estimate (None when its profile has no impact
    part, e.g. one fitted before calibration existed). ``ids`` are the prediction ids of the
    rows of ``batch`` (by default all of the window's)."""
    prof = load_impact(session, profile_id)
    if prof is None:
        return None
    now = now or datetime.now(UTC)
    calibrated = prof.calibrated(batch.probs).max(axis=1)
    est = estimate_accuracy(calibrated, settings.level, _calibration_se(prof, settings))
    scores = score_outliers(prof.outliers, batch)
    ids = window_prediction_ids(session, window) if ids is None else ids
    if len(ids) != len(batch):
        raise ValueError(f"window {window.id}: {len(ids)} ids for {len(batch)} logs")
    save_log_scores(session, window.id, ids, calibrated, scores)
    share = None
    if scores is not None and prof.outliers is not None and np.isfinite(scores).any():
        share = float(np.mean(scores[np.isfinite(scores)] > prof.outliers.threshold))
    row = WindowEstimateRow(
        window_id=window.id,
        profile_id=profile_id,
        model=window.model,
        model_version=window.model_version,
        arm=window.arm,
        window_end=window.end_ts,
        n=len(batch),
        level=settings.level,
        estimated_accuracy=est.value,
        estimated_low=est.low,
        estimated_high=est.high,
        estimated_se=est.se,
        reference_accuracy=prof.reference.value,
        reference_se=prof.reference.se,
        reference_realized=None
        if prof.reference_realized is None
        else prof.reference_realized.value,
        outlier_share=share,
        outlier_threshold=None if prof.outliers is None else prof.outliers.threshold,
        temperature=prof.temperature,
        created_at=now,
        updated_at=now,
    )
    labels = batch.labels if batch.labels is not None else np.full(len(batch), -1)
    _realized(row, batch.predicted, labels, settings.level)
    save_estimate(session, row)
    return row


def window_impact(session: Session, window_id: int, settings: ImpactSettings) -> Impact | None:
    """The impact of an evaluated window (None when it has no estimate)."""
    row = window_estimate(session, window_id)
    return None if row is None else impact_of(row, settings)


def refresh_realized(
    session: Session,
    now: datetime | None = None,
    *,
    days: float = 2.0,
    limit: int = 200,
) -> int:
    """Update the realized accuracy of up to ``limit`` windows of the last ``days`` that were
    missing labels (least recently checked first, so every tick moves on); returns how many
    changed."""
    now = now or datetime.now(UTC)
    changed = 0
    for row, window in estimates_to_refresh(session, now - timedelta(days=days), limit):
        predicted, labels = window_labels(session, window)
        before = row.n_labelled
        _realized(row, predicted, labels, row.level)
        row.updated_at = now
        changed += row.n_labelled != before
    session.flush()
    if changed:
        log.info("realized accuracy updated for %d window(s) after late labels", changed)
    return changed
