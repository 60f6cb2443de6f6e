"""The closing table of ``driftwatch demo``: windows, statistics, decisions, incidents."""

from __future__ import annotations

import click

from monitor.demo.state import Demo
from monitor.store.alerts_repo import all_alerts, delivered
from monitor.store.drift_queries import all_results
from monitor.store.policy_repo import all_transitions
from monitor.store.tables import DriftResultRow
from monitor.store.windows_repo import all_windows


def print_timeline(demo: Demo) -> None:
    """The table an on-call engineer reads: windows, statistics, decisions."""
    with demo.factory() as session:
        windows = all_windows(session)
        results: dict[int, dict[str, DriftResultRow]] = {}
        for row in all_results(session):
            results.setdefault(row.window_id, {})[row.family] = row
        transitions = all_transitions(session)
        alerts = all_alerts(session)
        pages = {(a.evidence.get("window_id"), a.family): a.id for a in alerts if a.paged}
        decisions: dict[int, list[str]] = {}
        for t in transitions:
            page = pages.get((t.window_id, t.family))
            note = f" (PAGE #{page})" if page and t.to_state == "alert" else ""
            decisions.setdefault(t.window_id, []).append(f"{t.family} {t.to_state}{note}")
        sent = delivered(session)
    fams = ("embedding", "pixel", "confidence", "classes")
    click.echo("\nTimeline (effect size per family; * = drifted)")
    header = f"{'win':>3} {'phase':<15} {'model':<12} {'window (UTC)':<11} " + " ".join(
        f"{f:>10}" for f in fams
    )
    click.echo(header + "  decision")
    click.echo("-" * (len(header) + 30))
    states: dict[str, dict[str, str]] = {}
    for w in windows:
        state = states.setdefault(w.model_version, dict.fromkeys(fams, "ok"))
        for t in transitions:
            if t.window_id == w.id:
                states.setdefault(t.model_version, dict.fromkeys(fams, "ok"))[t.family] = t.to_state
        cells = []
        for f in fams:
            r = results.get(w.id, {}).get(f)
            cells.append(
                f"{'-':>10}" if r is None else f"{r.effect_size:>9.3f}{'*' if r.drifted else ' '}"
            )
        firing = [f for f in fams if state[f] in ("warn", "alert")]
        what = ", ".join(decisions.get(w.id, [])) or (
            f"still {'/'.join(sorted({state[f] for f in firing}))}: {', '.join(firing)}"
            if firing
            else "ok"
        )
        if w.arm not in ("all", "stable"):
            what = "canary arm: judged by the rollout" if w.id in results else "canary arm"
        elif w.id not in results:
            what = "not evaluated (no reference yet)"
        click.echo(
            f"{w.id:>3} {demo.window_phase.get(w.id, '?'):<15} "
            f"{w.model_version + '/' + w.arm:<12} {w.start_ts:%H:%M}-{w.end_ts:%H:%M} "
            + " ".join(cells)
            + f"  {what}"
        )
    paged = [a for a in alerts if a.paged]
    for a in paged:
        moved = ", ".join(a.evidence.get("top_features", [])[:3])
        group = [b for b in alerts if b.id == a.id or b.grouped_into == a.id]
        done = [b.resolved_at for b in group if b.resolved_at is not None]
        end = (
            f"all {len(group)} families resolved by {max(done):%H:%M}"
            if len(done) == len(group)
            else "STILL FIRING"
        )
        click.echo(
            f"\nIncident #{a.id}: {a.model} {a.model_version} paged at {a.opened_at:%H:%M} "
            f"({a.severity}, {a.family}: {moved}); {end}."
        )
    click.echo(
        f"\n{len(alerts)} alert(s) over {len({a.family for a in alerts})} families, "
        f"{len(paged)} page(s); deliveries: " + ", ".join(f"{d.event} to {d.channel}" for d in sent)
    )
