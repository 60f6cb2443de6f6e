"""What every board filters by: the model and version variables and their selectors."""

from __future__ import annotations

from dashboards.grafana import Json, query_variable

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
