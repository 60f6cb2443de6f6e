"""Tumbling windows per model, version and arm, closed by count or by time, whichever first.

A window is a row in ``windows`` covering the prediction ids ``first_id..last_id`` of one stream
(model, version, arm; logs without an arm form the stream ``"all"``). Windows of a stream tile
its ids without gaps or overlap: each starts right after the previous one's ``last_id``.

Closing rules, applied to the pending logs of a stream in id order (see :func:`plan_window`):

1. ``max_count`` pending logs close a window by **count**.
2. Otherwise the window spans ``max_seconds`` from its first log's timestamp: it closes by
   **time** as soon as a later log falls outside that span, or the clock passes its end.
3. A time-closed window with fewer than ``min_count`` logs waits (and grows) until it has them.

Only **settled** logs are windowed: logs stored at least ``settle_seconds`` ago by the wall
clock (ids are handed out before commit, so on PostgreSQL a lower id can become visible after a
higher one; a window must not close over an id that is still in flight, or that log would
never be evaluated). The first unsettled log, in id order, ends the pending run.

Memory stays bounded whatever the traffic: only ``(id, ts)`` of at most ``max_count`` logs are
read per window. Closing is idempotent: a window is keyed by (model, version, arm, first_id), so
two evaluators racing on the same stream cannot create it twice; the loser stops on that stream.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.errors import DriftwatchError
from monitor.settings import Settings, WindowSettings
from monitor.store.arms import logs_arm, stream_arm
from monitor.store.logs import rows_to_batch, window_meta, window_rows
from monitor.store.shapes import ModelShape, Shape
from monitor.store.streams import pending_logs_query, streams_with_new_logs
from monitor.store.tables import Window
from monitor.store.windows_repo import models_with_windows_in
from monitor.vocabulary import WindowState

log = logging.getLogger(__name__)

#: the state of a window that is closed and waits for evaluation
CLOSED: WindowState = "closed"

#: Seconds a stored log must have been in the store before a window may cover it.
SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class WindowPlan:
    """Which of the pending logs (a prefix of ``n`` of them) form the next window, and why."""

    n: int
    closed_by: str  # "count" or "time"


def plan_window(ts: Sequence[datetime], cfg: WindowSettings, now: datetime) -> WindowPlan | None:
    """The next window over pending logs with timestamps ``ts`` (in id order), or None to wait.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> cfg = WindowSettings(max_count=10, max_seconds=60, min_count=2)
    >>> plan_window([t0 + timedelta(seconds=i) for i in range(12)], cfg, t0)
    WindowPlan(n=10, closed_by='count')
    >>> plan_window([t0, t0, t0 + timedelta(seconds=90)], cfg, t0 + timedelta(seconds=90))
    WindowPlan(n=2, closed_by='time')
    >>> plan_window([t0], cfg, t0 + timedelta(seconds=30)) is None
    True
    """
    if len(ts) >= cfg.max_count:
        return WindowPlan(cfg.max_count, "count")
    if not ts:
        return None
    end = ts[0] + timedelta(seconds=cfg.max_seconds)
    inside = next((i for i, t in enumerate(ts) if t >= end), len(ts))
    if inside == len(ts) and now < end:
        return None  # the span is still open
    n = max(inside, cfg.min_count)
    if n > len(ts):
        return None  # too few logs: wait for more
    return WindowPlan(n, "time")


def _streams(
    session: Session, models: Collection[str] | None = None
) -> list[tuple[str, str, str | None, int]]:
    """Streams with logs after their last window: (model, version, arm or None, last_id)."""
    return [(m, v, logs_arm(a), after) for m, v, a, after in streams_with_new_logs(session, models)]


def _close_stream(
    session: Session,
    cfg: WindowSettings,
    model: str,
    version: str,
    arm: str | None,
    after_id: int,
    now: datetime,
    settled_before: datetime | None = None,
) -> list[Window]:
    closed: list[Window] = []
    query = pending_logs_query(model, version, arm, cfg.max_count, settled_before)
    while True:
        session.flush()
        # Core rows (no ORM loading per row) of at most max_count pending logs
        rows = session.connection().execute(query, {"after_id": after_id}).all()
        cut = next((i for i, r in enumerate(rows) if r.fresh), None)
        rows = rows if cut is None else rows[:cut]
        plan = plan_window([r.ts for r in rows], cfg, now)
        if plan is None:
            return closed
        part = rows[: plan.n]
        ts = [r.ts for r in part]
        window = Window(
            model=model,
            model_version=version,
            arm=stream_arm(arm),
            first_id=part[0].id,
            last_id=part[-1].id,
            start_ts=min(ts),
            end_ts=max(ts),
            n=len(part),
            closed_by=plan.closed_by,
            state=CLOSED,
            closed_at=now,
        )
        try:
            with session.begin_nested():
                session.add(window)
        except IntegrityError:
            log.info(
                "window %s/%s/%s from id %d already closed by another evaluator",
                model,
                version,
                arm,
                part[0].id,
            )
            return closed
        closed.append(window)
        after_id = part[-1].id


def models_with_work(session: Session) -> list[str]:
    """Models with logs after their last window or with windows waiting to be evaluated."""
    waiting = models_with_windows_in(session, CLOSED)
    return sorted({m for m, *_ in _streams(session)} | set(waiting))


def close_windows(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    settle_seconds: float = SETTLE_SECONDS,
    models: Collection[str] | None = None,
) -> list[Window]:
    """Close every window that is due at ``now``, across all streams (or those of ``models``);
    returns the new rows.

    Logs stored less than ``settle_seconds`` ago (wall clock) are left for a later call.
    Idempotent and safe to run from two processes: a window another one already closed is
    skipped. The caller owns the transaction.
    """
    settled_before = datetime.now(UTC) - timedelta(seconds=settle_seconds)
    closed: list[Window] = []
    for model, version, arm, after_id in _streams(session, models):
        closed += _close_stream(
            session, settings.windows, model, version, arm, after_id, now, settled_before
        )
    return closed


# ---------------------------------------------------------------- the logs of a window


@dataclass(frozen=True)
class WindowLogs:
    """The logs of a window that fit its model's shape, and how many were skipped and why."""

    batch: LogBatch
    ids: np.ndarray  # the prediction id of each row of ``batch`` (int64)
    skipped: dict[str, int] = field(default_factory=dict)


def _row_fault(row: Any, expected: Shape) -> str | None:
    """Why a store row cannot join a window of ``expected`` shape, or None."""
    n = row.n_classes
    if n != expected[0]:
        return f"n_classes={n}"
    if len(row.probs) != 4 * n or not np.isfinite(np.frombuffer(row.probs, "<f4")).all():
        return "bad_probabilities"
    if row.embedding is not None:
        size = 2 if row.embedding_dtype == "float16" else 4
        dim = len(row.embedding) / size
        if dim != int(dim) or expected[1] not in (None, dim):
            return f"embedding_dim={dim:g}"
        if not np.isfinite(np.frombuffer(row.embedding, "<f2" if size == 2 else "<f4")).all():
            return "bad_embedding"
    return None


def _common_shape(rows: Sequence[Any]) -> Shape:
    """The most common class count and embedding dimension of ``rows``."""
    classes = Counter(r.n_classes for r in rows).most_common(1)[0][0]
    dims = Counter(
        len(r.embedding) // (2 if r.embedding_dtype == "float16" else 4)
        for r in rows
        if r.embedding is not None and r.n_classes == classes
    ).most_common(1)
    return classes, dims[0][0] if dims else None


def screen_rows(rows: Sequence[Any], expected: Shape | None) -> tuple[list[Any], Counter[str]]:
    """The rows of ``expected`` shape (by default the most common one; a dimension of None is
    taken from the rows), and the count of the others by reason. Pure."""
    shape = expected or _common_shape(rows)
    if shape[1] is None:
        shape = (shape[0], _common_shape([r for r in rows if r.n_classes == shape[0]] or rows)[1])
    keep, skipped = [], Counter[str]()
    for row in rows:
        fault = _row_fault(row, shape)
        if fault is None:
            keep.append(row)
        else:
            skipped[fault] += 1
    return keep, skipped


def load_window_logs(session: Session, window: Window) -> WindowLogs:
    """The logs of ``window`` that fit the model's pinned shape (or the window's most common
    one): a log of another shape is skipped and counted, never fails the window."""
    rows = window_rows(session, window)
    pinned = session.get(ModelShape, window.model)
    expected = None if pinned is None else (pinned.n_classes, pinned.embedding_dim)
    keep, skipped = screen_rows(rows, expected)
    if not keep:
        raise DriftwatchError(f"no log of window {window.id} has its model's shape: {skipped}")
    if skipped:
        log.warning(
            "window %d (%s %s): skipped %d of %d logs: %s",
            window.id,
            window.model,
            window.model_version,
            sum(skipped.values()),
            len(rows),
            dict(skipped),
        )
    return WindowLogs(
        rows_to_batch(keep, window_meta(window)),
        np.array([r.id for r in keep], np.int64),
        dict(skipped),
    )
