"""The demo's impact lines: calibration at reference time, each window's estimated accuracy,
the estimated drop when the camera changes and the path of the worst-images page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from monitor.reports.worst_images import alerting_window, gather_worst, page_html
from monitor.store.impact_tables import ImpactProfileRow, WindowEstimateRow

if TYPE_CHECKING:
    from monitor.demo.state import Demo


def say_calibration(demo: Demo, profile_id: int) -> None:
    """Temperature and reference ECE before/after, as fitted with the reference profile."""
    with demo.factory() as session:
        calib = session.get(ImpactProfileRow, profile_id)
    if calib is None or calib.ece_before is None or calib.ece_after is None:
        return
    realized = (
        "" if calib.reference_realized is None else f", realized {calib.reference_realized:.1%}"
    )
    demo.say(
        f"calibration on the {calib.n_labelled} labelled reference logs: temperature "
        f"{calib.temperature:.2f}, ECE {calib.ece_before:.1%} -> {calib.ece_after:.1%}; "
        f"reference accuracy estimated {calib.reference_accuracy:.1%}{realized}"
    )


def estimate_note(session: Session, window_id: int) -> str:
    """`` | est. acc 87.4% (realized 80.1%)`` for a window's line, "" without an estimate."""
    est = session.get(WindowEstimateRow, window_id)
    if est is None:
        return ""
    realized = "" if est.realized_accuracy is None else f" (realized {est.realized_accuracy:.1%})"
    return f" | est. acc {est.estimated_accuracy:.1%}{realized}"


def write_worst_images(demo: Demo) -> None:
    """Say the estimated accuracy drop of the window that paged and write its worst images."""
    assert demo.settings is not None
    with demo.factory() as session:
        window_id = alerting_window(session, "digits")
        if window_id is None:
            return
        data = gather_worst(session, demo.settings, window_id)
    path = demo.workdir / f"worst-images-window-{window_id}.html"
    path.write_text(page_html(data), encoding="utf-8")
    est = data.estimate
    if est is not None:
        drop = (est["reference_accuracy"] - est["estimated_accuracy"]) * 100
        realized = (
            ""
            if est["realized_accuracy"] is None
            else f"; realized {est['realized_accuracy']:.1%} on {est['n_labelled']} labels"
        )
        demo.say(
            f"camera change: estimated accuracy {est['estimated_accuracy']:.1%} "
            f"({est['estimated_low']:.1%}-{est['estimated_high']:.1%}) vs reference "
            f"{est['reference_accuracy']:.1%}: estimated drop {drop:.1f} points{realized}"
        )
    demo.say(f"worst images of window {window_id}: {path.resolve()}")
