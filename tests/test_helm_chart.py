"""The Helm chart, rendered by Helm's own engine (helm-python-sdk binds Helm v4's Go SDK, so
`helm lint` and `helm template` run here without a cluster or a `helm` binary).

Each test renders the chart and checks what a cluster would get: the settings file validates
with :class:`monitor.settings.Settings` once the Secret's environment is applied, the
sub-commands exist in ``monitor.cli.COMMANDS``, ingest replicas share one consumer group, the
evaluator can never run twice, pods are non-root with a read-only root filesystem, and the
optional monitoring objects are valid (``promtool check rules``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import helm_python as helm
import pytest
import yaml

from dashboards.values_schema import render as render_schema
from ingest.liveness import Heartbeat
from monitor.cli import COMMANDS, cli
from monitor.metrics_spec import BY_NAME
from monitor.settings import Settings, load_settings

CHART = Path(__file__).resolve().parents[1] / "helm" / "driftwatch"
DB_URL = "postgresql://dw:s3cret@pg.example:5432/driftwatch"
TOKEN = "t0ken-" + "x" * 26
REQUIRED: dict[str, Any] = {"secrets": {"databaseUrl": DB_URL, "apiToken": TOKEN}}
COMPONENTS = ("ingest", "evaluator", "api")


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge values layers, later ones winning (as repeated ``-f`` files do)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def render(values: dict[str, Any] | None = None, chart: Path = CHART) -> list[dict[str, Any]]:
    """``helm template`` of the chart: every manifest as a dict (NOTES.txt left out)."""
    with helm.Chart.load(str(chart)) as loaded:
        files = loaded.render(
            merged(REQUIRED, values or {}), name="dw", namespace="mon", is_install=True
        )
    docs: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith(".txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def workload(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    kind = "Job" if component == "migrate" else "Deployment"
    (doc,) = [
        d
        for d in of_kind(docs, kind)
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return doc


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def secret_values(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    data = named(docs, "Secret", name)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def settings_in_pod(
    docs: list[dict[str, Any]],
    component: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    secrets: dict[str, dict[str, str]] | None = None,
) -> Settings:
    """The Settings the container of ``component`` builds: its mounted ConfigMap file plus the
    environment its Secret references give it."""
    pod = workload(docs, component)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    config_path = Path(env["DRIFTWATCH_CONFIG"]["value"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert config_path.parent == Path(mount["mountPath"])
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    data = named(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    local = tmp_path / f"{component}.yaml"
    local.write_text(data[config_path.name])

    for name in [n for n in os.environ if n.startswith("DRIFTWATCH_")]:
        monkeypatch.delenv(name)
    for name, item in env.items():
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        values = (secrets or {}).get(ref["name"]) or secret_values(docs, ref["name"])
        if ref["key"] in values:
            monkeypatch.setenv(name, values[ref["key"]])
        else:
            assert ref["optional"] is True, f"{name}: required key {ref['key']} missing"
    # load_settings(path) would set DRIFTWATCH_CONFIG for good; monkeypatch undoes this one.
    monkeypatch.setenv("DRIFTWATCH_CONFIG", str(local))
    return load_settings()


# --- helm lint / template ------------------------------------------------------------------


def test_helm_lint_strict_finds_no_warning() -> None:
    report = helm.lint(str(CHART), REQUIRED, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_template_without_database_url_names_the_missing_value() -> None:
    # `helm lint` is lenient about `required` by design; `helm template`/install are not.
    with pytest.raises(helm.HelmError, match=r"secrets.databaseUrl is required"):
        render({"secrets": {"databaseUrl": ""}})


def test_prod_refuses_a_short_api_token() -> None:
    with pytest.raises(helm.HelmError, match="apiToken of at least 16 characters"):
        render({"secrets": {"apiToken": "short"}})


def test_default_render_has_every_workload_and_no_optional_monitoring() -> None:
    docs = render()
    kinds = sorted({doc["kind"] for doc in docs})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Job",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    for component in (*COMPONENTS, "migrate"):
        workload(docs, component)


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("component", [*COMPONENTS, "migrate"])
def test_each_pod_builds_valid_prod_settings(
    component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = [
        {"type": "slack", "url": "https://hooks.slack.invalid/services/T/B/X"},
        {"type": "pagerduty", "routing_key": "R" * 32},
        {"type": "webhook", "url": "https://hooks.invalid/dw", "secret": "whsec_" + "a2V5" * 8},
    ]
    docs = render({"secrets": {"alertChannels": channels, "kafkaSaslPassword": "kp"}})
    settings = settings_in_pod(docs, component, tmp_path, monkeypatch)
    assert settings.environment == "prod"
    assert settings.database.url == "postgresql+psycopg://dw:s3cret@pg.example:5432/driftwatch"
    assert settings.api.token is not None and settings.api.token.get_secret_value() == TOKEN
    assert [c.type for c in settings.alerts.channels] == ["slack", "pagerduty", "webhook"]
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "kp"
    # the file and the environment merge: file-only fields survive next to env-only ones
    assert settings.database.pool_size == 5
    assert settings.retrain.registry_dir == Path("/var/lib/driftwatch/registry")


def test_invalid_settings_in_values_are_caught_at_template_time() -> None:
    # values.schema.json carries the settings model's bounds (max_count >= 10)
    with pytest.raises(helm.HelmError, match=r"/config/windows/max_count': minimum"):
        render({"config": {"windows": {"max_count": 1}}})


def test_migration_hook_reads_the_same_settings_as_the_release() -> None:
    docs = render({"config": {"scheduler": {"interval_seconds": 7}}})
    main = named(docs, "ConfigMap", "dw-driftwatch")["data"]
    hook = named(docs, "ConfigMap", "dw-driftwatch-migrate")["data"]
    assert main == hook
    assert yaml.safe_load(main["driftwatch.yaml"])["scheduler"]["interval_seconds"] == 7
    assert secret_values(docs, "dw-driftwatch") == secret_values(docs, "dw-driftwatch-migrate")


def test_existing_secret_replaces_the_charts_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render({"secrets": {"existingSecret": "dw-prod", "databaseUrl": "", "apiToken": ""}})
    assert of_kind(docs, "Secret") == []
    for name, pod in pod_specs(docs):
        refs = {
            item["valueFrom"]["secretKeyRef"]["name"]
            for item in pod["containers"][0]["env"]
            if "valueFrom" in item
        }
        assert refs == {"dw-prod"}, name
    mine = {"dw-prod": {"database-url": DB_URL, "api-token": TOKEN}}
    settings = settings_in_pod(docs, "evaluator", tmp_path, monkeypatch, secrets=mine)
    assert settings.database.url.startswith("postgresql+psycopg://")


def test_changing_settings_rolls_every_deployment() -> None:
    def checksums(docs: list[dict[str, Any]]) -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for d in of_kind(docs, "Deployment")
        }

    before = checksums(render())
    after = checksums(render({"config": {"policy": {"windows_to_alert": 4}}}))
    assert before.keys() == after.keys() and len(before) == 3
    assert all(before[name] != after[name] for name in before)


# --- commands and workloads ----------------------------------------------------------------


def test_commands_are_driftwatch_subcommands() -> None:
    docs = render()
    seen = {}
    for name, pod in pod_specs(docs):
        (container,) = pod["containers"]
        program, sub, *rest = container["command"]
        assert program == "driftwatch", name
        assert sub in COMMANDS, f"{name}: {sub} is not in monitor.cli.COMMANDS"
        seen[sub] = rest
    assert seen == {"ingest": [], "evaluate": [], "api": [], "db": ["upgrade"]}
    with click.Context(cli) as ctx:
        db = cli.get_command(ctx, "db")
        ingest = cli.get_command(ctx, "ingest")
        evaluate = cli.get_command(ctx, "evaluate")
    assert isinstance(db, click.Group) and "upgrade" in db.commands
    # every option the chart passes exists on the command
    for component, command in (("ingest", ingest), ("evaluator", evaluate)):
        assert command is not None
        args = workload(docs, component)["spec"]["template"]["spec"]["containers"][0]["args"]
        options = {opt for param in command.params for opt in param.opts}
        assert {a for a in args if a.startswith("--")} <= options, component


def test_ingest_replicas_scale_out_in_one_consumer_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render({"ingest": {"replicas": 5}, "config": {"kafka": {"group_id": "dw-prod"}}})
    consumers = [
        d
        for d in of_kind(docs, "Deployment")
        if d["spec"]["template"]["spec"]["containers"][0]["command"][1] == "ingest"
    ]
    assert len(consumers) == 1  # one pod template, so one group for every replica
    (ingest,) = consumers
    assert ingest["spec"]["replicas"] == 5
    container = ingest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--metrics-port", "9102"]  # nothing that changes the group
    assert not any("GROUP_ID" in item["name"] for item in container["env"])
    assert ingest["metadata"]["annotations"]["driftwatch.io/consumer-group"] == "dw-prod"
    assert settings_in_pod(docs, "ingest", tmp_path, monkeypatch).kafka.group_id == "dw-prod"


def test_pdb_covers_only_the_ingest_pods() -> None:
    docs = render()
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    selector = pdb["spec"]["selector"]["matchLabels"]
    for component in COMPONENTS:
        labels = workload(docs, component)["spec"]["template"]["metadata"]["labels"]
        assert (selector.items() <= labels.items()) == (component == "ingest")
    assert of_kind(render({"ingest": {"pdb": {"enabled": False}}}), "PodDisruptionBudget") == []


def test_evaluator_replicas_scale_and_roll_without_a_gap() -> None:
    assert workload(render(), "evaluator")["spec"]["replicas"] == 1
    spec = workload(render({"evaluator": {"replicas": 3}}), "evaluator")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    keys = [c["topologyKey"] for c in spec["template"]["spec"]["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    with pytest.raises(helm.HelmError, match="replicas"):
        render({"evaluator": {"replicas": "three"}})


def test_api_service_and_probes() -> None:
    docs = render({"config": {"api": {"port": 8080}}, "api": {"service": {"port": 80}}})
    api = workload(docs, "api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    (service,) = of_kind(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["ports"][0]["port"] == 80
    selector = service["spec"]["selector"]
    for component in COMPONENTS:
        labels = workload(docs, component)["spec"]["template"]["metadata"]["labels"]
        assert (selector.items() <= labels.items()) == (component == "api")


def test_pods_are_non_root_read_only_and_bounded() -> None:
    docs = render()
    config_maps = {d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")}
    for name, pod in pod_specs(docs):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        (container,) = pod["containers"]
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True, name
        assert ctx["allowPrivilegeEscalation"] is False, name
        assert ctx["capabilities"]["drop"] == ["ALL"], name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts.values()) <= volumes.keys(), name
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        assert volumes["config"]["configMap"]["name"] in config_maps, name


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook() -> None:
    docs = render()
    weights = {}
    for doc in docs:
        notes = doc["metadata"].get("annotations", {})
        if "helm.sh/hook" in notes:
            assert set(notes["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
            weights[doc["kind"]] = int(notes["helm.sh/hook-weight"])
    assert weights["ConfigMap"] < weights["Job"] and weights["Secret"] < weights["Job"]
    job = workload(docs, "migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert of_kind(render({"migrations": {"enabled": False}}), "Job") == []


# --- monitoring objects ---------------------------------------------------------------------


def test_service_monitor_scrapes_the_api_service() -> None:
    assert of_kind(render(), "ServiceMonitor") == []
    docs = render({"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}})
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (service,) = of_kind(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert "authorization" not in endpoint
    protected = render(
        {"serviceMonitor": {"enabled": True}, "config": {"api": {"protect_reads": True}}}
    )
    auth = of_kind(protected, "ServiceMonitor")[0]["spec"]["endpoints"][0]["authorization"]
    assert auth["credentials"] == {"name": "dw-driftwatch", "key": "api-token"}


def pod_monitor_targets(docs: list[dict[str, Any]], monitor: dict[str, Any]) -> dict[str, int]:
    """Workloads whose pods ``monitor`` selects, each with the container port it scrapes."""
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"].items()
    targets = {}
    for component in COMPONENTS:
        template = workload(docs, component)["spec"]["template"]
        if selector <= template["metadata"]["labels"].items():
            (container,) = template["spec"]["containers"]
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            targets[component] = ports[endpoint["port"]]
    return targets


@pytest.mark.parametrize(("component", "port"), [("ingest", 9102), ("evaluator", 9103)])
def test_pod_monitor_scrapes_exactly_one_workloads_metrics_port(component: str, port: int) -> None:
    docs = render({"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}})
    monitors = {d["metadata"]["name"]: d for d in of_kind(docs, "PodMonitor")}
    assert monitors.keys() == {"dw-driftwatch-ingest", "dw-driftwatch-evaluator"}
    monitor = monitors[f"dw-driftwatch-{component}"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mon"]}
    assert pod_monitor_targets(docs, monitor) == {component: port}
    (container,) = workload(docs, component)["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--metrics-port", str(port)]
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]

    moved = render(
        {"serviceMonitor": {"enabled": True}, component: {"metricsPort": 9200, "extraArgs": ["-v"]}}
    )
    (container,) = workload(moved, component)["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--metrics-port", "9200", "-v"]
    assert pod_monitor_targets(moved, named(moved, "PodMonitor", monitor["metadata"]["name"])) == {
        component: 9200
    }

    off = render({"serviceMonitor": {"enabled": True}, component: {"metricsPort": None}})
    assert [d["metadata"]["name"] for d in of_kind(off, "PodMonitor")] == [
        name for name in monitors if name != monitor["metadata"]["name"]
    ]
    (container,) = workload(off, component)["spec"]["template"]["spec"]["containers"]
    assert "args" not in container and "ports" not in container
    # monitoring off: the port is still served (a Prometheus without the operator can scrape it)
    assert of_kind(render(), "PodMonitor") == []


def test_rules_file_is_what_driftwatch_dashboards_rules_generates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dashboards.rules import alerting_rules

    for name in [n for n in os.environ if n.startswith("DRIFTWATCH_")]:
        monkeypatch.delenv(name)

    shipped = yaml.safe_load((CHART / "rules" / "driftwatch-rules.yaml").read_text())
    assert shipped == alerting_rules(Settings()), (
        "regenerate: driftwatch dashboards rules helm/driftwatch/rules/driftwatch-rules.yaml"
    )


def test_prometheus_rules_pass_promtool_and_use_declared_metrics(tmp_path: Path) -> None:
    assert of_kind(render(), "PrometheusRule") == []
    extra = {"name": "team", "rules": [{"alert": "TeamRule", "expr": "vector(1) > 2"}]}
    runbook = "https://runbooks.invalid/driftwatch"
    docs = render(
        {
            "prometheusRule": {
                "enabled": True,
                "additionalGroups": [extra],
                "excludeAlerts": ["DriftwatchDriftWarning"],
            },
            "config": {"alerts": {"runbook_url": runbook}},
        }
    )
    (rule,) = of_kind(docs, "PrometheusRule")
    groups = rule["spec"]["groups"]
    shipped = yaml.safe_load((CHART / "rules" / "driftwatch-rules.yaml").read_text())["groups"]
    assert [g["name"] for g in groups] == [
        *(g["name"] for g in shipped),
        "driftwatch-chart",
        "team",
    ]
    rules = [r for g in groups for r in g["rules"]]
    names = [r["alert"] for r in rules]
    expected = [r["alert"] for g in shipped for r in g["rules"]]
    expected.remove("DriftwatchDriftWarning")
    assert names == [*expected, "DriftwatchApiDown", "TeamRule"]
    links = {r["alert"]: r["annotations"]["runbook_url"] for r in rules if "annotations" in r}
    # this install's runbook, each rule at its own section (docs/operations.md has the anchors)
    assert links == {name: f"{runbook}#{name.lower()}" for name in links}
    used = {m for r in rules for m in re.findall(r"\bdriftwatch_[a-z0-9_]+", r["expr"])}
    assert used and used <= BY_NAME.keys(), used - BY_NAME.keys()
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by tests/services.sh"
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_dashboard_json_becomes_a_labelled_config_map(tmp_path: Path) -> None:
    real = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    docs = render()
    assert len(
        [
            d
            for d in of_kind(docs, "ConfigMap")
            if d["metadata"]["labels"].get("grafana_dashboard") == "1"
        ]
    ) == len(real)

    chart = tmp_path / "driftwatch"
    shutil.copytree(CHART, chart)
    boards = {
        "On_Call.json": {"uid": "dw-oncall", "panels": [{"id": 1}]},
        "canary.json": {"uid": "dw-canary", "panels": []},
    }
    for name, board in boards.items():
        (chart / "dashboards" / name).write_text(json.dumps(board, indent=2))
    docs = render({"dashboards": {"annotations": {"grafana_folder": "Driftwatch"}}}, chart=chart)
    found = {}
    for doc in of_kind(docs, "ConfigMap"):
        if doc["metadata"]["labels"].get("grafana_dashboard") == "1":
            assert doc["metadata"]["annotations"] == {"grafana_folder": "Driftwatch"}
            assert doc["metadata"]["name"].startswith("dw-driftwatch-dashboard-")
            ((key, text),) = doc["data"].items()
            found[key] = json.loads(text)
    assert found == {
        **{name: json.loads(json.dumps(b)) for name, b in boards.items()},
        **{name: json.loads((CHART / "dashboards" / name).read_text()) for name in real},
    }
    off = render({"dashboards": {"enabled": False}}, chart=chart)
    assert not [
        d for d in of_kind(off, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]
    ]


# --- template hygiene (what helm itself does not check) -------------------------------------


def test_every_values_reference_exists_in_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pattern = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
    missing = []
    for template in sorted((CHART / "templates").iterdir()):
        for match in pattern.finditer(template.read_text()):
            node: Any = values
            for part in match.group(1).strip(".").split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(f"{template.name}: .Values{match.group(1)}")
                    break
                node = node[part]
    assert missing == []


def test_values_config_keys_are_settings_fields() -> None:
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    assert config.keys() <= Settings.model_fields.keys()
    for section, body in config.items():
        field = Settings.model_fields[section].annotation
        if isinstance(body, dict) and body:
            assert field is not None and body.keys() <= field.model_fields.keys(), section


# --- values schema, probes, storage, scaling, Grafana -----------------------------------------


def test_values_schema_is_the_generated_one() -> None:
    shipped = (CHART / "values.schema.json").read_text()
    assert shipped == render_schema(CHART), (
        "regenerate: python -m dashboards.values_schema helm/driftwatch"
    )
    schema = json.loads(shipped)
    assert schema["properties"]["config"]["properties"].keys() == Settings.model_fields.keys()


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"ingest": {"replica": 3}}, "/ingest"),
        ({"config": {"windows": {"max_cout": 3}}}, "/config/windows"),
        ({"config": {"windows": {"max_count": "many"}}}, "/config/windows/max_count"),
        ({"config": {"kafka": {"security_protocol": "TLS"}}}, "/config/kafka/security_protocol"),
        ({"evaluator": {"persistence": {"enabld": False}}}, "/evaluator/persistence"),
    ],
)
def test_a_typo_in_values_fails_template_and_lint(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmError, match=f"at '{where}'"):
        render(values)
    report = helm.lint(str(CHART), merged(REQUIRED, values), strict=True)
    assert any(f"at '{where}'" in str(error) for error in report["errors"])


def test_every_workload_has_startup_liveness_and_readiness_probes() -> None:
    docs = render()
    for component, port, path in (
        ("ingest", "metrics", "/metrics"),
        ("evaluator", "metrics", "/metrics"),
        ("api", "http", "/healthz"),
    ):
        (container,) = workload(docs, component)["spec"]["template"]["spec"]["containers"]
        ports = {p["name"] for p in container["ports"]}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[kind]
            assert probe["periodSeconds"] > 0 and probe["failureThreshold"] > 0
            if component == "ingest" and kind == "livenessProbe":
                assert "exec" in probe  # the poll heartbeat: see the test above
                continue
            assert probe["httpGet"]["port"] in ports, (component, kind)
            if kind == "livenessProbe":
                assert probe["httpGet"]["port"] == port
                assert component == "api" or probe["httpGet"]["path"] == path
    # restarted within a minute when the worker stops answering
    live = workload(docs, "ingest")["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] <= 60


def test_the_registry_is_on_a_kept_pvc_unless_told_otherwise() -> None:
    def data_volume(docs: list[dict[str, Any]]) -> dict[str, Any]:
        pod = workload(docs, "evaluator")["spec"]["template"]["spec"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "data")
        assert mount["mountPath"] == "/var/lib/driftwatch"
        return next(v for v in pod["volumes"] if v["name"] == "data")

    docs = render({"evaluator": {"persistence": {"size": "20Gi", "storageClassName": "fast"}}})
    (pvc,) = of_kind(docs, "PersistentVolumeClaim")
    assert data_volume(docs)["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"]["storageClassName"] == "fast"

    mine = render({"evaluator": {"persistence": {"existingClaim": "models"}}})
    assert of_kind(mine, "PersistentVolumeClaim") == []
    assert data_volume(mine)["persistentVolumeClaim"]["claimName"] == "models"
    off = render({"evaluator": {"persistence": {"enabled": False}}})
    assert of_kind(off, "PersistentVolumeClaim") == [] and "emptyDir" in data_volume(off)


def test_optional_ingress_routes_to_the_api_service() -> None:
    assert of_kind(render(), "Ingress") == []
    hosts = [{"host": "dw.example.com", "path": "/"}]
    docs = render({"ingress": {"enabled": True, "className": "nginx", "hosts": hosts}})
    (ingress,) = of_kind(docs, "Ingress")
    (service,) = of_kind(docs, "Service")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "dw.example.com" and ingress["spec"]["ingressClassName"] == "nginx"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_keda_scales_the_ingest_deployment_on_its_consumer_lag() -> None:
    assert of_kind(render(), "ScaledObject") == []
    docs = render(
        {"keda": {"enabled": True, "maxReplicas": 6}, "config": {"kafka": {"group_id": "g1"}}}
    )
    (scaled,) = of_kind(docs, "ScaledObject")
    ingest = workload(docs, "ingest")
    assert scaled["spec"]["scaleTargetRef"]["name"] == ingest["metadata"]["name"]
    assert "replicas" not in ingest["spec"]  # KEDA owns it; helm upgrade must not reset it
    assert scaled["spec"]["maxReplicaCount"] == 6
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "g1"
    assert trigger["metadata"]["topic"] == "driftwatch.predictions"
    assert trigger["metadata"]["bootstrapServers"] == "kafka:9092"


def test_ingest_and_api_replicas_spread_over_zones_and_nodes() -> None:
    docs = render()
    for component in ("ingest", "api"):
        pod = workload(docs, component)["spec"]["template"]
        constraints = pod["spec"]["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in constraints] == [
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        ]
        for c in constraints:
            assert c["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
            other = "api" if component == "ingest" else "ingest"
            theirs = workload(docs, other)["spec"]["template"]["metadata"]["labels"]
            assert not c["labelSelector"]["matchLabels"].items() <= theirs.items()
    off = render({"topologySpread": {"enabled": False}})
    assert "topologySpreadConstraints" not in workload(off, "api")["spec"]["template"]["spec"]


def test_grafana_sidecar_datasources_point_at_prometheus_and_the_read_only_role() -> None:
    assert not [d for d in of_kind(render(), "ConfigMap") if "datasources" in d["metadata"]["name"]]
    docs = render(
        {"grafanaDatasource": {"enabled": True, "postgres": {"host": "pg.db"}}},
    )
    (cm,) = [d for d in of_kind(docs, "ConfigMap") if "datasources" in d["metadata"]["name"]]
    assert cm["metadata"]["labels"]["grafana_datasource"] == "1"
    ((_, text),) = cm["data"].items()
    sources = {d["type"]: d for d in yaml.safe_load(text)["datasources"]}
    assert sources["prometheus"]["url"] == "http://prometheus-operated:9090"
    pg = sources["grafana-postgresql-datasource"]
    assert pg["url"] == "pg.db:5432" and pg["user"] == "driftwatch_grafana"
    assert pg["secureJsonData"]["password"] == "${DRIFTWATCH_GRAFANA_PG_PASSWORD}"


def test_ingest_liveness_is_a_fresh_poll_heartbeat(tmp_path: Path) -> None:
    container = workload(render({"ingest": {"heartbeatMaxAgeSeconds": 90}}), "ingest")["spec"][
        "template"
    ]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    probe = container["livenessProbe"]["exec"]["command"]
    assert env["DRIFTWATCH_INGEST__HEARTBEAT_FILE"] == "/tmp/driftwatch-ingest.heartbeat"
    assert container["readinessProbe"]["httpGet"]["path"] == "/metrics"
    # the probe command itself, run here: missing -> fail, fresh -> pass, stale -> fail
    beat = tmp_path / "hb"
    run_env = {**os.environ, "DRIFTWATCH_INGEST__HEARTBEAT_FILE": str(beat)}
    cmd = [sys.executable, *probe[1:]]
    assert subprocess.run(cmd, env=run_env, check=False).returncode == 1
    Heartbeat(beat).beat()
    assert subprocess.run(cmd, env=run_env, check=False).returncode == 0
    os.utime(beat, (time.time() - 91, time.time() - 91))
    assert subprocess.run(cmd, env=run_env, check=False).returncode == 1


# --- Driftwatch's own canary targets --------------------------------------------------------


def test_deployment_target_rbac_grants_get_and_patch_on_the_named_objects_only() -> None:
    assert of_kind(render(), "Role") == [] and of_kind(render(), "RoleBinding") == []
    for component in COMPONENTS:
        assert workload(render(), component)["spec"]["template"]["spec"][
            "automountServiceAccountToken"
        ] is False  # fmt: skip
    retrain = {
        "kubernetes": {"in_cluster": True},
        "kserve": [{"model": "digits", "namespace": "serving", "name": "digits"}],
        "seldon": [{"model": "digits", "namespace": "seldon-mesh", "name": "digits-canary"}],
    }
    docs = render({"deploymentTargets": {"rbac": {"create": True}}, "config": {"retrain": retrain}})
    kserve = named(docs, "Role", "dw-driftwatch-kserve-digits")
    assert kserve["metadata"]["namespace"] == "serving"
    assert kserve["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "resourceNames": ["digits"],
            "verbs": ["get", "patch"],
        }
    ]
    seldon = named(docs, "Role", "dw-driftwatch-seldon-digits-canary")
    assert seldon["metadata"]["namespace"] == "seldon-mesh"
    assert seldon["rules"][0]["apiGroups"] == ["mlops.seldon.io"]
    assert seldon["rules"][0]["resources"] == ["experiments"]
    binding = named(docs, "RoleBinding", "dw-driftwatch-kserve-digits")
    assert binding["roleRef"]["name"] == "dw-driftwatch-kserve-digits"
    (account,) = of_kind(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "mon"}
    ]
    mounted = {
        c: workload(docs, c)["spec"]["template"]["spec"]["automountServiceAccountToken"]
        for c in COMPONENTS
    }
    assert mounted == {"ingest": False, "evaluator": True, "api": True}  # the publishers only


def test_deployment_target_rbac_without_targets_is_refused_and_typos_are_caught() -> None:
    with pytest.raises(
        helm.HelmError, match=r"needs config\.retrain\.kserve or config\.retrain\.seldon"
    ):
        render({"deploymentTargets": {"rbac": {"create": True}}})
    with pytest.raises(helm.HelmError, match="kserve"):
        render({"config": {"retrain": {"kserve": [{"model": "d", "namespace": "n"}]}}})
