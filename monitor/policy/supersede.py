"""Resolve the drift alerts of a version that a promoted retrained version has replaced.

Policy state is kept per model *version*, so once a retrained version is promoted the old one
gets no traffic and its alerts could never see the clean windows that resolve them. The drift
is over when the promoted version's production windows are clean against its own reference
for ``policy.windows_to_resolve`` windows in every family: then every warn/alert state of the
model's other versions goes to ``resolved`` (transition recorded, resolve delivered once per
paged incident), with the reason naming the new version.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy.orm import Session

from monitor.policy.apply import WATCHED_ARMS, _resolve_alert
from monitor.policy.rules import State, Transition
from monitor.results import DriftResult
from monitor.settings import Settings
from monitor.store import policy_repo
from monitor.store.alerting_tables import PolicyStateRow, PolicyTransitionRow
from monitor.store.tables import Window
from monitor.store.versions import promoted_version


def _promoted(session: Session, model: str) -> str | None:
    mv = promoted_version(session, model)
    return None if mv is None else mv.version


def _superseding(row: PolicyStateRow, window: Window, need: int) -> Transition:
    """The transition that resolves ``row`` (an older version's state) because ``window``'s
    version, now promoted, has ``need`` clean windows in a row."""
    return Transition(
        from_state=cast(State, row.state),
        to_state="resolved",
        at=window.end_ts,
        window_id=window.id,
        reason=(
            f"superseded by {window.model_version} (promoted): its last {need} windows "
            f"are clean against its own reference"
        ),
        notify=row.state == "alert",
        severity=None,
        evidence={
            "superseded_by": window.model_version,
            "window_id": window.id,
            "version": row.model_version,
            "family": row.family,
        },
    )


def resolve_superseded(
    session: Session,
    settings: Settings,
    window: Window,
    results: Iterable[DriftResult],
    now: datetime,
) -> list[Transition]:
    """After ``window`` was decided: resolve other versions' alerts when it proves the drift
    over (the rule in the module docstring); returns the transitions made."""
    if window.arm not in WATCHED_ARMS or any(r.drifted for r in results):
        return []
    if _promoted(session, window.model) != window.model_version:
        return []
    own = policy_repo.version_states(session, window.model, window.model_version)
    need = settings.policy.windows_to_resolve
    if not own or any(r.state in ("warn", "alert") or r.clean_streak < need for r in own):
        return []
    made: list[Transition] = []
    drifting = ("warn", "alert")
    for row in policy_repo.other_versions_in(session, window.model, window.model_version, drifting):
        old = policy_repo.latest_window(session, row.model, row.model_version)
        if old is None:
            continue
        t = _superseding(row, window, need)
        row.state, row.drift_streak, row.clean_streak, row.updated_at = "resolved", 0, 0, now
        if t.notify:
            _resolve_alert(session, settings, old, row.family, t, now)
        session.add(
            PolicyTransitionRow(
                model=row.model,
                model_version=row.model_version,
                family=row.family,
                window_id=window.id,
                from_state=t.from_state,
                to_state=t.to_state,
                at=t.at,
                reason=t.reason,
                notify=t.notify,
                severity=None,
                retrain=False,
                retrain_reason=None,
                evidence=t.evidence,
                created_at=now,
            )
        )
        made.append(t)
    session.flush()
    return made
