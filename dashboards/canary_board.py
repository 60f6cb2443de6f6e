"""The Canary dashboard: stable vs canary arms side by side, the rollout and its decisions."""

from __future__ import annotations

from dashboards.grafana import (
    POSTGRES,
    PROMETHEUS,
    Json,
    dashboard,
    prom_panel,
    row,
    sql_panel,
    sql_target,
    thresholds,
)
from dashboards.selectors import ARMS, SEL, SQL_FILTER, variables
from monitor.detectors.registry import effect_floor
from monitor.settings import Settings

ARMS_SEL = 'arm=~"stable|canary"'


def _arm_panels(title: str, metric: str, label: str, unit: str) -> list[Json]:
    """One bar chart per arm, bars by ``label`` (instant query in table format)."""
    panels = []
    for arm in ARMS:
        p = prom_panel(
            f"{title}: {arm}",
            (f'{metric}{{{SEL}, arm="{arm}"}}', f"{{{{{label}}}}}"),
            kind="barchart",
            instant=True,
            unit=unit,
            xField=label,
        )
        p["targets"][0]["format"] = "table"
        panels.append(p)
    return panels


def _arm_comparison(settings: Settings) -> list[Json]:
    return [
        row("Stable vs canary"),
        *_arm_panels(
            "Confidence histogram", "driftwatch_arm_confidence_ratio", "upper", "percentunit"
        ),
        *_arm_panels("Class distribution", "driftwatch_arm_class_ratio", "class", "percentunit"),
        prom_panel(
            "Labelled accuracy",
            (f"driftwatch_arm_accuracy{{{SEL}, {ARMS_SEL}}}", "{{version}} {{arm}}"),
            unit="percentunit",
        ),
        prom_panel(
            "Latency",
            (f"driftwatch_arm_latency_seconds{{{SEL}, {ARMS_SEL}}}", "{{arm}} p{{percentile}}"),
            unit="s",
        ),
        prom_panel(
            "Low-confidence rate",
            (f"driftwatch_arm_low_confidence_ratio{{{SEL}, {ARMS_SEL}}}", "{{arm}}"),
            unit="percentunit",
        ),
        prom_panel(
            "Agreement (offline gate)",
            ('driftwatch_canary_agreement{model=~"$model"}', "{{model}}"),
            kind="stat",
            unit="percentunit",
            steps=thresholds((None, "red"), (0.9, "orange"), (0.97, "green")),
        ),
        prom_panel(
            "Drift per arm",
            (f"driftwatch_drift_effect_size{{{SEL}, {ARMS_SEL}}}", "{{arm}} {{family}}"),
            steps=thresholds(
                (None, "green"), (effect_floor(settings.detectors, "", "confidence"), "orange")
            ),
            custom={"thresholdsStyle": {"mode": "line"}},
        ),
        sql_panel(
            "Labelled accuracy per arm (store)",
            "SELECT $__timeGroupAlias(ts, $__interval), arm AS metric,\n"
            "  avg(CASE WHEN label = predicted_class THEN 1.0 ELSE 0.0 END) AS accuracy\n"
            f"FROM predictions WHERE $__timeFilter(ts) AND {SQL_FILTER}\n"
            "  AND label IS NOT NULL AND arm IN ('stable', 'canary')\nGROUP BY 1, 2 ORDER BY 1",
            kind="timeseries",
            fmt="time_series",
            unit="percentunit",
        ),
    ]


def _rollout() -> list[Json]:
    return [
        row("Rollout"),
        prom_panel(
            "Rollout step and canary traffic ratio",
            ('driftwatch_canary_step{model=~"$model"}', "step {{version}}"),
            ('driftwatch_canary_traffic_ratio{model=~"$model"}', "traffic {{version}}"),
            custom={"drawStyle": "line", "lineInterpolation": "stepAfter"},
        ),
        prom_panel(
            "Rollout events",
            (
                'sum by (model, event) (driftwatch_rollout_events_total{model=~"$model"})',
                "{{event}}",
            ),
            kind="stat",
            instant=True,
        ),
        sql_panel(
            "Rollout history (store)",
            'SELECT s.ts AS "time", r.candidate_version AS candidate, s.step_index AS step,\n'
            "  s.weight, s.outcome, s.stable_accuracy, s.canary_accuracy, s.reason\n"
            "FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout_id\n"
            "WHERE $__timeFilter(s.ts) AND r.model IN ($model)\nORDER BY s.ts DESC",
        ),
        sql_panel(
            "Traffic per arm (store)",
            "SELECT $__timeGroupAlias(ts, $__interval), arm AS metric, count(*) AS predictions\n"
            f"FROM predictions WHERE $__timeFilter(ts) AND {SQL_FILTER} AND arm IS NOT NULL\n"
            "GROUP BY 1, 2 ORDER BY 1",
            kind="timeseries",
            fmt="time_series",
            w=24,
        ),
    ]


def _annotations() -> list[Json]:
    annotations = [
        {
            "name": f"Rollout {event}",
            "enable": True,
            "datasource": PROMETHEUS,
            "iconColor": colour,
            "step": "30s",
            "titleFormat": f"{event} {{{{model}}}}",
            "expr": f'changes(driftwatch_rollout_events_total{{model=~"$model", event="{event}"}}'
            f"[$__interval]) > 0",
        }
        for event, colour in (("promoted", "green"), ("rolled_back", "red"))
    ]
    annotations.append(
        {
            "name": "Rollout decisions (store)",
            "enable": True,
            "datasource": POSTGRES,
            "iconColor": "purple",
            "target": sql_target(
                "SELECT s.ts AS \"time\", s.outcome || ' ' || r.candidate_version || ': ' || s.reason"
                " AS text,\n  s.outcome AS tags\n"
                "FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout_id\n"
                "WHERE s.outcome IN ('promote', 'rollback') AND $__timeFilter(s.ts)\n"
                "  AND r.model IN ($model) ORDER BY 1",
                ref="Anno",
            ),
        }
    )
    return annotations


def canary(settings: Settings) -> Json:
    panels = [*_arm_comparison(settings), *_rollout()]
    return dashboard(
        "driftwatch-canary", "Driftwatch / Canary", panels, variables(), _annotations()
    )
