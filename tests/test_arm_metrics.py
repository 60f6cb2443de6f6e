"""The canary-arm gauges on /metrics, read by the store collector at scrape time.

Logs of a stable (v1) and a canary (v2) arm are stored, closed into windows and evaluated by the
real code; /metrics is parsed with prometheus_client's parser and every arm gauge is checked
against figures computed here from the same logs, decoded independently through
``monitor.store.logs.load_window`` (probability bytes, not the stored confidence column).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.evaluate import evaluate_pending
from monitor.profiles import fit_profile_from_store
from monitor.schemas import PredictionLog
from monitor.settings import Settings, WindowSettings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.logs import load_window
from monitor.store.tables import Window
from monitor.windows import close_windows

PER_WINDOW = 60
ARMS = {"stable": "v1", "canary": "v2"}


def _logs(
    make_log: Callable[..., PredictionLog], arm: str, n: int, t0: datetime, seed: int, sharp: float
) -> list[PredictionLog]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        logits = rng.normal(size=10) * sharp
        probs = np.exp(logits) / np.exp(logits).sum()
        pred = int(np.argmax(probs))
        out.append(
            make_log(
                model_version=ARMS[arm],
                arm=arm,
                probabilities=probs.tolist(),
                predicted_class=pred,
                timestamp=t0 + timedelta(seconds=i),
                latency_ms=float(rng.gamma(2.0, 3.0)),
                label=None if i % 4 == 3 else (pred if rng.uniform() < 0.8 else (pred + 1) % 10),
            )
        )
    return out


def _expected(
    batch_probs: np.ndarray, predicted: np.ndarray, labels: np.ndarray, latency_ms: np.ndarray
) -> dict[str, object]:
    conf = batch_probs.max(axis=1)
    known = labels >= 0
    return {
        "accuracy": float(np.mean(predicted[known] == labels[known])),
        "latency": {
            "50": float(np.median(latency_ms)) / 1000,
            "99": float(np.percentile(latency_ms, 99)) / 1000,
        },
        "low": float(np.mean(conf < 0.5)),
        "buckets": {f"{le / 10:.1f}": float(np.mean(conf <= le / 10)) for le in range(1, 11)},
        "shares": {str(c): float(np.mean(predicted == c)) for c in range(10)},
    }


@pytest.fixture
def scraped(
    db_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    make_log: Callable[..., PredictionLog],
) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    settings = settings_for(db_url, windows=WindowSettings(max_count=PER_WINDOW, min_count=10))
    t0 = datetime.now(UTC) - timedelta(hours=1)
    with unit_of_work(sessions) as s:
        for k, arm in enumerate(ARMS):  # two windows per arm: the gauges show the second
            insert_predictions(s, _logs(make_log, arm, 2 * PER_WINDOW, t0, k, 1.0 + k))
    with unit_of_work(sessions) as s:
        for arm, version in ARMS.items():
            fit_profile_from_store(
                s, settings, "digits", version, None, None, "ref", arm=arm, activate=True
            )
        assert len(close_windows(s, settings, datetime.now(UTC), settle_seconds=0)) == 4
        assert len(evaluate_pending(s, settings)) == 4
    expected: dict[str, dict[str, object]] = {}
    with unit_of_work(sessions) as s:
        for arm, version in ARMS.items():
            window = s.scalars(
                select(Window).where(Window.arm == arm).order_by(Window.id.desc()).limit(1)
            ).one()
            assert window.state == "evaluated" and window.model_version == version
            b = load_window(s, window)
            assert b.labels is not None and b.latency_ms is not None
            expected[arm] = _expected(
                b.probs.astype(np.float64), b.predicted, b.labels, b.latency_ms
            )
    with TestClient(create_app(settings, engine, check_broker=False)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    return families, expected  # type: ignore[return-value]


def _by(
    families: dict[str, object], name: str, arm: str, label: str | None = None
) -> dict[str, float]:
    samples = families[name].samples  # type: ignore[attr-defined]
    out = {}
    for s in samples:
        if s.labels["arm"] != arm:
            continue
        assert s.labels["model"] == "digits" and s.labels["version"] == ARMS[arm]
        out[s.labels[label] if label else ""] = s.value
    return out


def test_arm_gauges_match_the_latest_window_of_each_arm(
    scraped: tuple[dict[str, object], dict[str, dict[str, object]]],
) -> None:
    families, expected = scraped
    for arm, want in expected.items():
        assert _by(families, "driftwatch_arm_accuracy", arm) == {
            "": pytest.approx(want["accuracy"])
        }
        assert _by(families, "driftwatch_arm_latency_seconds", arm, "percentile") == pytest.approx(
            want["latency"]
        )
        assert _by(families, "driftwatch_arm_low_confidence_ratio", arm) == {
            "": pytest.approx(want["low"])
        }
        assert _by(families, "driftwatch_arm_confidence_ratio", arm, "upper") == pytest.approx(
            want["buckets"]
        )
        assert _by(families, "driftwatch_arm_class_ratio", arm, "class") == pytest.approx(
            want["shares"]
        )
    # the two arms differ (the canary is sharper), so a mixed-up arm would fail above
    assert expected["stable"]["low"] != expected["canary"]["low"]
