"""Serving benchmark: can the evaluator keep up with 20,000 logs/s over 20 models, and how fast
does the API answer a 7-day drift history?

1. Evaluation: store ``--windows`` full windows (``windows.max_count`` logs, 64-d embeddings,
   pixel stats) for each of 20 models on PostgreSQL, fit a reference per model, then time the
   evaluator's tick (close -> load -> score 4 families -> policy -> store). At 20,000 logs/s,
   one minute of traffic makes ``20000 * 60 / max_count`` windows; the figure is the evaluation
   time those windows take, against the 60 s they arrive in (the real-time factor).
2. API: fill ``drift_results`` with 7 days of windows (one per ``--minutes``) x 4 families for
   20 models, serve the API with uvicorn on loopback, and time ``GET
   /api/v1/models/m07/drift`` over 7 days (first page of 500) against ``/healthz`` and against
   the bare SQL query (the peers measured in the same run).

Run: ``.venv/bin/python bench/serve.py`` (needs PostgreSQL on 127.0.0.1:5432);
``--replicas 1 2`` times sharded evaluation instead (bench/serve_replicas.py).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
from sqlalchemy import create_engine, insert, select, text

from monitor.detectors.simulate import synthetic_batch
from monitor.imagestats import STAT_NAMES
from monitor.profiles import fit_profile_from_batch
from monitor.scheduler import Evaluator
from monitor.schemas import PredictionLog, encode_array
from monitor.settings import DatabaseSettings, Settings, WindowSettings
from monitor.store import migrate
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.ingest_repo import write_batch
from monitor.store.tables import DriftResultRow, Window

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MODELS = [f"m{i:02d}" for i in range(20)]


def _admin(sql: str) -> None:
    eng = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(sql))
    eng.dispose()


def _logs(model: str, n: int, seed: int, start: datetime, shift: float) -> list[PredictionLog]:
    b = synthetic_batch(n, seed=seed, dim=64, brightness=-shift, embedding_shift=3 * shift)
    assert b.embeddings is not None and b.pixel is not None
    return [
        PredictionLog(
            model=model,
            model_version="v1",
            request_id=f"{model}-{seed}-{i}",
            timestamp=start + timedelta(milliseconds=i),
            predicted_class=int(b.predicted[i]),
            probabilities=(b.probs[i] / b.probs[i].sum()).tolist(),
            embedding=encode_array(b.embeddings[i], "float16"),
            pixel_stats=dict(zip(STAT_NAMES, b.pixel[i].tolist(), strict=True)),
        )
        for i in range(n)
    ]


def bench_evaluation(url: str, windows: int, max_count: int) -> dict[str, float]:
    settings = Settings(
        environment="test",
        database=DatabaseSettings(url=url),
        windows=WindowSettings(max_count=max_count),
    )
    engine = make_engine(settings.database)
    factory = session_factory(engine)
    start = datetime.now(UTC) - timedelta(hours=1)
    t0 = time.perf_counter()
    for k, model in enumerate(MODELS):
        with unit_of_work(factory) as session:
            fit_profile_from_batch(
                session,
                settings,
                model,
                "v1",
                synthetic_batch(2000, seed=k, dim=64),
                "ref",
                activate=True,
            )
        for w in range(windows):
            with unit_of_work(factory) as session:
                write_batch(
                    session,
                    _logs(model, max_count, 1000 * k + w, start, 0.4 if w == windows - 1 else 0.0),
                )
    write_s = time.perf_counter() - t0
    # warm up: the first use imports scipy/pandas and compiles; time the steady state
    from monitor.detectors.registry import fit_all, score_all

    warm = synthetic_batch(max_count, seed=1, dim=64)
    score_all(fit_all(warm, settings.detectors, "warm"), warm, settings.detectors, "warm")
    evaluator = Evaluator(engine, settings, settle_seconds=0)
    report = evaluator.tick(deliver=False)
    engine.dispose()
    n_windows = report.windows_evaluated
    per_window = report.seconds / max(n_windows, 1)
    per_minute = 20_000 * 60 / max_count
    return {
        "windows": n_windows,
        "logs": n_windows * max_count,
        "tick_s": report.seconds,
        "per_window_ms": per_window * 1000,
        "windows_per_traffic_minute": per_minute,
        "eval_s_per_traffic_minute": per_window * per_minute,
        "write_logs_per_s": len(MODELS) * windows * max_count / write_s,
        "decisions": len(report.decisions),
    }


def fill_history(url: str, minutes: int) -> int:
    engine = make_engine(DatabaseSettings(url=url))
    end = datetime.now(UTC)
    n = 7 * 24 * 60 // minutes
    rows = 0
    with engine.begin() as conn:
        for model in MODELS:
            wins = [
                {
                    "model": model,
                    "model_version": "v1",
                    "arm": "all",
                    "first_id": 10**9 + i * 1000 + 1,
                    "last_id": 10**9 + (i + 1) * 1000,
                    "start_ts": end - timedelta(minutes=(n - i) * minutes),
                    "end_ts": end - timedelta(minutes=(n - i - 1) * minutes),
                    "n": 1000,
                    "closed_by": "time",
                    "state": "evaluated",
                    "closed_at": end,
                    "evaluated_at": end,
                }
                for i in range(n)
            ]
            ids = conn.execute(insert(Window).returning(Window.id, Window.end_ts), wins).all()
            details = [
                {
                    "name": "brightness",
                    "statistic": 0.1,
                    "p_value": 0.2,
                    "effect_size": 0.05,
                    "ref_value": 0.45,
                    "cur_value": 0.44,
                    "drifted": False,
                    "relative": True,
                }
            ]
            res = [
                {
                    "window_id": wid,
                    "model": model,
                    "model_version": "v1",
                    "arm": "all",
                    "window_end": wend,
                    "family": fam,
                    "kind": f"{fam}.x",
                    "method": "x",
                    "statistic": 0.1,
                    "p_value": 0.3,
                    "effect_size": 0.02,
                    "threshold": 0.1,
                    "alpha": 0.01,
                    "drifted": False,
                    "n_ref": 2000,
                    "n_cur": 1000,
                    "details": details,
                    "schema_version": 1,
                    "created_at": end,
                }
                for wid, wend in ids
                for fam in ("embedding", "pixel", "confidence", "classes")
            ]
            conn.execute(insert(DriftResultRow), res)
            rows += len(res)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()
    return rows


def _timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench_api(url: str, requests: int) -> dict[str, float]:
    import uvicorn

    from monitor.api.app import create_app

    settings = Settings(environment="test", database=DatabaseSettings(url=url))
    app = create_app(settings, check_broker=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    end = datetime.now(UTC)
    params = {"start": (end - timedelta(days=7)).isoformat(), "end": end.isoformat(), "limit": 500}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        first = client.get("/api/v1/models/m07/drift", params=params)
        assert first.status_code == 200 and len(first.json()["items"]) == 500, first.text
        _timed(lambda: client.get("/api/v1/models/m07/drift", params=params), 20)  # warm up
        drift = _timed(lambda: client.get("/api/v1/models/m07/drift", params=params), requests)
        full = {**params, "features": "true"}
        with_features = _timed(
            lambda: client.get("/api/v1/models/m07/drift", params=full), requests
        )
        health = _timed(lambda: client.get("/healthz"), requests)
    server.should_exit = True
    thread.join(10)
    engine = make_engine(settings.database)
    start_ts = end - timedelta(days=7)
    with engine.connect() as conn:
        stmt = (
            select(DriftResultRow)
            .where(
                DriftResultRow.model == "m07",
                DriftResultRow.window_end >= start_ts,
                DriftResultRow.window_end < end,
            )
            .order_by(DriftResultRow.window_end, DriftResultRow.id)
            .limit(501)
        )
        sql = _timed(lambda: conn.execute(stmt).all(), requests)
    engine.dispose()
    return {
        "drift_p50_ms": _p(drift, 50),
        "drift_p99_ms": _p(drift, 99),
        "features_p50_ms": _p(with_features, 50),
        "features_p99_ms": _p(with_features, 99),
        "health_p50_ms": _p(health, 50),
        "health_p99_ms": _p(health, 99),
        "sql_p50_ms": _p(sql, 50),
        "sql_p99_ms": _p(sql, 99),
        "mean_ms": statistics.fmean(drift),
    }


def _print_evaluation(ev: dict[str, float]) -> None:
    print(
        f"evaluation: {ev['windows']} windows ({ev['logs']:,} logs, 20 models) in "
        f"{ev['tick_s']:.1f} s = {ev['per_window_ms']:.0f} ms/window "
        f"({ev['decisions']} policy transitions)"
    )
    print(
        f"  at 20,000 logs/s: {ev['windows_per_traffic_minute']:.0f} windows per minute "
        f"of traffic -> {ev['eval_s_per_traffic_minute']:.1f} s of evaluation per 60 s "
        f"(real-time factor {ev['eval_s_per_traffic_minute'] / 60:.2f})"
    )
    print(f"  (peer: storing the logs ran at {ev['write_logs_per_s']:,.0f} logs/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=3, help="Windows per model to evaluate.")
    parser.add_argument("--max-count", type=int, default=1000, help="Logs per window.")
    parser.add_argument("--minutes", type=int, default=5, help="Window length of the history.")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--api-only", action="store_true", help="Skip the evaluation part.")
    parser.add_argument(
        "--replicas",
        type=int,
        nargs="+",
        help="Only time sharded evaluation with these replica counts (bench/serve_replicas.py).",
    )
    parser.add_argument("--models", type=int, default=200, help="Models for --replicas.")
    args = parser.parse_args()
    if args.replicas:
        from serve_replicas import bench_replicas

        rates = bench_replicas(args.replicas, args.models, args.windows, args.max_count)
        for n, rate in rates.items():
            ratio = rate / rates[args.replicas[0]]
            print(f"replicas {n}: {rate:.1f} windows/s ({args.models} models; {ratio:.2f}x)")
        return
    name = f"dw_bench_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate.upgrade(url)
        if not args.api_only:
            _print_evaluation(bench_evaluation(url, args.windows, args.max_count))
        rows = fill_history(url, args.minutes)
        api = bench_api(url, args.requests)
        print(
            f"api: drift history of 1 model over 7 days (first page of 500, store holds "
            f"{rows:,} results of 20 models): p50 {api['drift_p50_ms']:.1f} ms, "
            f"p99 {api['drift_p99_ms']:.1f} ms; with moved features p50 "
            f"{api['features_p50_ms']:.1f} ms, p99 {api['features_p99_ms']:.1f} ms"
        )
        print(
            f"  peers: /healthz p50 {api['health_p50_ms']:.1f} ms p99 "
            f"{api['health_p99_ms']:.1f} ms; bare SQL p50 {api['sql_p50_ms']:.1f} ms p99 "
            f"{api['sql_p99_ms']:.1f} ms; drift/healthz p50 ratio "
            f"{api['drift_p50_ms'] / api['health_p50_ms']:.1f}x"
        )
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
