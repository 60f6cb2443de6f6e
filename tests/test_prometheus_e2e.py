"""Every dashboard query against real Prometheus and real PostgreSQL after a real run.

The run: seeded prediction logs (clean, darker camera, stable vs canary arms, labels, two
invalid messages) go through the producer SDK into the real broker; the real ingest worker
stores them in a fresh PostgreSQL database and dead-letters the invalid ones; the real evaluator
(``monitor.scheduler.Evaluator``) closes, evaluates and decides, and delivers the alert to a
local webhook. The real API (``monitor.api.app.create_app``, served by uvicorn) exposes
``/metrics``; real Prometheus (Debian's binary) scrapes it every second and loads the generated
alerting rules.

Then every PromQL expression of every panel (and of the variables and annotations) is expanded
as Grafana does and run through Prometheus's ``/api/v1/query``; every SQL panel and SQL
annotation is expanded with Grafana's macros and run on the PostgreSQL store. A query that
errors or returns nothing fails the test, naming the panel.

The canary-arm gauges (``driftwatch_arm_*``) come from the API's store collector (the latest
evaluated window of each arm); the retraining, registry, gate and rollout metrics come from
:mod:`retrain.observe`, fed by the real code in :func:`_roll_out`: the policy's queued job, two
small DigitsNets registered with real ONNX FP32/INT8 artifacts and figures, the offline gate,
and a staged rollout judged by the canary controller on fresh arm logs (stored directly; the
rest of the run went through the broker) until it promotes v2.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, text

from dashboards.boards import build_dashboards
from dashboards.expand import expand_prom, expand_sql, panel_queries
from dashboards.grafana import POSTGRES, PROMETHEUS
from dashboards.rules import alerting_rules, write_rules
from ingest.broker import LocalBroker
from monitor.demo.scenario import MODEL, run_monitor, scenario_logs
from monitor.metrics import metric
from monitor.settings import (
    AlertSettings,
    DatabaseSettings,
    KafkaSettings,
    RetrainSettings,
    Settings,
    WebhookChannel,
    WindowSettings,
)
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.versions import promoted_version
from tests.conftest import poll_until

PER_WINDOW = 200
SCRAPE_S = 1
INTERVAL_S = 60  # the dashboards' $__interval for the queries below (a 1h range at ~60 points)
BOARDS = build_dashboards(Settings())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class Run:
    prom: str
    api: str
    engine: Engine
    settings: Settings
    webhook_bodies: list[dict[str, Any]]


# ---------------------------------------------------------------- services


def _webhook() -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, bodies


def _serve_api(settings: Settings, engine: Engine) -> tuple[Any, int]:
    import uvicorn

    from monitor.api.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine, check_broker=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    poll_until(lambda: server.started, 20, "the API to start")
    return server, port


def _start_prometheus(
    workdir: Path, target_port: int, rules: Path
) -> tuple[subprocess.Popen[bytes], str]:
    import shutil

    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (run tests/services.sh)"
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "global": {
                    "scrape_interval": f"{SCRAPE_S}s",
                    "evaluation_interval": f"{SCRAPE_S}s",
                },
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "driftwatch",
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                    }
                ],
            }
        )
    )
    port = _free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (workdir / "prometheus.log").read_text()
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                return True
        except OSError:
            return False

    poll_until(ready, 30, "prometheus to become ready", every=0.2)
    return proc, url


def prom_query(prom: str, expr: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"})
    try:
        return dict(_get(f"{prom}/api/v1/query?{query}"))
    except urllib.error.HTTPError as exc:  # 400 on a bad expression: keep Prometheus's reason
        return dict(json.loads(exc.read()))


def _wait_for(prom: str, expr: str, timeout: float = 20.0) -> None:
    poll_until(
        lambda: prom_query(prom, expr).get("data", {}).get("result"),
        timeout,
        f"Prometheus to see {expr}",
        every=0.25,
    )


def _next_scrape(prom: str) -> None:
    """Wait until Prometheus has scraped the API once more (a query, not a sleep)."""
    since = time.time()

    def scraped() -> bool:
        result = prom_query(prom, 'timestamp(up{job="driftwatch"})').get("data", {}).get("result")
        return bool(result) and float(result[0]["value"][1]) > since

    poll_until(scraped, 10 * SCRAPE_S, "a new scrape", every=0.1)


# ---------------------------------------------------------------- the run


def _produce(kafka: KafkaSettings, t0: datetime) -> int:
    from kafka import KafkaProducer

    from ingest.sdk import PredictionLogger

    logs = scenario_logs(t0, per_window=PER_WINDOW)
    loggers: dict[str, PredictionLogger] = {}
    for log in logs:
        logger = loggers.setdefault(
            log.model_version, PredictionLogger(kafka, MODEL, log.model_version)
        )
        logger.log(
            log.probability_vector(),
            embedding=log.embedding_vector(),
            pixel_stats=log.pixel_stats,
            request_id=log.request_id,
            predicted_class=log.predicted_class,
            latency_ms=log.latency_ms,
            arm=log.arm,
            label=log.label,
            timestamp=log.timestamp,
        )
    for logger in loggers.values():
        assert logger.flush(30) and logger.dropped == 0 and logger.failed == 0
        logger.close()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    bad = json.loads(logs[0].model_dump_json())
    bad.update(request_id="bad-probs", probabilities=[0.9] * len(bad["probabilities"]))
    producer.send(kafka.predictions_topic, b"{not json")
    producer.send(kafka.predictions_topic, json.dumps(bad).encode())
    producer.flush(30)
    producer.close()
    return len(logs) + 2


def _arm_logs(
    version: str, arm: str, n: int, seed: int, accuracy: float, latency_ms: float
) -> list[Any]:
    """``n`` labelled logs of one arm, stamped now (a rollout step reads logs since it began)."""
    from monitor.detectors.simulate import synthetic_batch
    from monitor.imagestats import STAT_NAMES
    from monitor.schemas import PredictionLog, encode_array

    rng = np.random.default_rng(seed)
    b = synthetic_batch(
        n, seed=seed, dim=32, brightness=-0.3, temperature=0.8 if arm == "canary" else 1.0
    )
    assert b.embeddings is not None and b.pixel is not None
    now = datetime.now(UTC)
    return [
        PredictionLog.model_validate(
            {
                "model": MODEL,
                "model_version": version,
                "request_id": f"{arm}-{seed}-{i}",
                "timestamp": now,
                "predicted_class": int(b.predicted[i]),
                "probabilities": (b.probs[i] / b.probs[i].sum()).tolist(),
                "embedding": encode_array(b.embeddings[i], "float16"),
                "pixel_stats": dict(zip(STAT_NAMES, map(float, b.pixel[i]), strict=True)),
                "latency_ms": float(rng.gamma(4.0, latency_ms / 4.0)),
                "arm": arm,
                "label": int(b.predicted[i])
                if rng.uniform() < accuracy
                else (int(b.predicted[i]) + 1) % b.n_classes,
            }
        )
        for i in range(n)
    ]


def _roll_out(engine: Engine, settings: Settings, prom: str) -> None:
    """The real registry, offline gate and canary controller feed the rollout and model metrics
    (:mod:`retrain.observe`): v1 and a retrained v2 (small DigitsNets with real ONNX FP32/INT8
    artifacts and measured figures), the gate's agreement, then a staged rollout 5 -> 25 -> 50
    -> 100% judged by :func:`retrain.rollout.tick` on fresh logs of both arms each step."""
    import torch

    from monitor.store.ingest_repo import insert_predictions
    from monitor.store.retrain_tables import Rollout
    from retrain import registry, rollout
    from retrain.deploy import target_from_settings
    from retrain.digits import train_holdout
    from retrain.export import session as ort_session
    from retrain.gate import evaluate
    from retrain.observe import gate_agreement
    from retrain.pipeline import publish_version, register_baseline
    from retrain.recipes import digits_input, train_baseline

    torch.set_num_threads(2)
    sessions = session_factory(engine)
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    target = target_from_settings(settings.retrain)
    _, hold = train_holdout(seed=0)
    x = digits_input(hold.images)
    register_baseline(
        settings, sessions, MODEL, "v1", train_baseline(epochs=1, seed=0), hold.images, hold.labels
    )
    with unit_of_work(sessions) as s:
        v2 = publish_version(
            s,
            store,
            MODEL,
            "v2",
            train_baseline(epochs=2, seed=0),
            x,
            x,
            hold.labels,
            settings,
            state="candidate",
            parent_version="v1",
        )
        v1 = registry.get_version(s, MODEL, "v1")
        paths = {k: store.path(mv, "onnx_int8") for k, mv in (("candidate", v2), ("current", v1))}
    report = evaluate(
        ort_session(paths["candidate"]),
        ort_session(paths["current"]),
        (x, hold.labels),
        (x, hold.labels),
        {k: p.stat().st_size for k, p in paths.items()},
        settings.retrain,
    )
    gate_agreement(MODEL, report.agreement_recent)

    events = metric("driftwatch_rollout_events_total")
    for event in ("started", "step", "promoted", "rolled_back"):
        events.labels(model=MODEL, event=event)  # exported at 0 so increase() sees the first
    _wait_for(prom, 'driftwatch_rollout_events_total{event="promoted"}')
    with unit_of_work(sessions) as s:
        rollout_id = rollout.start(
            s, settings, store, target, registry.get_version(s, MODEL, "v2")
        ).id
    outcomes: list[str] = []
    while not outcomes or outcomes[-1] == "advance":
        _next_scrape(prom)  # Prometheus sees every step
        n = settings.retrain.step_min_logs
        with unit_of_work(sessions) as s:
            insert_predictions(
                s,
                _arm_logs("v1", "stable", n, 20 + len(outcomes), 0.80, 21.0)
                + _arm_logs("v2", "canary", n, 40 + len(outcomes), 0.93, 12.0),
            )
        with unit_of_work(sessions) as s:
            ro = s.get(Rollout, rollout_id)
            assert ro is not None
            outcomes.append(rollout.tick(s, settings, store, target, ro, datetime.now(UTC)))
    assert outcomes == ["advance", "advance", "advance", "promote"], outcomes
    with sessions() as s:
        assert promoted_version(s, MODEL).version == "v2"  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def run(
    broker: LocalBroker,
    pg_server_url: str,
    pg_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    from ingest.worker import IngestWorker

    workdir = tmp_path_factory.mktemp("prometheus-e2e")
    name = f"dw_e2e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    tag = uuid.uuid4().hex[:10]
    kafka = KafkaSettings(
        bootstrap_servers=[broker.bootstrap],
        predictions_topic=f"predictions-{tag}",
        labels_topic=f"labels-{tag}",
        dead_letter_topic=f"dead-letter-{tag}",
        group_id=f"group-{tag}",
    )
    broker.create_topics([kafka.predictions_topic, kafka.labels_topic, kafka.dead_letter_topic])
    hook, bodies = _webhook()
    settings = Settings(
        environment="test",
        kafka=kafka,
        database=DatabaseSettings(url=pg_server_url.rsplit("/", 1)[0] + f"/{name}"),
        windows=WindowSettings(max_count=PER_WINDOW, max_seconds=3600),
        alerts=AlertSettings(
            channels=[WebhookChannel(url=f"http://127.0.0.1:{hook.server_address[1]}/hook")]
        ),
        retrain=RetrainSettings(
            registry_dir=workdir / "registry",
            step_min_logs=100,
            deployment_spec_path=workdir / "deployment.json",
        ),
    )
    engine = make_engine(settings.database)
    metric("driftwatch_evaluation_seconds")  # exported from start-up, as a service does
    api, api_port = _serve_api(settings, engine)
    proc, prom = _start_prometheus(workdir, api_port, write_rules(settings, workdir / "rules.yaml"))
    try:
        _wait_for(prom, 'up{job="driftwatch"} == 1')
        t0 = datetime.now(UTC) - timedelta(hours=1)
        sent = _produce(kafka, t0)
        stats = IngestWorker(settings, engine=engine).run(max_messages=sent, idle_timeout=20)
        assert stats.consumed == sent and stats.dead_lettered == 2, stats
        report = run_monitor(engine, settings, t0, per_window=PER_WINDOW)
        assert any(d.transition.to_state == "alert" for d in report.decisions)
        assert report.deliveries.get("delivered", 0) >= 1 and bodies
        _roll_out(engine, settings, prom)
        _wait_for(prom, "driftwatch_canary_step == 3")
        _next_scrape(prom)
        _next_scrape(prom)
        yield Run(prom, f"http://127.0.0.1:{api_port}", engine, settings, bodies)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        api.should_exit = True
        hook.shutdown()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- the checks


def _variable_values(prom: str) -> dict[str, list[str]]:
    """Resolve the dashboards' variables through Prometheus, as Grafana does with "All"."""
    values: dict[str, list[str]] = {}
    for var in BOARDS[0]["templating"]["list"]:
        if var["type"] == "datasource":
            continue
        query = var["definition"]  # label_values(<selector>, <label>)
        selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        selector = expand_prom(selector, values, SCRAPE_S, INTERVAL_S)
        params = urllib.parse.urlencode({"match[]": selector})
        found = _get(f"{prom}/api/v1/label/{label}/values?{params}")["data"]
        assert found, f"variable {var['name']} ({query}) has no values"
        values[var["name"]] = sorted(found)
    return values


def _has_data(answer: dict[str, Any]) -> bool:
    if answer.get("status") != "success":
        return False
    result = answer["data"]["result"]
    if answer["data"]["resultType"] == "scalar":
        return not math.isnan(float(result[1]))
    return any(not math.isnan(float(r["value"][1])) for r in result)


def test_variables_resolve_to_the_run(run: Run) -> None:
    values = _variable_values(run.prom)
    assert MODEL in values["model"]
    assert {"v1", "v2"} <= set(values["version"])  # a multi-value variable: both versions


def test_every_promql_panel_returns_data(run: Run) -> None:
    values = _variable_values(run.prom)
    failures, checked = [], 0
    for board in BOARDS:
        for panel, target in panel_queries(board):
            if panel["datasource"] != PROMETHEUS:
                continue
            expr = expand_prom(target["expr"], values, SCRAPE_S, INTERVAL_S)
            answer = prom_query(run.prom, expr)
            checked += 1
            if not _has_data(answer):
                failures.append(
                    f"{board['uid']} / {panel['title']} / {target['refId']}: {expr} "
                    f"-> {answer.get('error') or answer.get('data')}"
                )
    assert checked >= 35
    assert failures == [], "\n".join(failures)


def test_annotation_queries_run_and_show_the_promotion(run: Run) -> None:
    values = _variable_values(run.prom)
    canary = next(b for b in BOARDS if b["uid"] == "driftwatch-canary")
    answers = {}
    for annotation in canary["annotations"]["list"]:
        if "expr" in annotation:
            answer = prom_query(
                run.prom, expand_prom(annotation["expr"], values, SCRAPE_S, INTERVAL_S)
            )
            assert answer["status"] == "success", answer
            answers[annotation["name"]] = answer["data"]["result"]
    assert answers["Rollout promoted"]  # the promotion happened within the interval
    assert answers["Rollout rolled_back"] == []  # and no rollback


def test_alerting_rules_load_and_fire_in_prometheus(run: Run) -> None:
    def loaded() -> dict[str, Any] | None:
        groups = _get(f"{run.prom}/api/v1/rules")["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        return rules if rules.get("DriftwatchDriftAlert", {}).get("state") == "firing" else None

    rules = poll_until(loaded, 15, "DriftwatchDriftAlert to fire", every=0.5)
    expected = sum(len(g["rules"]) for g in alerting_rules(run.settings)["groups"])
    assert len(rules) == expected == 11 and all(r["health"] == "ok" for r in rules.values()), rules
    firing = rules["DriftwatchDriftAlert"]["alerts"][0]["labels"]
    assert firing["model"] == MODEL and firing["family"] == "pixel"
    assert rules["DriftwatchDeadLetters"]["state"] in ("pending", "firing")


def test_every_sql_panel_returns_rows_on_postgresql(run: Run) -> None:
    values = _variable_values(run.prom)
    now = datetime.now(UTC)
    queries = [
        (b["uid"], p["title"], t["rawSql"])
        for b in BOARDS
        for p, t in panel_queries(b)
        if p["datasource"] == POSTGRES
    ]
    queries += [
        (b["uid"], a["name"], a["target"]["rawSql"])
        for b in BOARDS
        for a in b["annotations"]["list"]
        if a.get("datasource") == POSTGRES
    ]
    assert len(queries) >= 10
    empty = []
    with run.engine.connect() as conn:
        for uid, title, sql in queries:
            expanded = expand_sql(sql, values, now - timedelta(hours=6), now, INTERVAL_S)
            rows = conn.execute(text(expanded)).all()
            if not rows:
                empty.append(f"{uid} / {title}: {expanded}")
    assert empty == [], "\n".join(empty)


def test_api_serves_the_status_page(run: Run) -> None:
    with urllib.request.urlopen(f"{run.api}/status/{MODEL}", timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode()
    assert page.count('<svg class="plot"') == 10 and "Canary arms side by side" in page
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{run.api}/status/no-such-model", timeout=30)
    assert missing.value.code == 404


def test_live_scrape_passes_promtool_check_metrics(run: Run) -> None:
    from tests.test_metrics_naming import promtool_check

    with urllib.request.urlopen(f"{run.api}/metrics", timeout=10) as response:
        scrape = response.read()
    assert promtool_check(scrape) == ""
    names = {
        line.split(b" ")[2].decode() for line in scrape.splitlines() if line.startswith(b"# TYPE")
    }
    assert {"driftwatch_build_info", "driftwatch_canary_traffic_ratio"} <= names
    assert "driftwatch_canary_weight" not in names  # the percent gauge is gone from the API
