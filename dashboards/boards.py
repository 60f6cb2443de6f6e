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

from dashboards.canary_board import canary
from dashboards.grafana import (
    STATE_MAPPINGS,
    Json,
    dashboard,
    prom_panel,
    row,
    sql_panel,
    thresholds,
)
from dashboards.impact_panels import accuracy_panels
from dashboards.selectors import RATE, SEL, SQL_FILTER, variables
from monitor.detectors.registry import effect_floor as floor
from monitor.settings import FAMILIES, Settings


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


def _oncall_state(settings: Settings) -> list[Json]:
    return [
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
    ]


def _oncall_drift(settings: Settings) -> list[Json]:
    return [
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
    ]


def _oncall_pipeline(settings: Settings) -> list[Json]:
    return [
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


def oncall(settings: Settings) -> Json:
    panels = [
        *_oncall_state(settings),
        *_oncall_drift(settings),
        *_oncall_pipeline(settings),
    ]
    return dashboard("driftwatch-oncall", "Driftwatch / On-call", panels, variables())


def _stakeholder_health(settings: Settings) -> list[Json]:
    return [
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
    ]


def _stakeholder_incidents(settings: Settings) -> list[Json]:
    return [
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
    ]


def _stakeholder_retraining(settings: Settings) -> list[Json]:
    return [
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


def stakeholders(settings: Settings) -> Json:
    panels = [
        *_stakeholder_health(settings),
        *_stakeholder_incidents(settings),
        *_stakeholder_retraining(settings),
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
