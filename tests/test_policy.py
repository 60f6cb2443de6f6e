"""The decision policy: table-driven rules and hypothesis properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.policy.rules import Observation, PolicyState, Transition, retrain_decision, step
from monitor.settings import PolicySettings

T0 = datetime(2026, 11, 22, tzinfo=UTC)
FLOOR = 0.1
STRONG, WEAK = 0.5, 0.15  # alert level is FLOOR * 2 = 0.2
RULES = PolicySettings(
    windows_to_warn=1,
    windows_to_alert=2,
    windows_to_resolve=3,
    cooldown_seconds=3600,
    alert_effect_multiple=2.0,
)


def run(
    pattern: str,
    rules: PolicySettings = RULES,
    minutes: float = 5.0,
    start: PolicyState | None = None,
) -> tuple[list[str], list[Transition]]:
    """Feed windows: 'D' strong drift, 'd' weak drift, '.' clean; states and transitions."""
    state, states, transitions = start or PolicyState(), [], []
    for i, ch in enumerate(pattern):
        effect = {"D": STRONG, "d": WEAK, ".": 0.0}[ch]
        end = T0 + timedelta(minutes=minutes * (i + 1))
        obs = Observation(i, end - timedelta(minutes=minutes), end, ch != ".", effect, FLOOR)
        state, t = step(state, obs, rules)
        states.append(state.state)
        if t is not None:
            transitions.append(t)
    return states, transitions


CASES = [
    # pattern, expected states, pages
    ("....", ["ok", "ok", "ok", "ok"], 0),
    ("D...", ["warn", "warn", "warn", "ok"], 0),  # one drifted window only warns
    ("DD", ["warn", "alert"], 1),  # two consecutive strong windows alert
    ("D.D.D.", ["warn"] * 6, 0),  # never two in a row: no alert, warn held by hysteresis
    ("dddd", ["warn"] * 4, 0),  # weak drift never reaches the alert level
    ("dD", ["warn", "alert"], 1),  # the streak counts weak windows, the latest must be strong
    ("DD..D...", ["warn", "alert", "alert", "alert", "alert", "alert", "alert", "resolved"], 1),
    ("DD...", ["warn", "alert", "alert", "alert", "resolved"], 1),
    ("DD....", ["warn", "alert", "alert", "alert", "resolved", "ok"], 1),
]


@pytest.mark.parametrize(("pattern", "expected", "pages"), CASES)
def test_table(pattern: str, expected: list[str], pages: int) -> None:
    states, transitions = run(pattern)
    assert states == expected
    assert sum(t.to_state == "alert" and t.notify for t in transitions) == pages


def test_resolve_notifies_and_carries_evidence() -> None:
    _, transitions = run("DD...")
    alert, resolved = transitions[-2], transitions[-1]
    assert (alert.from_state, alert.to_state, alert.notify) == ("warn", "alert", True)
    assert alert.severity == "critical"  # 0.5 >= 2 * alert level 0.2
    assert alert.evidence["drift_streak"] == 2 and alert.evidence["effect_size"] == STRONG
    assert alert.evidence["window_end"] == (T0 + timedelta(minutes=10)).isoformat()
    assert (resolved.to_state, resolved.notify, resolved.reason) == (
        "resolved",
        True,
        "3 clean windows in a row",
    )


def test_cooldown_flapping_reopens_without_paging() -> None:
    # alert, resolve, alert again 40 minutes after the first page: inside the 1 h cooldown.
    _, transitions = run("DD...DD", minutes=5)
    alerts = [t for t in transitions if t.to_state == "alert"]
    assert [t.notify for t in alerts] == [True, False]
    assert "flapping" in alerts[1].reason


def test_after_cooldown_pages_again() -> None:
    _, transitions = run("DD...DD", minutes=15)  # second alert 75 minutes after the first
    assert [t.notify for t in transitions if t.to_state == "alert"] == [True, True]


def test_same_window_twice_changes_nothing() -> None:
    obs = Observation(7, T0, T0 + timedelta(minutes=1), True, STRONG, FLOOR)
    once, _ = step(PolicyState(), obs, RULES)
    twice, t = step(once, obs, RULES)
    assert twice == once and t is None


def _alert(at: datetime, severity: str = "critical", notify: bool = True) -> Transition:
    return Transition("warn", "alert", at, 1, "", notify, severity, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("family", "severity", "notify", "history_hours", "want"),
    [
        ("pixel", "critical", True, [], True),
        ("pixel", "critical", False, [], False),  # a flapping re-open never retrains
        ("pixel", "critical", True, [2.0], False),  # budget of 1/day spent 2 h ago
        ("pixel", "critical", True, [25.0], True),  # the earlier one is more than a day old
        ("embedding", "critical", True, [], False),  # family not listed
        ("pixel", "warning", True, [], False),  # below the minimum severity
    ],
)
def test_retrain_rule(
    family: str, severity: str, notify: bool, history_hours: list[float], want: bool
) -> None:
    rules = PolicySettings(
        retrain_families=["pixel", "classes"],
        retrain_max_per_day=1,
        retrain_min_severity="critical",
    )
    at = T0 + timedelta(days=2)
    history = [at - timedelta(hours=h) for h in history_hours]
    assert retrain_decision(_alert(at, severity, notify), family, history, rules).retrain is want


# ---------------------------------------------------------------- properties

patterns = st.text(alphabet="Dd.", max_size=60)
rule_sets = st.builds(
    PolicySettings,
    windows_to_warn=st.integers(1, 3),
    windows_to_alert=st.integers(1, 4),
    windows_to_resolve=st.integers(1, 4),
    cooldown_seconds=st.sampled_from([0.0, 600.0, 7200.0]),
)


@settings(max_examples=300, deadline=None)
@given(patterns, rule_sets)
def test_alert_needs_consecutive_drift_and_resolve_needs_consecutive_clean(
    pattern: str, rules: PolicySettings
) -> None:
    states, transitions = run(pattern, rules)
    for t in transitions:
        i = t.window_id
        if t.to_state == "alert":
            need = rules.windows_to_alert
            assert i + 1 >= need and set(pattern[i + 1 - need : i + 1]) <= {"D", "d"}
            assert pattern[i] == "D"
        if t.to_state in ("resolved", "ok"):
            need = rules.windows_to_resolve
            assert set(pattern[i + 1 - need : i + 1]) == {"."}
    # no window without drift ever moves a state up
    for i, ch in enumerate(pattern):
        before = states[i - 1] if i else "ok"
        if ch == "." and before in ("ok", "resolved"):
            assert states[i] == "ok"


@settings(max_examples=300, deadline=None)
@given(patterns, rule_sets, st.integers(1, 30))
def test_pages_are_spaced_by_the_cooldown(
    pattern: str, rules: PolicySettings, minutes: int
) -> None:
    _, transitions = run(pattern, rules, minutes=minutes)
    pages = [t.at for t in transitions if t.to_state == "alert" and t.notify]
    gaps = [b - a for a, b in itertools.pairwise(pages)]
    assert all(g >= timedelta(seconds=rules.cooldown_seconds) for g in gaps)
    # every alert is followed by a resolve before the next alert
    kinds = [t.to_state for t in transitions if t.to_state in ("alert", "resolved")]
    assert all(a != b for a, b in itertools.pairwise(kinds))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 200), max_size=20), st.integers(0, 3))
def test_retrain_budget_never_exceeded(gaps_hours: list[float], budget: int) -> None:
    rules = PolicySettings(retrain_max_per_day=budget)
    at, done = T0, []
    for gap in gaps_hours:
        at += timedelta(hours=gap)
        if retrain_decision(_alert(at), "pixel", done, rules).retrain:
            done.append(at)
    for ts in done:
        assert sum(1 for other in done if ts - timedelta(days=1) < other <= ts) <= budget
