"""Dashboard JSON checks, alerting rules through promtool, and file-provisioning export."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from dashboards.boards import build_dashboards
from dashboards.expand import panel_queries, variables_used
from dashboards.grafana import (
    DATASOURCES,
    POSTGRES,
    POSTGRES_UID,
    PROMETHEUS,
    PROVISIONED,
    SCHEMA_VERSION,
)
from dashboards.rules import alerting_rules
from monitor.cli import cli
from monitor.detectors.registry import effect_floor
from monitor.metrics_spec import BY_NAME
from monitor.settings import FAMILIES, Settings

BOARDS = build_dashboards(Settings())
_METRIC = re.compile(r"\bdriftwatch_[a-z_]+")


def _spec_name(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name.removesuffix(suffix) in BY_NAME:
            return name.removesuffix(suffix)
    return name


def _all_text(board: dict[str, Any]) -> list[str]:
    texts = [t.get("expr") or t.get("rawSql") or "" for _, t in panel_queries(board)]
    texts += [
        a.get("expr") or a.get("target", {}).get("rawSql", "") for a in board["annotations"]["list"]
    ]
    texts += [v.get("definition", "") for v in board["templating"]["list"]]
    return texts


def test_three_dashboards_with_current_schema_and_unique_uids() -> None:
    uids = [b["uid"] for b in BOARDS]
    assert uids == ["driftwatch-oncall", "driftwatch-canary", "driftwatch-stakeholders"]
    assert len(set(uids)) == 3
    for board in BOARDS:
        assert board["schemaVersion"] == SCHEMA_VERSION >= 39
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        assert {v["name"] for v in board["templating"]["list"]} == {
            "datasource", "sql_datasource", "model", "version",
        }  # fmt: skip
        json.dumps(board)  # serialisable


def test_every_panel_datasource_resolves_and_targets_match() -> None:
    for board in BOARDS:
        for panel, target in panel_queries(board):
            assert panel["datasource"]["uid"] in DATASOURCES, panel["title"]
            assert target["datasource"] == panel["datasource"], panel["title"]
            if panel["datasource"] == PROMETHEUS:
                assert target["expr"].strip(), panel["title"]
            else:
                assert panel["datasource"] == POSTGRES
                assert target["rawSql"].strip() and target["format"] in ("table", "time_series")
        for panel in board["panels"]:
            assert panel["type"] == "row" or panel["targets"], panel["title"]
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def _datasource_refs(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``datasource`` value anywhere in a dashboard, with where it sits."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield f"{path}.{key}", value
            yield from _datasource_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _datasource_refs(item, f"{path}[{i}]")


def test_dashboards_reference_datasources_only_through_variables() -> None:
    """A stock Grafana (kube-prometheus-stack) has its own datasource uids: no panel, target,
    variable or annotation may name a fixed one (only Grafana's built-in annotations)."""
    for board in BOARDS:
        ds_vars = {v["name"]: v for v in board["templating"]["list"] if v["type"] == "datasource"}
        assert ds_vars["datasource"]["query"] == "prometheus"
        assert ds_vars["sql_datasource"]["query"] == "grafana-postgresql-datasource"
        refs = list(_datasource_refs(board))
        assert len(refs) > 20, board["uid"]
        for where, ref in refs:
            if ref == {"type": "grafana", "uid": "-- Grafana --"}:
                continue
            assert isinstance(ref, dict), (board["uid"], where, ref)
            name = ref["uid"].removeprefix("${").removesuffix("}")
            assert ref["uid"] == f"${{{name}}}" and name in ds_vars, (board["uid"], where, ref)
            assert ref["type"] == ds_vars[name]["query"], (board["uid"], where, ref)
        for panel, target in panel_queries(board):
            assert target["datasource"] == panel["datasource"], (board["uid"], panel["title"])
    assert set(DATASOURCES) == {"${datasource}", "${sql_datasource}"}


def test_every_variable_used_is_defined() -> None:
    for board in BOARDS:
        defined = {v["name"] for v in board["templating"]["list"]}
        for text in _all_text(board):
            assert variables_used(text) <= defined, text
        # a variable that is defined but never used is a dead control on the page
        used = set().union(*(variables_used(t) for t in _all_text(board)))
        used |= {
            ref["uid"][2:-1]
            for _, ref in _datasource_refs(board)
            if isinstance(ref, dict) and ref["uid"].startswith("${")
        }
        assert defined <= used, board["uid"]


def test_every_metric_is_declared_in_the_spec() -> None:
    for board in BOARDS:
        for text in _all_text(board):
            for name in _METRIC.findall(text):
                assert _spec_name(name) in BY_NAME, f"{name} in {board['uid']}"


def test_drift_panels_draw_warn_and_alert_thresholds() -> None:
    settings = Settings()
    oncall = BOARDS[0]
    drift = [
        p
        for p, t in panel_queries(oncall)
        if "driftwatch_drift_effect_size" in t.get("expr", "") and t["refId"] == "A"
    ]
    assert {p["title"].split()[0] for p in drift} == set(FAMILIES)
    for panel in drift:
        family = panel["title"].split()[0]
        floor = effect_floor(settings.detectors, "", family)
        steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        assert steps == [None, floor, floor * settings.policy.alert_effect_multiple]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
        assert any("driftwatch_drift_threshold" in t["expr"] for t in panel["targets"])


def test_canary_board_has_both_arms_and_rollout_annotations() -> None:
    canary = BOARDS[1]
    titles = [p["title"] for p in canary["panels"]]
    for name in ("Confidence histogram", "Class distribution"):
        assert f"{name}: stable" in titles and f"{name}: canary" in titles
    names = [a["name"] for a in canary["annotations"]["list"]]
    assert "Rollout promoted" in names and "Rollout rolled_back" in names


def test_rules_pass_promtool_and_fire_on_drift(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    result = CliRunner().invoke(cli, ["dashboards", "rules", str(rules)])
    assert result.exit_code == 0, result.output
    check = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 11 rules found" in check.stdout
    for group in alerting_rules(Settings())["groups"]:
        for rule in group["rules"]:
            for name in _METRIC.findall(rule["expr"]):
                assert _spec_name(name) in BY_NAME
    # promtool's rule unit tests: a drift state of 2 fires the critical alert, 0 does not.
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'driftwatch_drift_state{model="digits",version="v1",family="pixel"}',
                        "values": "0 0 2 2",
                    },
                    # a labelled counter's first sample is already 2: still new dead letters
                    {
                        "series": 'driftwatch_ingest_dead_letter_total{topic="p",reason="schema"}',
                        "values": "_ _ 2x20",
                    },
                    {
                        "series": 'driftwatch_arm_accuracy{model="digits",version="v2",arm="canary"}',
                        "values": "0.80x20",
                    },
                    {
                        "series": 'driftwatch_arm_accuracy{model="digits",version="v1",arm="stable"}',
                        "values": "0.95x20",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "DriftwatchDriftAlert", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "DriftwatchDriftAlert",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "service": "driftwatch",
                                    "model": "digits",
                                    "version": "v1",
                                    "family": "pixel",
                                },
                                "exp_annotations": _annotations(
                                    "DriftwatchDriftAlert",
                                    {
                                        "summary": "digits v1: pixel drift alert",
                                        "description": "The policy put the pixel family in alert: drift "
                                        "confirmed over consecutive windows.",
                                    },
                                ),
                            }
                        ],
                    },
                    {"eval_time": "1m", "alertname": "DriftwatchDeadLetters", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "DriftwatchDeadLetters",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "service": "driftwatch",
                                    "topic": "p",
                                    "reason": "schema",
                                },
                                "exp_annotations": _annotations(
                                    "DriftwatchDeadLetters",
                                    {"summary": "Messages dead-lettered on p (schema)"},
                                ),
                            }
                        ],
                    },
                    {"eval_time": "20m", "alertname": "DriftwatchDeadLetters", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "DriftwatchCanaryAccuracyRegression",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "service": "driftwatch",
                                    "model": "digits",
                                },
                                "exp_annotations": _annotations(
                                    "DriftwatchCanaryAccuracyRegression",
                                    {"summary": "digits: canary accuracy below stable"},
                                ),
                            }
                        ],
                    },
                ],
            }
        ],
    }
    spec = tmp_path / "rules_test.yaml"
    spec.write_text(yaml.safe_dump(tests))
    run = subprocess.run(
        ["promtool", "test", "rules", str(spec)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_rule_thresholds_come_from_settings_and_each_rule_has_its_runbook_anchor() -> None:
    from monitor.settings import AlertRuleSettings, AlertSettings, RetrainSettings

    def rules(settings: Settings) -> dict[str, dict[str, Any]]:
        return {r["alert"]: r for g in alerting_rules(settings)["groups"] for r in g["rules"]}

    default = rules(Settings())
    # the rollout controller rolls back at 3 points: the rule pages at the same tolerance
    assert "- 0.03)" in default["DriftwatchCanaryAccuracyRegression"]["expr"]
    custom = rules(
        Settings(
            retrain=RetrainSettings(max_online_accuracy_drop=0.05),
            alerts=AlertSettings(
                runbook_url="https://rb/driftwatch",
                rules=AlertRuleSettings(consumer_lag_messages=500, stale_logs_minutes=10),
            ),
        )
    )
    assert "- 0.05)" in custom["DriftwatchCanaryAccuracyRegression"]["expr"]
    assert custom["DriftwatchConsumerLagHigh"]["expr"].endswith("> 500")
    assert custom["DriftwatchModelStoppedLogging"]["expr"].endswith("> 600")
    anchors = [r["annotations"]["runbook_url"] for r in custom.values()]
    assert len(set(anchors)) == len(anchors)
    assert custom["DriftwatchDriftAlert"]["annotations"]["runbook_url"] == (
        "https://rb/driftwatch#driftwatchdriftalert"
    )


def _annotations(alert: str, rendered: dict[str, str]) -> dict[str, str]:
    """The rule's annotations with the templated ones replaced by their rendered text."""
    rules = [r for g in alerting_rules(Settings())["groups"] for r in g["rules"]]
    annotations = dict(next(r for r in rules if r["alert"] == alert)["annotations"])
    annotations.update(rendered)
    return annotations


@pytest.mark.parametrize("command", ["export"])
def test_export_writes_provisioning_yaml_and_json(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli, ["dashboards", command, str(tmp_path)])
    assert result.exit_code == 0, result.output
    sources = yaml.safe_load((tmp_path / "provisioning/datasources/driftwatch.yaml").read_text())
    assert sources["apiVersion"] == 1
    assert {d["uid"] for d in sources["datasources"]} == set(PROVISIONED)
    pg = next(d for d in sources["datasources"] if d["uid"] == POSTGRES_UID)
    assert pg["secureJsonData"]["password"].startswith("$")  # never a literal secret
    providers = yaml.safe_load((tmp_path / "provisioning/dashboards/driftwatch.yaml").read_text())
    provider = providers["providers"][0]
    assert provider["type"] == "file" and provider["folderUid"] == "driftwatch"
    files = sorted((tmp_path / "dashboards").glob("*.json"))
    assert [f.stem for f in files] == sorted(b["uid"] for b in BOARDS)
    for f in files:
        assert json.loads(f.read_text()) == next(b for b in BOARDS if b["uid"] == f.stem)


def test_panels_do_not_overlap_on_the_grid() -> None:
    for board in BOARDS:
        cells: dict[tuple[int, int], str] = {}
        for panel in board["panels"]:
            pos = panel["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]
        assert all("w" not in p.get("options", {}) for p in board["panels"])
