"""Small builders for Grafana dashboard JSON (schemaVersion 39, Grafana 10.4/11).

Plain dicts in, plain dicts out: a dashboard is data, and every builder here is a pure function,
so the JSON the tests check is the JSON that is pushed and exported.

>>> p = prom_panel("Windows", 'sum(driftwatch_windows_evaluated_total{model=~"$model"})')
>>> p["datasource"]["uid"], p["targets"][0]["refId"]
('${datasource}', 'A')

Panels name their datasource only through the dashboard variables ``datasource`` (Prometheus)
and ``sql_datasource`` (the PostgreSQL store), so the boards work in any Grafana, e.g. a stock
kube-prometheus-stack one, whatever its datasources' uids; they default to the provisioned
``driftwatch-prometheus`` and ``driftwatch-postgres``.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 39
PROMETHEUS_UID = "driftwatch-prometheus"
POSTGRES_UID = "driftwatch-postgres"
PROMETHEUS_TYPE, POSTGRES_TYPE = "prometheus", "grafana-postgresql-datasource"
#: Datasource references of panels, targets, variables and annotations: variables only.
PROMETHEUS = {"type": PROMETHEUS_TYPE, "uid": "${datasource}"}
POSTGRES = {"type": POSTGRES_TYPE, "uid": "${sql_datasource}"}
DATASOURCES = {PROMETHEUS["uid"]: PROMETHEUS, POSTGRES["uid"]: POSTGRES}
#: The provisioned datasources (export, push) the variables default to.
PROVISIONED = {PROMETHEUS_UID: PROMETHEUS_TYPE, POSTGRES_UID: POSTGRES_TYPE}

#: The drift state gauge's values, shown as words and colours.
STATE_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "ok", "color": "green", "index": 0},
            "1": {"text": "warn", "color": "orange", "index": 1},
            "2": {"text": "alert", "color": "red", "index": 2},
        },
    }
]

Json = dict[str, Any]


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Absolute threshold steps; the first value must be None (the base colour)."""
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def prom_target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Json:
    return {
        "datasource": PROMETHEUS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }


def sql_target(sql: str, ref: str = "A", fmt: str = "table") -> Json:
    return {
        "datasource": POSTGRES,
        "refId": ref,
        "rawSql": sql,
        "format": fmt,
        "editorMode": "code",
        "rawQuery": True,
    }


def panel(
    title: str,
    targets: list[Json],
    kind: str = "timeseries",
    datasource: Json = PROMETHEUS,
    unit: str = "short",
    steps: Json | None = None,
    description: str = "",
    **options: Any,
) -> Json:
    """A panel of ``kind`` (timeseries, stat, table, barchart, bargauge, state-timeline)."""
    defaults: Json = {"unit": unit}
    if steps is not None:
        defaults["thresholds"] = steps
    custom = options.pop("custom", None)
    if custom is not None:
        defaults["custom"] = custom
    mappings = options.pop("mappings", None)
    if mappings is not None:
        defaults["mappings"] = mappings
    size: Json = {k: options.pop(k) for k in ("w", "h") if k in options}  # layout hints
    return {
        **size,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": options.pop("overrides", [])},
        "options": options,
    }


def prom_panel(title: str, *exprs: str | tuple[str, str], **kwargs: Any) -> Json:
    """A Prometheus panel with one target per expression (``(expr, legend)`` or ``expr``)."""
    instant = kwargs.pop("instant", False)
    targets = []
    for i, item in enumerate(exprs):
        expr, legend = item if isinstance(item, tuple) else (item, "")
        targets.append(prom_target(expr, legend, chr(ord("A") + i), instant))
    return panel(title, targets, datasource=PROMETHEUS, **kwargs)


def sql_panel(title: str, sql: str, kind: str = "table", fmt: str = "table", **kwargs: Any) -> Json:
    return panel(title, [sql_target(sql, fmt=fmt)], kind=kind, datasource=POSTGRES, **kwargs)


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def datasource_variable(name: str, label: str, kind: str, default_uid: str) -> Json:
    """A variable of type ``datasource``: any datasource of ``kind`` in this Grafana."""
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": kind,
        "regex": "",
        "refresh": 1,
        "multi": False,
        "includeAll": False,
        "current": {"text": default_uid, "value": default_uid},
        "hide": 0,
        "options": [],
    }


DATASOURCE_VARIABLES: list[Json] = [
    datasource_variable("datasource", "Prometheus", PROMETHEUS_TYPE, PROMETHEUS_UID),
    datasource_variable("sql_datasource", "Store (PostgreSQL)", POSTGRES_TYPE, POSTGRES_UID),
]


def query_variable(name: str, label: str, query: str, multi: bool = True) -> Json:
    """A Prometheus ``label_values`` variable; multi-value with an "All" option."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROMETHEUS,
        "query": {"query": query, "refId": f"{name}-var", "qryType": 1},
        "definition": query,
        "refresh": 2,
        "multi": multi,
        "includeAll": multi,
        # No custom "All" value: Grafana then expands All to every option, which works for both
        # PromQL regexes and SQL ``IN (...)`` lists (".*" would break the SQL panels).
        "allValue": None,
        "current": {"text": ["All"], "value": ["$__all"]} if multi else {},
        "sort": 1,
        "hide": 0,
        "options": [],
    }


def layout(panels: list[Json], width: int = 12, height: int = 8) -> list[Json]:
    """Give panels ids and grid positions: rows span the width, panels flow two (or
    ``24 // w``) per line; a panel may carry its own ``w`` hint in ``gridPos``."""
    placed: list[Json] = []
    x, y, line_h = 0, 0, 0
    for pid, item in enumerate(panels, start=1):
        p = dict(item)
        p["id"] = pid
        if p["type"] == "row":
            if x:
                y, x = y + line_h, 0
            p["gridPos"] = {"x": 0, "y": y, "w": 24, "h": 1}
            y, line_h = y + 1, 0
        else:
            w = p.pop("w", width)
            h = p.pop("h", height)
            if x + w > 24:
                y, x, line_h = y + line_h, 0, 0
            p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
            x, line_h = x + w, max(line_h, h)
        placed.append(p)
    return placed


def dashboard(
    uid: str,
    title: str,
    panels: list[Json],
    variables: list[Json],
    annotations: list[Json] | None = None,
    tags: tuple[str, ...] = ("driftwatch",),
    time_from: str = "now-6h",
) -> Json:
    """A complete dashboard model, without ``id`` and ``version`` (Grafana owns those)."""
    builtin = {
        "builtIn": 1,
        "name": "Annotations & Alerts",
        "type": "dashboard",
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    }
    return {
        "uid": uid,
        "title": title,
        "tags": list(tags),
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "refresh": "30s",
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": [*DATASOURCE_VARIABLES, *variables]},
        "annotations": {"list": [builtin, *(annotations or [])]},
        "panels": layout(panels),
        "links": [
            {
                "type": "dashboards",
                "tags": ["driftwatch"],
                "asDropdown": True,
                "title": "Driftwatch",
                "includeVars": True,
                "keepTime": True,
            }
        ],
    }
