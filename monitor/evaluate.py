"""Evaluate closed windows against the active reference profile and store the results.

Steps for each pending window (state ``closed``), in the caller's transaction:

1. Find the active profile of the window's model and version; without one, the window is marked
   ``no_profile`` (evaluated by nobody; :func:`reopen_windows` puts such windows back).
2. Load the window's logs that fit the model's shape (others are skipped and counted, see
   :func:`monitor.windows.load_window_logs`), score every family with the detector registry.
3. Insert one ``drift_results`` row per family, idempotently (unique ``window_id, family``).
4. Mark the window ``evaluated``.

A window that cannot be scored (its logs were deleted by retention, a stored profile cannot be
read, the logs are malformed) is marked ``failed`` with the error logged, inside a savepoint, so
one bad window never blocks the queue behind it.

On PostgreSQL pending windows are claimed with ``FOR UPDATE SKIP LOCKED``, so two evaluators
never score the same window at once; the unique key keeps results single even if they did.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.detection import detect
from monitor.errors import DriftwatchError
from monitor.impact.stage import assess_window
from monitor.profiles import activate_profile, active_profile, load_profiles
from monitor.results import DriftResult
from monitor.settings import DetectorSettings, Settings
from monitor.store.drift_queries import window_results
from monitor.store.tables import DriftResultRow, ReferenceProfile, Window
from monitor.store.windows_repo import lock_windows_in, move_version_windows
from monitor.vocabulary import WindowState
from monitor.windows import load_window_logs

log = logging.getLogger(__name__)

PENDING: WindowState = "closed"
EVALUATED: WindowState = "evaluated"
NO_PROFILE: WindowState = "no_profile"
FAILED: WindowState = "failed"


@dataclass(frozen=True)
class WindowEvaluation:
    """A window and the results of scoring it (empty when it had no active profile)."""

    window: Window
    results: list[DriftResult] = field(default_factory=list)
    profile_id: int | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # logs left out, by reason

    @property
    def drifted(self) -> bool:
        return any(r.drifted for r in self.results)


def result_row(window: Window, profile_id: int | None, result: DriftResult) -> DriftResultRow:
    """The stored form of ``result`` for ``window``."""
    return DriftResultRow(
        window_id=window.id,
        profile_id=profile_id,
        model=window.model,
        model_version=window.model_version,
        arm=window.arm,
        window_end=window.end_ts,
        family=result.family,
        kind=result.kind,
        method=result.method,
        statistic=float(result.statistic),
        p_value=None if result.p_value is None else float(result.p_value),
        effect_size=float(result.effect_size),
        threshold=float(result.threshold),
        alpha=float(result.alpha),
        drifted=bool(result.drifted),
        n_ref=int(result.n_ref),
        n_cur=int(result.n_cur),
        details=[dict(f) for f in result.to_dict()["features"]],
        schema_version=result.schema_version,
    )


def stored_results(session: Session, window_id: int) -> list[DriftResult]:
    """The results stored for a window, as :class:`DriftResult` objects."""
    rows = window_results(session, window_id)
    return [
        DriftResult.from_dict(
            {
                "family": r.family,
                "kind": r.kind,
                "method": r.method,
                "statistic": r.statistic,
                "p_value": r.p_value,
                "effect_size": r.effect_size,
                "threshold": r.threshold,
                "alpha": r.alpha,
                "drifted": r.drifted,
                "n_ref": r.n_ref,
                "n_cur": r.n_cur,
                "features": r.details,
                "schema_version": r.schema_version,
            }
        )
        for r in rows
    ]


#: (model, version) -> (active profile id or None, its fitted per-family profiles).
ProfileCache = dict[tuple[str, str], tuple[int | None, dict[Any, Any]]]


def _profiles(session: Session, window: Window, cache: ProfileCache) -> tuple[int | None, Any]:
    key = (window.model, window.model_version)
    if key not in cache:
        profile = active_profile(session, *key)
        cache[key] = (
            (None, {}) if profile is None else (profile.id, load_profiles(session, profile.id))
        )
    return cache[key]


def evaluate_window(
    session: Session,
    settings: Settings,
    window: Window,
    now: datetime | None = None,
    *,
    profiles: ProfileCache | None = None,
) -> WindowEvaluation:
    """Score one window against its model version's active profile and store the results.

    ``profiles`` caches the fitted profiles across the windows of one transaction.
    """

    now = now or datetime.now(UTC)
    profile_id, fitted = _profiles(session, window, {} if profiles is None else profiles)
    if profile_id is None:
        window.state, window.evaluated_at = NO_PROFILE, now
        session.flush()
        log.warning(
            "no active profile for %s %s: window %d not evaluated",
            window.model,
            window.model_version,
            window.id,
        )
        return WindowEvaluation(window)
    logs = load_window_logs(session, window)
    batch = logs.batch
    results = detect(fitted, batch, settings.detectors, model=window.model).results
    try:  # one savepoint for all families; one per family only if some were stored already
        with session.begin_nested():
            session.add_all([result_row(window, profile_id, result) for result in results])
    except IntegrityError:
        for result in results:
            try:
                with session.begin_nested():
                    session.add(result_row(window, profile_id, result))
            except IntegrityError:
                log.info("result %s of window %d already stored", result.family, window.id)
    assess_window(session, window, profile_id, batch, settings.policy.impact, now, logs.ids)
    window.state, window.evaluated_at = EVALUATED, now
    session.flush()
    return WindowEvaluation(window, list(results), profile_id, logs.skipped)


def evaluate_pending(
    session: Session,
    settings: Settings,
    now: datetime | None = None,
    limit: int | None = None,
    models: Collection[str] | None = None,
) -> list[WindowEvaluation]:
    """Evaluate closed windows, oldest first (at most ``limit``; only ``models`` when given);
    the caller commits.

    Returns the evaluations of the windows scored (or found without a profile); windows that
    failed are marked ``failed`` and left out.
    """
    evaluations = []
    profiles: ProfileCache = {}
    for window in lock_windows_in(session, PENDING, models=models, limit=limit):
        try:
            with session.begin_nested():
                evaluations.append(
                    evaluate_window(session, settings, window, now, profiles=profiles)
                )
        except (DriftwatchError, ValueError, FloatingPointError) as exc:
            log.error(
                "window %d (%s %s %s) cannot be evaluated: %s",
                window.id,
                window.model,
                window.model_version,
                window.arm,
                exc,
            )
            window.state, window.evaluated_at = FAILED, now or datetime.now(UTC)
            session.flush()
    return evaluations


def reopen_windows(session: Session, model: str, version: str) -> int:
    """Put ``no_profile`` windows of a model version back in the queue; returns how many."""
    return move_version_windows(session, model, version, NO_PROFILE, PENDING)


def switch_profile(session: Session, profile_id: int) -> tuple[ReferenceProfile, int]:
    """Make ``profile_id`` its version's active profile and requeue the windows that waited
    for one; returns the profile and how many windows were reopened (every door calls this)."""
    row = activate_profile(session, profile_id)
    return row, reopen_windows(session, row.model, row.model_version)


def compare_arms(
    stable: LogBatch, canary: LogBatch, detectors: DetectorSettings, model: str, seed: int = 0
) -> list[DriftResult]:
    """Score a canary-arm batch against a profile fitted on the stable arm (same detectors).

    Pure: no store access. Use :func:`monitor.store.logs.load_range` with ``arm=`` to get the
    two batches of one period.
    """

    return list(detect(stable, canary, detectors, model=model, seed=seed).results)
