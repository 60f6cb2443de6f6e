"""Impact panels for the On-call and Stakeholders dashboards: estimated (label-free, with its
interval) and realized accuracy per model, version and arm, read from ``window_estimates``.

>>> [p["title"] for p in accuracy_panels("oncall")][0]
'Impact: is the drift harmful?'
"""

from __future__ import annotations

from dashboards.grafana import Json, row, sql_panel

SQL_FILTER = "model IN ($model) AND model_version IN ($version)"
_EST = f"FROM window_estimates WHERE $__timeFilter(window_end) AND {SQL_FILTER}"


def accuracy_panels(board: str) -> list[Json]:
    """Estimated (label-free, with its interval) and realized accuracy per model, version and
    arm, from ``window_estimates``; ``board`` is ``oncall`` or ``stakeholders``."""
    series = "\nUNION ALL\n".join(
        f"SELECT window_end AS \"time\", model || ' ' || model_version || '/' || arm || "
        f"' {name}' AS metric, {column} AS accuracy\n{_EST}"
        + ("" if name.startswith("estimated") else f" AND {column} IS NOT NULL")
        for name, column in (
            ("estimated", "estimated_accuracy"),
            ("estimated low", "estimated_low"),
            ("estimated high", "estimated_high"),
            ("realized", "realized_accuracy"),
        )
    )
    over_time = sql_panel(
        "Accuracy: estimated (label-free) vs realized (store)",
        series + "\nORDER BY 1",
        kind="timeseries",
        fmt="time_series",
        unit="percentunit",
        w=16 if board == "oncall" else 24,
        description="CBPE estimate from calibrated confidence with its interval; realized "
        "accuracy once labels arrive (late labels update it). A gap between them is the "
        "estimate failing (concept shift, adversarial inputs): trust the labels.",
    )
    latest = sql_panel(
        "Estimated accuracy drop per version and arm (store)",
        "SELECT DISTINCT ON (model, model_version, arm) model, model_version AS version, arm,\n"
        "  round((100 * (reference_accuracy - estimated_accuracy))::numeric, 1) AS est_drop_pts,\n"
        "  estimated_accuracy AS estimated, realized_accuracy AS realized, n_labelled,\n"
        '  outlier_share, window_end AS "time"\n'
        f"{_EST}\nORDER BY model, model_version, arm, window_end DESC",
        w=8 if board == "oncall" else 24,
    )
    return [row("Impact: is the drift harmful?"), over_time, latest]
