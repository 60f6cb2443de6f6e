"""Apply the policy to evaluated windows: state, transitions, alerts, deliveries, retrains.

Runs in the evaluator's transaction, right after :func:`monitor.evaluate.evaluate_pending`, so a
window's results and the decisions they cause commit together (or not at all):

1. Load the remembered :class:`~monitor.policy.rules.PolicyState` of each (model, version, family).
2. :func:`monitor.policy.rules.step` decides; a transition is stored with its evidence.
3. A paging ``alert`` opens an alert (or re-opens the last one when flapping) and enqueues one
   delivery per channel; ``resolved`` closes it. One incident pages once: when another family
   of the same model version already has a paged alert firing, the new alert joins it
   (``grouped_into``) instead of paging again, and the resolve goes out when the last alert of
   the model version resolves.
   The window's accuracy estimate (:mod:`monitor.impact`) rides along: drift that does not
   cost estimated accuracy stays a warning (see ``rules``).
4. :func:`monitor.policy.rules.retrain_decision` may queue a retraining job (idempotent per alert).

Canary-arm windows are left to the rollout (``retrain/``): the policy watches the model's
production traffic (arms ``all`` and ``stable``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from monitor.alerts.message import dedup_key, evidence_from_result
from monitor.alerts.outbox import enqueue
from monitor.detectors.registry import page_order
from monitor.impact.stage import window_impact
from monitor.metrics import metric
from monitor.policy.rules import Observation, PolicyState, Transition, retrain_decision, step
from monitor.results import DriftResult
from monitor.settings import Settings
from monitor.store import alerts_repo, policy_repo
from monitor.store.alerting_tables import (
    AlertRow,
    PolicyStateRow,
    PolicyTransitionRow,
)
from monitor.store.tables import Window

log = logging.getLogger(__name__)

WATCHED_ARMS = frozenset({"all", "stable"})


@dataclass(frozen=True)
class Decision:
    """What the policy did with one window's family."""

    model: str
    version: str
    family: str
    transition: Transition
    alert_id: int | None
    retrain: bool
    retrain_reason: str | None = None


def _load(session: Session, model: str, version: str, family: str) -> PolicyStateRow:
    row = session.get(PolicyStateRow, (model, version, family))
    if row is None:
        row = PolicyStateRow(
            model=model,
            model_version=version,
            family=family,
            state="ok",
            drift_streak=0,
            clean_streak=0,
        )
        session.add(row)
    return row


def _state(row: PolicyStateRow) -> PolicyState:
    return PolicyState(
        state=row.state,  # type: ignore[arg-type]
        drift_streak=row.drift_streak or 0,
        clean_streak=row.clean_streak or 0,
        severity=row.severity,  # type: ignore[arg-type]
        opened_at=row.opened_at,
        last_paged_at=row.last_paged_at,
        last_window_id=row.last_window_id,
    )


def _save(row: PolicyStateRow, state: PolicyState, now: datetime) -> None:
    row.state, row.drift_streak, row.clean_streak = (
        state.state,
        state.drift_streak,
        state.clean_streak,
    )
    row.severity, row.opened_at, row.last_paged_at = (
        state.severity,
        state.opened_at,
        state.last_paged_at,
    )
    row.last_window_id, row.updated_at = state.last_window_id, now


def _recent_retrains(session: Session, model: str, at: datetime) -> list[datetime]:
    return policy_repo.retrains_since(session, model, at - timedelta(days=1))


def _open_alert(
    session: Session, settings: Settings, window: Window, family: str, t: Transition, now: datetime
) -> AlertRow:
    last = alerts_repo.latest_alert(session, window.model, window.model_version, family)
    if not t.notify and last is not None:
        # Flapping inside the cooldown: the same alert fires again, nobody is paged twice.
        last.status, last.resolved_at, last.updated_at = "firing", None, now
        last.reopen_count += 1
        last.evidence = {**t.evidence, "reason": t.reason}
        return last
    incident = alerts_repo.open_incident(session, window.model, window.model_version)
    paged = t.notify and incident is None
    alert = AlertRow(
        model=window.model,
        model_version=window.model_version,
        family=family,
        severity=t.severity or "warning",
        status="firing",
        dedup_key="",
        opened_at=t.at,
        summary=t.reason,
        evidence={**t.evidence, "reason": t.reason},
        reopen_count=0,
        paged=paged,
        grouped_into=None if incident is None else incident.id,
        updated_at=now,
    )
    session.add(alert)
    session.flush()
    alert.dedup_key = dedup_key(alert.model, alert.model_version, family, alert.id)
    metric("driftwatch_alerts_total").labels(
        model=alert.model, family=family, severity=alert.severity
    ).inc()
    if paged:
        enqueue(session, alert, "trigger", settings.alerts, now)
    elif incident is not None:
        moved = ", ".join(t.evidence.get("top_features", [])[:2])
        also = f"{family} ({moved})" if moved else family
        incident.evidence = {
            **incident.evidence,
            "also_drifting": [*incident.evidence.get("also_drifting", []), also],
        }
    return alert


def _resolve_alert(
    session: Session, settings: Settings, window: Window, family: str, t: Transition, now: datetime
) -> AlertRow | None:
    alert = alerts_repo.latest_alert(session, window.model, window.model_version, family, "firing")
    if alert is None:
        return None
    alert.status, alert.resolved_at, alert.updated_at = "resolved", t.at, now
    alert.evidence = {**alert.evidence, "resolved_by": t.evidence, "resolve_reason": t.reason}
    session.flush()
    if not alerts_repo.any_firing(session, window.model, window.model_version):
        # the incident is over: resolve every page it made
        for paged in alerts_repo.resolved_pages(session, window.model, window.model_version):
            keys = alerts_repo.delivery_keys(session, paged.id)
            n = paged.reopen_count
            if f"trigger:{n}" in keys and f"resolve:{n}" not in keys:
                enqueue(session, paged, "resolve", settings.alerts, now)
    return alert


def _record(
    session: Session,
    window: Window,
    family: str,
    t: Transition,
    retrain: bool,
    retrain_reason: str | None,
    now: datetime,
) -> None:
    """Store ``t`` with its evidence and the retrain decision."""
    session.add(
        PolicyTransitionRow(
            model=window.model,
            model_version=window.model_version,
            family=family,
            window_id=window.id,
            from_state=t.from_state,
            to_state=t.to_state,
            at=t.at,
            reason=t.reason,
            notify=t.notify,
            severity=t.severity,
            retrain=retrain,
            retrain_reason=retrain_reason,
            evidence=t.evidence,
            created_at=now,
        )
    )


def apply_window(
    session: Session,
    settings: Settings,
    window: Window,
    results: Iterable[DriftResult],
    now: datetime | None = None,
) -> list[Decision]:
    """Run the policy over one evaluated window's results; returns what changed."""
    now = now or datetime.now(UTC)
    if window.arm not in WATCHED_ARMS:
        return []
    decisions: list[Decision] = []
    impact = window_impact(session, window.id, settings.policy.impact)
    # The family an on-call engineer reads most easily goes first, so it heads the page when
    # several families alert in the same window.
    by_family = {r.family: r for r in results}
    for family in page_order(list(by_family)):
        result = by_family[family]
        floor = float(result.threshold)  # the floor the family applied (its kind's unit)
        obs = Observation(
            window.id,
            window.start_ts,
            window.end_ts,
            bool(result.drifted),
            float(result.effect_size),
            floor,
            evidence_from_result(result),
            impact,
        )
        row = _load(session, window.model, window.model_version, family)
        state, t = step(_state(row), obs, settings.policy)
        _save(row, state, now)
        if t is None:
            continue
        alert: AlertRow | None = None
        retrain = False
        retrain_reason: str | None = None
        if t.to_state == "alert":
            alert = _open_alert(session, settings, window, family, t, now)
            choice = retrain_decision(
                t, family, _recent_retrains(session, window.model, t.at), settings.policy
            )
            retrain, retrain_reason = choice.retrain, choice.reason
        elif t.to_state == "resolved":
            alert = _resolve_alert(session, settings, window, family, t, now)
        _record(session, window, family, t, retrain, retrain_reason, now)
        log.info(
            "%s %s %s: %s -> %s (%s)",
            window.model,
            window.model_version,
            family,
            t.from_state,
            t.to_state,
            t.reason,
        )
        decisions.append(
            Decision(
                window.model,
                window.model_version,
                family,
                t,
                None if alert is None else alert.id,
                retrain,
                retrain_reason,
            )
        )
    session.flush()
    return decisions
