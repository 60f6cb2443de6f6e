"""Sharded evaluation: evaluator replicas (real processes) share the models on PostgreSQL.

Every window is evaluated exactly once and in window order per stream, every alert delivery
reaches the receiver once; a replica SIGKILLed mid-run leaves its models to the others and a
replica that joins late takes a share.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.receiver import Receiver
from monitor.detectors.simulate import synthetic_batch
from monitor.profiles import fit_profile_from_batch
from monitor.settings import Settings
from monitor.store.alerting_tables import AlertDeliveryRow
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.ingest_repo import write_batch
from monitor.store.tables import DriftResultRow, Window
from tests.test_scheduler import WINDOW, logs_from_batch, make_settings

REPLICA = Path(__file__).with_name("evaluator_replica.py")
MODELS = [f"model-{i:02d}" for i in range(32)]


def add_windows(
    factory: sessionmaker[Session], start: datetime, first: int, shifted: list[bool]
) -> None:
    """Windows ``first``.. of logs for every model; ``shifted[i]`` moves window ``first + i``."""
    for m, model in enumerate(MODELS):
        logs = []
        for i, moved in enumerate(shifted):
            k = first + i
            shift = {"brightness": -0.4, "embedding_shift": 3.0} if moved else {}
            batch = synthetic_batch(WINDOW, seed=1000 * m + k, **shift)
            at = start + timedelta(seconds=WINDOW * 0.05 * k)
            logs += logs_from_batch(batch, at, f"{model}-w{k}", model=model)
        with unit_of_work(factory) as session:
            write_batch(session, logs)


def spawn(db_url: str, hook: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPLICA.parents[1])}
    return subprocess.Popen([sys.executable, str(REPLICA), db_url, hook, str(out)], env=env)


def evaluated_by(out: Path) -> list[int]:
    if not out.exists():
        return []
    return [w for line in out.read_text().splitlines() for w in json.loads(line)["windows"]]


def counts(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as session:
        total = session.scalar(select(func.count()).select_from(Window)) or 0
        done = session.scalar(
            select(func.count()).select_from(Window).where(Window.state == "evaluated")
        )
    return total, done or 0


def test_replicas_share_models_and_survive_a_kill(
    pg_url: str, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    with Receiver() as rx:
        settings: Settings = make_settings(pg_url, rx.url)
        engine = make_engine(settings.database)
        factory = session_factory(engine)
        start = datetime.now(UTC) - timedelta(hours=2)
        with unit_of_work(factory) as session:
            for m, model in enumerate(MODELS):
                ref = synthetic_batch(600, seed=50_000 + m)
                fit_profile_from_batch(session, settings, model, "v1", ref, "ref", activate=True)
        add_windows(factory, start, 0, [False, True, True])  # 96 windows: clean, then drift
        outs = [tmp_path / f"replica-{i}.jsonl" for i in range(4)]
        replicas = [spawn(pg_url, rx.url, outs[i]) for i in range(3)]
        try:
            wait_until(lambda: evaluated_by(outs[0]), timeout=120, what="replica 0 to work")
            replicas[0].send_signal(signal.SIGKILL)  # mid-run: windows are still pending
            replicas[0].wait()
            assert counts(factory)[1] < 96
            add_windows(factory, start, 3, [False, False, True])  # 96 more after the kill
            replicas.append(spawn(pg_url, rx.url, outs[3]))
            wait_until(lambda: counts(factory) == (192, 192), timeout=240, what="all windows")
            wait_until(
                lambda: len(rx.received) >= _deliveries(factory) > 0, timeout=60, what="pages"
            )
            time.sleep(1.0)  # a duplicate delivery, if there were one, would arrive now
        finally:
            for p in replicas:
                p.kill()
                p.wait()

        with factory() as session:
            per_window = Counter(
                session.scalars(select(DriftResultRow.window_id)).all()
            )  # one row per family and window: a second evaluation would double them
            windows = session.execute(
                select(Window.model, Window.id, Window.evaluated_at).order_by(Window.id)
            ).all()
            deliveries = session.scalars(select(AlertDeliveryRow)).all()
        engine.dispose()

    assert len(per_window) == 192 and len(set(per_window.values())) == 1
    lines = sorted(
        (json.loads(x) for o in outs if o.exists() for x in o.read_text().splitlines()),
        key=lambda r: r["at"],
    )
    for model in MODELS:  # window order per stream, across replicas, in real time
        order = [w for r in lines if r["model"] == model for w in r["windows"]]
        assert order == sorted(order) == [i for m, i, _ in windows if m == model][: len(order)]
    shares = [len(evaluated_by(o)) for o in outs]
    everything = [w for o in outs for w in evaluated_by(o)]
    assert len(everything) == len(set(everything))  # no window in two replicas' reports
    assert all(n > 0 for n in shares[1:]), shares  # survivors and the late joiner all worked
    assert all(d.status == "delivered" for d in deliveries)
    assert len(rx.received) == len(deliveries)  # each delivery reached the receiver once


def _deliveries(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(AlertDeliveryRow)) or 0
