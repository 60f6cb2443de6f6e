"""The impact stage on real stores (SQLite and PostgreSQL): calibration at reference time, the
per-window estimate and per-log scores, late labels, the worst images over the API and the CLI,
the label queue and retraining's preference for it, and severity by impact through the real
evaluator: a harmless shift warns without paging, a harmful one pages with the estimated drop."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.batch import LogBatch
from monitor.cli import cli
from monitor.demo.receiver import Receiver
from monitor.detectors.simulate import synthetic_batch
from monitor.imagestats import STAT_NAMES, encode_png
from monitor.impact.label_queue import build_label_queue
from monitor.profiles import fit_profile_from_store
from monitor.scheduler import Evaluator
from monitor.schemas import LabelEvent, PredictionLog, encode_array
from monitor.settings import (
    AlertSettings,
    PolicySettings,
    Settings,
    WebhookChannel,
    WindowSettings,
)
from monitor.store.alerting_tables import AlertRow, PolicyTransitionRow
from monitor.store.db import unit_of_work
from monitor.store.impact_tables import ImpactProfileRow, LogScoreRow, WindowEstimateRow
from monitor.store.ingest_repo import insert_predictions, upsert_labels
from monitor.store.tables import Prediction
from retrain.data import load_labelled
from retrain.digits import load_digits_images, rotate

WINDOW = 200
DIGITS = load_digits_images()


def logs_of(
    batch: LogBatch,
    prefix: str,
    t0: datetime,
    *,
    images: np.ndarray | None = None,
    labels: bool = True,
) -> list[PredictionLog]:
    """Prediction logs of ``batch`` (embeddings, pixel statistics, optional thumbnails)."""
    assert batch.embeddings is not None and batch.pixel is not None and batch.labels is not None
    out = []
    for i in range(len(batch)):
        values: dict[str, Any] = {
            "model": "digits",
            "model_version": "v1",
            "request_id": f"{prefix}-{i}",
            "timestamp": t0 + timedelta(seconds=i),
            "predicted_class": int(batch.predicted[i]),
            "probabilities": (batch.probs[i] / batch.probs[i].sum()).tolist(),
            "embedding": encode_array(batch.embeddings[i], "float32"),
            "pixel_stats": dict(zip(STAT_NAMES, map(float, batch.pixel[i]), strict=True)),
        }
        if labels:
            values["label"] = int(batch.labels[i])
        if images is not None:
            values["thumbnail"] = base64.b64encode(encode_png(images[i])).decode()
        out.append(PredictionLog.model_validate(values))
    return out


@dataclass
class World:
    settings: Settings
    sessions: sessionmaker[Session]
    evaluator: Evaluator
    window_id: int  # the window with 50 unusual images among 150 ordinary ones


@pytest.fixture
def world(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> World:
    settings = settings_for(
        db_url, windows=WindowSettings(max_count=WINDOW, min_count=50, max_seconds=3600)
    )
    t0 = datetime.now(UTC) - timedelta(hours=2)
    ref = synthetic_batch(600, dim=16, seed=1)
    with unit_of_work(sessions) as s:
        insert_predictions(s, logs_of(ref, "ref", t0, images=DIGITS.images[:600]))
        fit_profile_from_store(s, settings, "digits", "v1", None, None, "ref", activate=True)
    usual = synthetic_batch(150, dim=16, seed=2)
    odd = synthetic_batch(50, dim=16, seed=3, embedding_shift=8.0)
    t1 = t0 + timedelta(hours=1)
    with unit_of_work(sessions) as s:
        insert_predictions(
            s, logs_of(usual, "usual", t1, images=DIGITS.images[600:750], labels=False)
        )
        odd_images = rotate(DIGITS.images[750:800], 90.0)
        insert_predictions(
            s, logs_of(odd, "odd", t1 + timedelta(minutes=5), images=odd_images, labels=False)
        )
    evaluator = Evaluator(sessions.kw["bind"], settings, settle_seconds=0)
    evaluator.tick()
    with sessions() as s:
        window_id = s.scalars(
            select(LogScoreRow.window_id)
            .join(Prediction, Prediction.id == LogScoreRow.prediction_id)
            .where(Prediction.request_id == "odd-0")
        ).one()
    return World(settings, sessions, evaluator, window_id)


def test_calibration_estimate_scores_and_late_labels(world: World) -> None:
    with world.sessions() as s:
        prof = s.scalars(select(ImpactProfileRow)).one()
        est = s.get(WindowEstimateRow, world.window_id)
        n_scores = s.scalar(select(func.count()).where(LogScoreRow.window_id == world.window_id))
    assert prof.n_labelled == 600 and prof.ece_before is not None and prof.ece_after is not None
    assert prof.ece_after <= prof.ece_before and prof.outlier_source == "embedding"
    assert est is not None and est.n == WINDOW == n_scores and est.n_labelled == 0
    assert est.realized_accuracy is None
    assert est.estimated_low < est.estimated_accuracy < est.estimated_high
    assert est.outlier_share is not None and 0.2 <= est.outlier_share <= 0.3  # 50 of 200
    # labels arrive late, for 120 of the window's logs: the next tick fills realized accuracy
    with world.sessions() as s:
        rows = s.execute(
            select(Prediction.request_id, Prediction.predicted_class)
            .join(LogScoreRow, LogScoreRow.prediction_id == Prediction.id)
            .where(LogScoreRow.window_id == world.window_id)
            .order_by(Prediction.id)
            .limit(120)
        ).all()
    now = datetime.now(UTC)
    events = [
        LabelEvent(model="digits", request_id=r, label=(p + (i % 4 == 0)) % 10, timestamp=now)
        for i, (r, p) in enumerate(rows)
    ]
    with unit_of_work(world.sessions) as s:
        upsert_labels(s, events)
    world.evaluator.tick()
    with world.sessions() as s:
        est = s.get(WindowEstimateRow, world.window_id)
    assert est is not None and est.n_labelled == 120
    assert est.realized_accuracy == pytest.approx(0.75)  # every 4th label disagrees
    assert est.realized_low is not None and est.realized_low < 0.75 < (est.realized_high or 0)


def test_worst_images_over_the_api_and_the_cli(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(world.settings, world.sessions.kw["bind"], check_broker=False)
    with TestClient(app) as client:
        body = client.get(f"/api/v1/windows/{world.window_id}/outliers", params={"n": 10}).json()
        page = client.get(f"/api/v1/windows/{world.window_id}/outliers/page")
        missing = client.get("/api/v1/windows/999999/outliers")
        history = client.get("/api/v1/models/digits/accuracy", params={"arm": "all"}).json()
    worst = body["worst"]
    assert len(worst) == 10 and all(t["request_id"].startswith("odd-") for t in worst)
    scores = [t["outlier_score"] for t in worst]
    assert scores == sorted(scores, reverse=True)
    assert all(t["thumbnail"].startswith("data:image/png;base64,") for t in worst)
    assert len(body["typical"]) == 10 and all(
        t["request_id"].startswith("ref-") for t in body["typical"]
    )
    assert max(t["outlier_score"] for t in body["typical"]) < min(scores)
    assert body["estimate"]["n"] == WINDOW
    assert page.status_code == 200 and page.text.count('<img class="thumb"') == 2 * 24  # default n
    assert missing.status_code == 404
    assert [h["window_id"] for h in history][-1] == world.window_id
    monkeypatch.setenv("DRIFTWATCH_DATABASE__URL", world.settings.database.url)
    out = tmp_path / "worst.html"
    run = CliRunner().invoke(
        cli, ["report", "outliers", "--window", str(world.window_id), "-n", "5", "--html", str(out)]
    )
    assert run.exit_code == 0, run.output
    assert "estimated accuracy" in run.output and run.output.count(" odd-") == 5
    assert out.read_text().count('<img class="thumb"') == 10
    as_json = CliRunner().invoke(
        cli, ["report", "outliers", "--window", str(world.window_id), "-n", "3", "--json"]
    )
    assert [t["request_id"] for t in json.loads(as_json.output)["worst"]] == [
        t["request_id"] for t in worst[:3]
    ]


def test_label_queue_exports_uncertain_and_unusual_and_retraining_prefers_it(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with unit_of_work(world.sessions) as s:
        items = build_label_queue(s, "digits", "v1", 20)
    with world.sessions() as s:
        conf = dict(
            s.execute(
                select(Prediction.request_id, LogScoreRow.calibrated_confidence).join(
                    LogScoreRow, LogScoreRow.prediction_id == Prediction.id
                )
            ).all()
        )
    unusual = [i for i in items if i.reason == "unusual"]
    uncertain = [i for i in items if i.reason == "uncertain"]
    assert len(unusual) == len(uncertain) == 10 and len({i.request_id for i in items}) == 20
    assert all(i.request_id.startswith("odd-") for i in unusual)
    unlabelled_conf = sorted(c for r, c in conf.items() if not r.startswith("ref-"))
    picked = [i.calibrated_confidence for i in uncertain]
    assert max(picked) <= unlabelled_conf[len(unusual) + 10]  # among the least confident
    assert [i.reason for i in items[:2]] == ["uncertain", "unusual"]  # interleaved
    monkeypatch.setenv("DRIFTWATCH_DATABASE__URL", world.settings.database.url)
    out = tmp_path / "queue.csv"
    run = CliRunner().invoke(
        cli, ["labels", "export", "digits", "v1", "-n", "6", "--format", "csv", "--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and rows[0]["thumbnail"].startswith("data:image/png")
    assert not {r["request_id"] for r in rows} & {i.request_id for i in items}  # not twice
    # labels come back for the queue and for some other logs; retraining keeps the queued ones
    queued = [i.request_id for i in items]
    others = [f"usual-{k}" for k in range(100, 150)]
    now = datetime.now(UTC)
    with unit_of_work(world.sessions) as s:
        upsert_labels(
            s,
            [
                LabelEvent(model="digits", request_id=r, label=1, timestamp=now)
                for r in queued + others
            ],
        )
    with world.sessions() as s:
        data = load_labelled(s, "digits", since=now - timedelta(hours=1, minutes=30), limit=25)
        ids = dict(s.execute(select(Prediction.id, Prediction.request_id)).all())
    names = [ids[int(i)] for i in data.ids]
    assert set(queued) <= set(names) and len(names) == 25
    assert list(data.ids) == sorted(data.ids)  # oldest first, as before


def _policy_settings(settings_for: Callable[..., Settings], db_url: str, url: str) -> Settings:
    return settings_for(
        db_url,
        windows=WindowSettings(max_count=WINDOW, min_count=50, max_seconds=3600),
        policy=PolicySettings(windows_to_warn=1, windows_to_alert=2, windows_to_resolve=2),
        alerts=AlertSettings(channels=[WebhookChannel(url=url)]),
    )


@pytest.mark.parametrize(
    ("shift", "harmful"),
    [({"brightness": -0.4}, False), ({"brightness": -0.4, "temperature": 2.5}, True)],
    ids=["harmless", "harmful"],
)
def test_harmless_shift_warns_and_harmful_shift_pages_with_the_estimated_drop(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    shift: dict[str, float],
    harmful: bool,
) -> None:
    with Receiver() as rx:
        settings = _policy_settings(settings_for, db_url, rx.url + "/hook")
        t0 = datetime.now(UTC) - timedelta(hours=2)
        with unit_of_work(sessions) as s:
            insert_predictions(s, logs_of(synthetic_batch(1000, dim=16, seed=1), "ref", t0))
            fit_profile_from_store(s, settings, "digits", "v1", None, None, "ref", activate=True)
        evaluator = Evaluator(sessions.kw["bind"], settings, settle_seconds=0)
        evaluator.tick()
        decisions = []
        for k in range(3):  # three shifted windows, without labels
            batch = synthetic_batch(WINDOW, dim=16, seed=10 + k, **shift)
            start = t0 + timedelta(hours=1, minutes=10 * k)
            with unit_of_work(sessions) as s:
                insert_predictions(s, logs_of(batch, f"w{k}", start, labels=False))
            decisions += evaluator.tick().decisions
    with sessions() as s:
        pixel = [
            (t.to_state, t.notify, t.reason)
            for t in s.scalars(
                select(PolicyTransitionRow)
                .where(PolicyTransitionRow.family == "pixel")
                .order_by(PolicyTransitionRow.id)
            )
        ]
        alerts = list(s.scalars(select(AlertRow)))
    if not harmful:
        assert [p[0] for p in pixel] == ["warn"] and not pixel[0][1]
        assert "estimated accuracy" in pixel[0][2]
        assert alerts == [] and rx.received == [] and not any(d.retrain for d in decisions)
        return
    assert [p[0] for p in pixel] == ["warn", "alert"] and pixel[1][1]
    assert len([a for a in alerts if a.paged]) == 1 and len(rx.received) == 1
    msg = rx.received[0].json
    drop = msg["estimated_drop_points"]
    assert drop > 10 and f"est. accuracy −{drop:.1f} pts" in msg["title"]
    assert "impact: estimated accuracy" in msg["text"]
    window_id = alerts[0].evidence["window_id"]
    link = f"/api/v1/windows/{window_id}/outliers/page"
    assert msg["worst_images_url"].endswith(link) and link in msg["runbook"]
    assert msg["severity"] == "critical"  # drop over critical_drop_points (10)
    assert any(d.retrain for d in decisions)  # the estimated drop allows the retrain


def _chromium(*args: str, profile: Path) -> Any:
    import shutil
    import subprocess

    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (run tests/services.sh)"
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--hide-scrollbars", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


#: Appended to a copy of the page for the test only: the page itself runs no script.
_PROBE = (
    "<script>addEventListener('load',()=>{const i=[...document.images];"
    "document.title='decoded '+i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length"
    "+' status-grid '+document.querySelectorAll('#worst-images img').length;})</script>"
)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_worst_images_grid_renders_in_headless_chromium(world: World, tmp_path: Path) -> None:
    import re
    import shutil

    from monitor.reports.status_page import status_html
    from monitor.reports.worst_images import gather_worst, page_html

    with world.sessions() as s:
        grid = page_html(gather_worst(s, world.settings, world.window_id, 12))
        status = status_html(s, world.settings, "digits")
    assert "Accuracy: estimated (band: interval) vs realized" in status
    artifacts = Path(__file__).resolve().parents[1] / "var" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    for name, page, images in (("worst_images", grid, 24), ("status_page_impact", status, 48)):
        path = tmp_path / f"{name}.html"
        path.write_text(page.replace("</body>", _PROBE + "</body>"))
        dom = _chromium(
            "--virtual-time-budget=5000", "--dump-dom", path.as_uri(), profile=tmp_path / name
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        title = re.search(r"<title>(.*?)</title>", dom.stdout)
        assert title is not None
        decoded = re.search(r"decoded (\d+)/(\d+) status-grid (\d+)", title.group(1))
        assert decoded is not None, title.group(1)
        assert int(decoded.group(1)) == int(decoded.group(2)) == images  # every one decoded
        assert int(decoded.group(3)) == images
        shot = tmp_path / f"{name}.png"
        run = _chromium(
            "--window-size=1200,1700", f"--screenshot={shot}", path.as_uri(),
            profile=tmp_path / f"{name}-shot",
        )  # fmt: skip
        assert run.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG"
        shutil.copyfile(shot, artifacts / f"{name}.png")
        shutil.copyfile(tmp_path / f"{name}.html", artifacts / f"{name}.html")
