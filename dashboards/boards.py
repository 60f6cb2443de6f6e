"""The three Driftwatch dashboards: On-call, Canary and Stakeholders.

Prometheus expressions use only the names in :mod:`monitor.metrics_spec`; SQL panels read the
store's tables (``drift_results``, ``windows``, ``predictions``). Drift panels draw the warn and
alert thresholds twice: as the live ``driftwatch_drift_threshold`` series and as static threshold
lines from the settings (warn = effect floor, alert = floor x ``policy.alert_effect_multiple``).

>>> from monitor.settings import Settings
>>> [d["uid"] for d in build_dashboards(Settings())]
['driftwatch-oncall', 'driftwatch-canary', 'driftwatch-stakeholders']
"""

from __future__ import annotations

from dashboards.grafana import (
    POSTGRES,
    PROMETHEUS,
    STATE_MAPPINGS,
    Json,
    dashboard,
    prom_panel,
    query_variable,
    row,
    sql_panel,
    sql_target,
    thresholds,
)
from dashboards.impact_panels import accuracy_panels
from monitor.detectors.registry import effect_floor as floor
from monitor.settings import FAMILIES, Settings

SEL = 'model=~"$model", version=~"$version"'
RATE = "$__rate_interval"
SQL_FILTER = "model IN ($model) AND model_version IN ($version)"
ARMS = ("stable", "canary")


def variables() -> list[Json]:
    return [
        query_variable("model", "Model", "label_values(driftwatch_predictions_total, model)"),
        query_variable(
            "version",
            "Version",
            'label_values(driftwatch_predictions_total{model=~"$model"}, version)',
        ),
    ]


def _drift_panel(settings: Settings, family: str) -> Json:
    warn = floor(settings.detectors, "", family)
    alert = warn * settings.policy.alert_effect_multiple
    return prom_panel(
        f"{family} drift: effect size vs thresholds",
        (f'driftwatch_drift_effect_size{{{SEL}, family="{family}"}}', "{{version}} {{arm}}"),
        (f'driftwatch_drift_threshold{{{SEL}, family="{family}"}}', "{{level}} threshold"),
        steps=thresholds((None, "green"), (warn, "orange"), (alert, "red")),
        custom={"thresholdsStyle": {"mode": "line+area"}, "lineWidth": 2},
        overrides=[
            {
                "matcher": {"id": "byRegexp", "options": ".*threshold"},
                "properties": [
                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                    {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                ],
            }
        ],
        description=f"Effect size of the {family} family per window; dashed: thresholds.",
    )


def oncall(settings: Settings) -> Json:
    panels: list[Json] = [
        row("State"),
        prom_panel(
            "Drift state per model and family",
            (f"max by (model, family) (driftwatch_drift_state{{{SEL}}})", "{{model}} {{family}}"),
            kind="state-timeline",
            mappings=STATE_MAPPINGS,
            w=16,
            steps=thresholds((None, "green"), (1, "orange"), (2, "red")),
        ),
        prom_panel(
            "Active alerts",
            (
                'sum by (model, family, severity) (driftwatch_alerts_active{model=~"$model"})',
                "{{model}} {{family}} {{severity}}",
            ),
            kind="stat",
            instant=True,
            w=8,
            steps=thresholds((None, "green"), (1, "red")),
        ),
        sql_panel(
            "Alerts (store)",
            'SELECT opened_at AS "time", model, model_version AS version, family, severity,\n'
            "  status, summary\nFROM alerts\n"
            f"WHERE $__timeFilter(opened_at) AND {SQL_FILTER}\n"
            "ORDER BY opened_at DESC LIMIT 50",
            w=24,
        ),
        *accuracy_panels("oncall"),
        row("Drift statistics"),
        *[_drift_panel(settings, family) for family in FAMILIES],
        prom_panel(
            "Features that moved (relative change)",
            (f"driftwatch_feature_change{{{SEL}}}", "{{family}} {{feature}}"),
            kind="bargauge",
            instant=True,
            unit="percentunit",
            steps=thresholds((None, "blue")),
            displayMode="basic",
            orientation="horizontal",
        ),
        sql_panel(
            "Moved features (store)",
            'SELECT r.window_end AS "time", r.model, r.model_version AS version, r.family,\n'
            "  f->>'name' AS feature, (f->>'ref_value')::float AS reference,\n"
            "  (f->>'cur_value')::float AS current, (f->>'effect_size')::float AS effect_size\n"
            "FROM drift_results r CROSS JOIN LATERAL json_array_elements(r.details) f\n"
            "WHERE $__timeFilter(r.window_end) AND r.model IN ($model)\n"
            "  AND r.model_version IN ($version) AND (f->>'drifted')::boolean\n"
            "ORDER BY r.window_end DESC LIMIT 100",
        ),
        row("Pipeline"),
        prom_panel(
            "Windows evaluated",
            (
                f"sum by (model, version, arm) (increase(driftwatch_windows_evaluated_total{{{SEL}}}"
                f"[{RATE}]))",
                "{{model}} {{version}} {{arm}}",
            ),
        ),
        sql_panel(
            "Windows closed (store)",
            "SELECT $__timeGroupAlias(end_ts, $__interval), state AS metric, count(*) AS windows\n"
            f"FROM windows WHERE $__timeFilter(end_ts) AND {SQL_FILTER}\n"
            "GROUP BY 1, 2 ORDER BY 1",
            kind="timeseries",
            fmt="time_series",
        ),
        prom_panel(
            "Ingest rate",
            (
                f"sum by (topic, outcome) (rate(driftwatch_ingest_messages_total[{RATE}]))",
                "{{topic}} {{outcome}}",
            ),
            unit="reqps",
        ),
        prom_panel(
            "Consumer lag",
            ("sum by (topic) (driftwatch_ingest_consumer_lag)", "{{topic}}"),
            steps=thresholds((None, "green"), (10000, "red")),
        ),
        prom_panel(
            "Dead-lettered messages",
            ("sum by (topic, reason) (driftwatch_ingest_dead_letter_total)", "{{reason}}"),
            kind="stat",
            instant=True,
            steps=thresholds((None, "green"), (1, "orange")),
        ),
        prom_panel(
            "Evaluation time p99",
            (
                f"histogram_quantile(0.99, sum by (le) (rate(driftwatch_evaluation_seconds_bucket"
                f"[{RATE}])))",
                "p99",
            ),
            unit="s",
        ),
        prom_panel(
            "Alert deliveries",
            (
                "sum by (channel, outcome) (driftwatch_alert_deliveries_total)",
                "{{channel}} {{outcome}}",
            ),
            kind="stat",
            instant=True,
        ),
        sql_panel(
            "Drift history (store)",
            "SELECT window_end AS \"time\", family || ' ' || arm AS metric, effect_size\n"
            f"FROM drift_results WHERE $__timeFilter(window_end) AND {SQL_FILTER}\n"
            "ORDER BY 1",
            kind="timeseries",
            fmt="time_series",
            w=24,
        ),
    ]
    return dashboard("driftwatch-oncall", "Driftwatch / On-call", panels, variables())


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


def canary(settings: Settings) -> Json:
    arms, orange = 'arm=~"stable|canary"', floor(settings.detectors, "", "confidence")
    panels: list[Json] = [
        row("Stable vs canary"),
        *_arm_panels(
            "Confidence histogram", "driftwatch_arm_confidence_bucket", "le", "percentunit"
        ),
        *_arm_panels("Class distribution", "driftwatch_arm_class_share", "class", "percentunit"),
        prom_panel(
            "Labelled accuracy",
            (f"driftwatch_arm_accuracy{{{SEL}, {arms}}}", "{{version}} {{arm}}"),
            unit="percentunit",
        ),
        prom_panel(
            "Latency",
            (f"driftwatch_arm_latency_seconds{{{SEL}, {arms}}}", "{{arm}} q{{quantile}}"),
            unit="s",
        ),
        prom_panel(
            "Low-confidence rate",
            (f"driftwatch_arm_low_confidence_rate{{{SEL}, {arms}}}", "{{arm}}"),
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
            (f"driftwatch_drift_effect_size{{{SEL}, {arms}}}", "{{arm}} {{family}}"),
            steps=thresholds((None, "green"), (orange, "orange")),
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
        row("Rollout"),
        prom_panel(
            "Rollout step and canary weight",
            ('driftwatch_canary_step{model=~"$model"}', "step {{version}}"),
            ('driftwatch_canary_weight{model=~"$model"}', "weight % {{version}}"),
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
    return dashboard("driftwatch-canary", "Driftwatch / Canary", panels, variables(), annotations)


def stakeholders(settings: Settings) -> Json:
    panels: list[Json] = [
        row("Health"),
        prom_panel(
            "Model health",
            ('max by (model) (driftwatch_drift_state{model=~"$model"})', "{{model}}"),
            kind="stat",
            instant=True,
            mappings=STATE_MAPPINGS,
            steps=thresholds((None, "green"), (1, "orange"), (2, "red")),
            w=8,
        ),
        sql_panel(
            "Latest result per model and family (store)",
            "SELECT DISTINCT ON (model, family) model, model_version AS version, family,\n"
            '  effect_size, threshold, drifted, window_end AS "time"\n'
            "FROM drift_results WHERE model IN ($model)\n"
            "ORDER BY model, family, window_end DESC",
            w=16,
        ),
        prom_panel(
            "Predictions per second",
            (f"sum by (model) (rate(driftwatch_predictions_total{{{SEL}}}[{RATE}]))", "{{model}}"),
            unit="reqps",
        ),
        *accuracy_panels("stakeholders"),
        row("Incidents"),
        prom_panel(
            "Alerts opened",
            (
                'sum by (model, severity) (driftwatch_alerts_total{model=~"$model"})',
                "{{model}} {{severity}}",
            ),
        ),
        sql_panel(
            "Drifted windows over time (store)",
            "SELECT $__timeGroupAlias(window_end, $__interval), family AS metric,\n"
            "  sum(CASE WHEN drifted THEN 1 ELSE 0 END) AS drifted_windows\n"
            f"FROM drift_results WHERE $__timeFilter(window_end) AND {SQL_FILTER}\n"
            "GROUP BY 1, 2 ORDER BY 1",
            kind="timeseries",
            fmt="time_series",
        ),
        row("Retraining and INT8"),
        prom_panel(
            "Retraining jobs",
            ('sum by (model, state) (driftwatch_retrain_jobs_total{model=~"$model"})', "{{state}}"),
            kind="stat",
            instant=True,
        ),
        sql_panel(
            "Retraining history (store)",
            'SELECT created_at AS "time", model, source, state, candidate_version, reason\n'
            "FROM retrain_jobs WHERE $__timeFilter(created_at) AND model IN ($model)\n"
            "ORDER BY created_at DESC LIMIT 50",
            w=24,
        ),
        prom_panel(
            "Accuracy per version (what each retrain bought)",
            (
                'max by (version, format) (driftwatch_model_accuracy{model=~"$model"})',
                "{{version}} {{format}}",
            ),
            kind="barchart",
            instant=True,
            unit="percentunit",
        ),
        prom_panel(
            "INT8 size saving",
            (
                '1 - max by (model, version) (driftwatch_model_size_bytes{model=~"$model", '
                'format="int8"}) / max by (model, version) (driftwatch_model_size_bytes'
                '{model=~"$model", format="fp32"})',
                "{{version}}",
            ),
            kind="stat",
            instant=True,
            unit="percentunit",
        ),
        prom_panel(
            "INT8 latency saving",
            (
                "1 - max by (model, version, batch) (driftwatch_model_latency_seconds"
                '{model=~"$model", format="int8"}) / max by (model, version, batch) '
                '(driftwatch_model_latency_seconds{model=~"$model", format="fp32"})',
                "{{version}} batch {{batch}}",
            ),
            kind="stat",
            instant=True,
            unit="percentunit",
        ),
    ]
    return dashboard(
        "driftwatch-stakeholders",
        "Driftwatch / Stakeholders",
        panels,
        variables(),
        time_from="now-7d",
    )


def build_dashboards(settings: Settings) -> list[Json]:
    """The three dashboards, generated from ``settings`` (thresholds come from there)."""
    return [oncall(settings), canary(settings), stakeholders(settings)]
