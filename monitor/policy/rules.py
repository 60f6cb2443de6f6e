"""The decision policy: drift results of successive windows become states and alerts.

One small state machine per (model, version, family), pure and deterministic; its clock is the
end of the window being decided, so replaying missed windows after downtime gives the same
decisions as evaluating them live.

States and rules (numbers come from :class:`~monitor.settings.PolicySettings`):

1. A window is *drifted* when its :class:`~monitor.results.DriftResult` says so, and *strong*
   when, in addition, its effect size is at least ``effect_floor * alert_effect_multiple``.
2. ``ok``/``resolved`` -> ``warn`` after ``windows_to_warn`` drifted windows in a row.
3. ``warn`` -> ``alert`` after ``windows_to_alert`` drifted windows in a row, the latest strong.
   Severity is ``critical`` when the effect is twice the alert level, else ``warning``.
   *Severity by impact* (``policy.impact``): when the window has an accuracy estimate, the alert
   pages only if the estimated drop (its interval's lower bound, or the point) or the realized
   drop (once ``min_realized_labels`` labels arrived) reaches ``page_min_drop_points``; drift
   that does not hurt stays a ``warn`` (never paged). Severity is then ``critical`` when that
   drop reaches ``critical_drop_points``.
4. ``alert`` -> ``resolved`` and ``warn`` -> ``ok`` only after ``windows_to_resolve`` clean
   windows in a row (hysteresis: one clean window between drifted ones changes nothing).
5. Flapping: an alert that fires again within ``cooldown_seconds`` of the last page re-opens
   without paging (``notify`` is False); the transition says why.
6. Retraining (:func:`retrain_decision`): an alert that pages, in a family listed in
   ``retrain_families`` and at least ``retrain_min_severity``, asks for a retrain unless the
   model already had ``retrain_max_per_day`` in the last 24 hours, or the estimated/realized
   drop that ``impact.retrain_requires`` names is under ``impact.retrain_min_drop_points``.

Every change of state is a :class:`Transition` carrying its evidence.

>>> from datetime import UTC, datetime, timedelta
>>> from monitor.settings import PolicySettings
>>> rules = PolicySettings(windows_to_warn=1, windows_to_alert=2, windows_to_resolve=2)
>>> t0 = datetime(2026, 11, 22, tzinfo=UTC)
>>> state, states = PolicyState(), []
>>> for i, (drifted, effect) in enumerate([(True, 0.5), (True, 0.5), (False, 0.0), (False, 0.0)]):
...     obs = Observation(window_id=i, start=t0, end=t0 + timedelta(minutes=i),
...                       drifted=drifted, effect_size=effect, effect_floor=0.1)
...     state, _ = step(state, obs, rules)
...     states.append(state.state)
>>> states
['warn', 'alert', 'alert', 'resolved']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.impact.view import Impact, describe
from monitor.settings import ImpactSettings, PolicySettings
from monitor.vocabulary import DriftState
from monitor.vocabulary import Severity as Severity  # re-exported: decisions carry one

State = DriftState
STATE_CODES: dict[str, int] = {"ok": 0, "resolved": 0, "warn": 1, "alert": 2}
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Observation:
    """What the policy needs to know about one evaluated window of one family."""

    window_id: int
    start: datetime
    end: datetime
    drifted: bool
    effect_size: float
    effect_floor: float
    evidence: dict[str, Any] = field(default_factory=dict)
    impact: Impact | None = None


@dataclass(frozen=True, slots=True)
class PolicyState:
    """The remembered state of one (model, version, family)."""

    state: State = "ok"
    drift_streak: int = 0
    clean_streak: int = 0
    severity: Severity | None = None
    opened_at: datetime | None = None
    last_paged_at: datetime | None = None
    last_window_id: int | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, with the reason and the evidence that caused it.

    ``notify`` is True when channels should hear about it (a new page or a resolve of a paged
    alert); a flapping re-open has ``notify`` False.
    """

    from_state: State
    to_state: State
    at: datetime
    window_id: int
    reason: str
    notify: bool
    severity: Severity | None
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Harm:
    """Whether a window's accuracy loss is large enough to page, and the drop it judged by."""

    harmful: bool
    drop_points: float  # the larger of the estimated and realized drops compared, in points
    basis: str  # which figure decided ("estimated lower bound", "realized point", ...)


def _bound(interval: Any, cfg: ImpactSettings) -> float:
    return float(interval.low if cfg.drop_bound == "lower" else interval.value) * 100


def harm(impact: Impact, cfg: ImpactSettings) -> Harm:
    """Judge ``impact`` against ``cfg.page_min_drop_points`` (estimated and realized drops).

    >>> from monitor.impact.estimate import Interval
    >>> drop = Interval(0.08, 0.05, 0.11, 0.015, 500)
    >>> est = Interval(0.87, 0.84, 0.9, 0.015, 500)
    >>> harm(Impact(est, est, drop, None, None, False, None), ImpactSettings()).harmful
    True
    """
    figures = [(_bound(impact.drop, cfg), f"estimated {cfg.drop_bound}")]
    if impact.realized_drop is not None:
        figures.append((_bound(impact.realized_drop, cfg), f"realized {cfg.drop_bound}"))
    points, basis = max(figures)
    return Harm(points >= cfg.page_min_drop_points, points, basis)


def _severity(obs: Observation, rules: PolicySettings, judged: Harm | None = None) -> Severity:
    if judged is not None:
        return "critical" if judged.drop_points >= rules.impact.critical_drop_points else "warning"
    alert_level = obs.effect_floor * rules.alert_effect_multiple
    return "critical" if obs.effect_size >= 2 * alert_level else "warning"


def _strong(obs: Observation, rules: PolicySettings) -> bool:
    return obs.drifted and obs.effect_size >= obs.effect_floor * rules.alert_effect_multiple


def _evidence(obs: Observation, rules: PolicySettings, drift: int, clean: int) -> dict[str, Any]:
    return {
        **obs.evidence,
        "window_id": obs.window_id,
        "window_start": obs.start.isoformat(),
        "window_end": obs.end.isoformat(),
        "effect_size": obs.effect_size,
        "effect_floor": obs.effect_floor,
        "alert_level": obs.effect_floor * rules.alert_effect_multiple,
        "drift_streak": drift,
        "clean_streak": clean,
    }


def _judge(obs: Observation, rules: PolicySettings, evidence: dict[str, Any]) -> Harm | None:
    """Add the window's impact to ``evidence``; the harm verdict when impact gating is on."""
    if obs.impact is None:
        return None
    evidence["impact"] = obs.impact.evidence()
    evidence["worst_images_url"] = rules.impact.worst_images_url.format(window_id=obs.window_id)
    if not rules.impact.enabled:
        return None
    judged = harm(obs.impact, rules.impact)
    evidence["harm"] = {"harmful": judged.harmful, "drop_points": judged.drop_points}
    return judged


def step(
    state: PolicyState, obs: Observation, rules: PolicySettings
) -> tuple[PolicyState, Transition | None]:
    """Decide one window: the next state and the transition, if the state changed.

    A window already decided (``obs.window_id == state.last_window_id``) changes nothing.
    """
    if state.last_window_id is not None and obs.window_id == state.last_window_id:
        return state, None
    drift = state.drift_streak + 1 if obs.drifted else 0
    clean = 0 if obs.drifted else state.clean_streak + 1
    new = replace(state, drift_streak=drift, clean_streak=clean, last_window_id=obs.window_id)
    current = state.state
    evidence = _evidence(obs, rules, drift, clean)
    judged = _judge(obs, rules, evidence)
    impact_line = "" if obs.impact is None else f"; {describe(evidence['impact'])}"
    due = current in ("ok", "resolved", "warn") and drift >= rules.windows_to_alert
    due = due and _strong(obs, rules)

    def move(to: State, reason: str, notify: bool, severity: Severity | None) -> Transition:
        return Transition(current, to, obs.end, obs.window_id, reason, notify, severity, evidence)

    if due and judged is not None and not judged.harmful:
        # Drift that does not hurt: a warning on the dashboards, never a page.
        if current == "warn":
            return new, None
        new = replace(new, state="warn", severity=None)
        reason = (
            f"{drift} drifted windows in a row but no accuracy loss of "
            f"{rules.impact.page_min_drop_points:g} pts ({judged.basis} drop "
            f"{judged.drop_points:.1f} pts): warning, not paged{impact_line}"
        )
        return new, move("warn", reason, False, None)
    if due:
        severity = _severity(obs, rules, judged)
        cooldown = timedelta(seconds=rules.cooldown_seconds)
        flapping = state.last_paged_at is not None and obs.end - state.last_paged_at < cooldown
        if flapping:
            reason = (
                f"drift returned {drift} windows in a row within the "
                f"{rules.cooldown_seconds:.0f}s cooldown of the last page: re-opened, "
                "not paged again (flapping)"
            )
        else:
            reason = (
                f"{drift} drifted windows in a row, effect {obs.effect_size:.3g} >= "
                f"alert level {obs.effect_floor * rules.alert_effect_multiple:.3g}{impact_line}"
            )
        new = replace(
            new,
            state="alert",
            severity=severity,
            opened_at=obs.end,
            last_paged_at=state.last_paged_at if flapping else obs.end,
        )
        return new, move("alert", reason, not flapping, severity)
    if current in ("ok", "resolved") and drift >= rules.windows_to_warn:
        new = replace(new, state="warn", severity=None)
        return new, move("warn", f"{drift} drifted window(s) in a row{impact_line}", False, None)
    if current == "alert" and clean >= rules.windows_to_resolve:
        new = replace(new, state="resolved", opened_at=None)
        return new, move("resolved", f"{clean} clean windows in a row", True, state.severity)
    if current == "warn" and clean >= rules.windows_to_resolve:
        new = replace(new, state="ok", severity=None)
        return new, move("ok", f"{clean} clean windows in a row", False, None)
    if current == "resolved" and clean >= 1:
        # Resolved is shown until the next clean window; quietly back to ok.
        return replace(new, state="ok", severity=None), None
    return new, None


@dataclass(frozen=True, slots=True)
class RetrainDecision:
    retrain: bool
    reason: str


def retrain_decision(
    transition: Transition,
    family: str,
    recent_retrains: list[datetime],
    rules: PolicySettings,
) -> RetrainDecision:
    """Whether ``transition`` should start a retrain of its model.

    ``recent_retrains`` are the times of the model's earlier retrain triggers.

    >>> from datetime import UTC, datetime
    >>> t = Transition("warn", "alert", datetime(2026, 11, 22, tzinfo=UTC), 1, "", True,
    ...                "critical", {})
    >>> retrain_decision(t, "pixel", [], PolicySettings()).retrain
    True
    >>> retrain_decision(t, "pixel", [t.at], PolicySettings(retrain_max_per_day=1)).reason
    'retrain budget spent: 1 in the last 24h (max 1/day)'
    """
    if transition.to_state != "alert" or not transition.notify:
        return RetrainDecision(False, "not a new page")
    if family not in rules.retrain_families:
        return RetrainDecision(False, f"family {family} does not trigger retraining")
    if SEVERITY_RANK[transition.severity or "warning"] < SEVERITY_RANK[rules.retrain_min_severity]:
        return RetrainDecision(
            False, f"severity {transition.severity} below {rules.retrain_min_severity}"
        )
    short = _drop_short(transition.evidence.get("impact"), rules.impact)
    if short is not None:
        return RetrainDecision(False, short)
    day_ago = transition.at - timedelta(days=1)
    used = sum(1 for ts in recent_retrains if day_ago < ts <= transition.at)
    if used >= rules.retrain_max_per_day:
        return RetrainDecision(
            False,
            f"retrain budget spent: {used} in the last 24h (max {rules.retrain_max_per_day}/day)",
        )
    return RetrainDecision(
        True,
        f"{family} alert ({transition.severity}); "
        f"{used + 1}/{rules.retrain_max_per_day} retrains today",
    )


def _drop_short(impact: dict[str, Any] | None, cfg: ImpactSettings) -> str | None:
    """Why the accuracy drop is too small for a retrain under ``cfg.retrain_requires``, or None.

    A window without an estimate (a profile fitted before calibration) does not block.
    """
    if cfg.retrain_requires == "none" or impact is None:
        return None
    key = "low" if cfg.drop_bound == "lower" else "value"
    found = {
        "estimated": impact["drop"][key] * 100,
        "realized": None
        if impact.get("realized_drop") is None
        else impact["realized_drop"][key] * 100,
    }
    wanted = (
        ("estimated", "realized") if cfg.retrain_requires == "either" else (cfg.retrain_requires,)
    )
    best = max((found[w] for w in wanted if found[w] is not None), default=None)
    if best is not None and best >= cfg.retrain_min_drop_points:
        return None
    shown = "none measured" if best is None else f"{best:.1f} pts"
    return (
        f"retraining needs a {' or '.join(wanted)} accuracy drop of "
        f"{cfg.retrain_min_drop_points:g} pts ({cfg.drop_bound}); {shown}"
    )
