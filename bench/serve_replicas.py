"""Sharded evaluation: windows evaluated per second by 1 and 2 evaluator replicas on PostgreSQL.

The same store (``--models`` models, ``--windows`` windows each, a reference per model) is
copied from one template database for every run, so each replica count sees the same data.
Each replica is its own process ticking until no window is left; the figure is windows per
second of wall time from the moment every replica is warm (imported, one window scored) to
the last window evaluated.

Run: ``.venv/bin/python bench/serve.py --replicas 1 2`` (needs PostgreSQL on 127.0.0.1:5432).
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from serve import ADMIN, _admin, _logs
from sqlalchemy import func, select

from monitor.detectors.registry import fit_all, score_all
from monitor.detectors.simulate import synthetic_batch
from monitor.profiles import fit_profile_from_batch
from monitor.scheduler import Evaluator
from monitor.settings import DatabaseSettings, Settings, WindowSettings
from monitor.store import migrate
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.ingest_repo import write_batch
from monitor.store.tables import Window


def _settings(url: str, max_count: int) -> Settings:
    return Settings(
        environment="test",
        database=DatabaseSettings(url=url),
        windows=WindowSettings(max_count=max_count),
    )


def seed(url: str, models: int, windows: int, max_count: int) -> None:
    """References and ``windows`` full windows of logs (the last one shifted) per model."""
    settings = _settings(url, max_count)
    migrate.upgrade(url)
    engine = make_engine(settings.database)
    factory = session_factory(engine)
    start = datetime.now(UTC) - timedelta(hours=1)
    for k in range(models):
        model = f"m{k:03d}"
        with unit_of_work(factory) as session:
            ref = synthetic_batch(1000, seed=k, dim=64)
            fit_profile_from_batch(session, settings, model, "v1", ref, "ref", activate=True)
            for w in range(windows):
                shift = 0.4 if w == windows - 1 else 0.0
                write_batch(session, _logs(model, max_count, 1000 * k + w, start, shift))
    engine.dispose()


def _replica(url: str, max_count: int, ready: Any) -> None:
    settings = _settings(url, max_count)
    evaluator = Evaluator(make_engine(settings.database), settings, settle_seconds=0)
    warm = synthetic_batch(max_count, seed=1, dim=64)  # imports and first-use compiles
    score_all(fit_all(warm, settings.detectors, "warm"), warm, settings.detectors, "warm")
    ready.wait()
    while True:
        evaluator.tick(deliver=False)
        time.sleep(0.01)


def run(url: str, replicas: int, max_count: int, expected: int) -> float:
    """Windows per second with ``replicas`` replica processes on the store at ``url``."""
    engine = make_engine(DatabaseSettings(url=url))
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(replicas + 1)
    procs = [ctx.Process(target=_replica, args=(url, max_count, ready)) for _ in range(replicas)]
    for p in procs:
        p.start()
    ready.wait()  # every replica warm: time the evaluation, not the start-up
    t0 = time.perf_counter()
    try:
        while True:
            with engine.connect() as conn:
                done = conn.scalar(
                    select(func.count()).select_from(Window).where(Window.state != "closed")
                )
            if done and done >= expected:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
    finally:
        for p in procs:
            p.kill()
            p.join()
        engine.dispose()
    return expected / seconds


def bench_replicas(
    counts: list[int], models: int, windows: int, max_count: int
) -> dict[int, float]:
    """Seed one template store, then time each replica count on a fresh copy of it."""
    template = f"dw_shards_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{template}"')
    base = ADMIN.rsplit("/", 1)[0]
    rates: dict[int, float] = {}
    try:
        seed(f"{base}/{template}", models, windows, max_count)
        for n in counts:
            copy = f"{template}_r{n}"
            _admin(f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
            try:
                rates[n] = run(f"{base}/{copy}", n, max_count, models * windows)
            finally:
                _admin(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    return rates
