"""Every declared metric follows Prometheus's naming guide, as ``promtool check metrics`` reads
it, and the store collector's scrape too: no percent gauges, no reserved labels, no row counts
as counters, bounded class cardinality, the model/canary/staleness gauges read from the store."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.collector import StoreCollector
from monitor.metrics import metric
from monitor.metrics_spec import METRICS
from monitor.schemas import PredictionLog
from monitor.settings import Settings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.retrain_tables import ModelVersion, Rollout


def promtool_check(exposition: bytes) -> str:
    """promtool's complaints about ``exposition`` ("" when it passes clean)."""
    out = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    complaints = (out.stdout + out.stderr).decode().strip()
    assert out.returncode == 0 or complaints, "promtool failed without a reason"
    return complaints


def test_every_declared_metric_passes_promtool() -> None:
    registry = CollectorRegistry()
    for spec in METRICS:
        m = metric(spec.name, registry)
        child = m.labels(*(["x"] * len(spec.labels))) if spec.labels else m
        if spec.type == "counter":
            child.inc()
        elif spec.type == "gauge":
            child.set(1.0)
        else:
            child.observe(0.1)
    assert promtool_check(generate_latest(registry)) == ""
    for spec in METRICS:
        assert not {"quantile", "le"} & set(spec.labels), spec.name
        assert "percent" not in spec.name and not spec.name.endswith("_bucket"), spec.name


def test_store_scrape_passes_promtool_with_bounded_classes_and_store_gauges(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    make_log: Callable[..., PredictionLog],
) -> None:
    settings = settings_for(db_url)
    last = datetime.now(UTC) - timedelta(minutes=7)
    with unit_of_work(sessions) as s:
        insert_predictions(s, [make_log(timestamp=last - timedelta(minutes=i)) for i in range(3)])
        s.add_all(
            [
                ModelVersion(model="digits", version="v1", state="promoted",
                             metrics={"accuracy": {"fp32": 0.97}, "size_bytes": {"int8": 9e4}}),
                ModelVersion(model="digits", version="v0", state="retired",
                             metrics={"accuracy": {"fp32": 0.9}}),
                Rollout(model="digits", stable_version="v1", candidate_version="v2",
                        plan=[5, 25, 50, 100], step_index=1, state="running"),
            ]
        )  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(sessions, settings))
    text = generate_latest(registry)
    assert promtool_check(text) == ""
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    ratio = families["driftwatch_canary_traffic_ratio"].samples
    assert [(s.labels["version"], s.value) for s in ratio] == [("v2", 0.25)]
    accuracy = families["driftwatch_model_accuracy"].samples
    assert [s.labels["version"] for s in accuracy] == ["v1"]  # the retired v0 is not exported
    age = families["driftwatch_model_last_log_age_seconds"].samples[0].value
    assert 7 * 60 - 5 < age < 7 * 60 + 120
    (info,) = families["driftwatch_build_info"].samples
    assert info.value == 1.0 and info.labels["python"].count(".") == 2
