"""``driftwatch ingest --processes N``: worker processes in one group on the real broker.

N logs in -> N rows, none twice, with one worker SIGKILLed mid-stream: the others take over its
partitions (or it comes back), and the group's committed offsets reach the end.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import create_engine, func, select

from ingest.processes import CRASH_LOOP, IngestPool
from ingest.sdk import encode_prediction
from monitor.settings import IngestSettings, KafkaSettings, Settings
from monitor.store.tables import Prediction
from tests.test_ingest_worker import committed, produce

N = 3000
PARTITIONS = 4


def stored(url: str) -> tuple[int, int]:
    """(rows, distinct request ids) in the store."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(Prediction)) or 0
        ids = conn.scalar(select(func.count(func.distinct(Prediction.request_id)))) or 0
    engine.dispose()
    return rows, ids


def logs(n: int, tag: str) -> list[bytes]:
    emb = np.ones(8, np.float32)
    return [
        encode_prediction("digits", "v1", f"{tag}-{i}", [0.3, 0.7], embedding=emb) for i in range(n)
    ]


def test_the_other_process_takes_over_a_killed_ones_partitions(
    db_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
    wait_until: Callable[..., Any],
) -> None:
    run_through_a_kill(db_url, make_topics, settings_for, wait_until, restart=False)


def test_a_killed_process_is_restarted_and_nothing_is_stored_twice(
    pg_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
    wait_until: Callable[..., Any],
) -> None:
    run_through_a_kill(pg_url, make_topics, settings_for, wait_until, restart=True)


def run_through_a_kill(
    db_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
    wait_until: Callable[..., Any],
    restart: bool,
) -> None:
    """Two processes, 4 partitions; SIGKILL one after the first rows land; N rows in the end."""
    # a short session: the group notices the dead member in seconds, not the default 10 s
    kafka = make_topics(PARTITIONS).model_copy(
        update={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    )
    settings = settings_for(db_url, kafka, ingest=IngestSettings(batch_max_messages=200))
    pool = IngestPool(settings, 2, max_restarts=5 if restart else 0)
    stop = threading.Event()
    codes: list[int] = []
    produce(kafka, kafka.predictions_topic, logs(N // 2, "first"))
    pool.start()
    supervisor = threading.Thread(target=lambda: codes.append(pool.supervise(stop, every=0.2)))
    if restart:
        supervisor.start()
    try:
        wait_until(lambda: stored(db_url)[0] > 0, timeout=90, what="the first rows")
        victim = pool.pids[0]
        os.kill(victim, signal.SIGKILL)  # mid-stream: part of the first half is not yet stored
        produce(kafka, kafka.predictions_topic, logs(N - N // 2, "second"))
        if restart:
            wait_until(
                lambda: victim not in pool.pids and len(pool.pids) == 2,
                timeout=30,
                what="a restart",
            )
        wait_until(lambda: stored(db_url)[0] >= N, timeout=120, what=f"{N} rows")
        wait_until(lambda: committed(kafka, PARTITIONS) == N, timeout=60, what="offsets at the end")
    finally:
        stop.set()
        if restart:
            supervisor.join()
        else:
            pool.stop()
    assert stored(db_url) == (N, N)
    assert codes == ([0] if restart else [])


def test_a_crash_loop_stops_the_pool_with_a_nonzero_code(
    settings_for: Callable[..., Settings], sqlite_url: str
) -> None:
    broken = settings_for(sqlite_url, KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    pool = IngestPool(broken, 1, max_restarts=2, restart_window_s=60)
    pool.start()
    for pid in pool.pids:
        os.kill(pid, signal.SIGKILL)
    stop = threading.Event()
    killer = threading.Thread(target=lambda: [_kill_all(pool, stop) for _ in range(1)])
    killer.start()
    assert pool.supervise(stop, every=0.1) == CRASH_LOOP
    stop.set()
    killer.join()
    assert pool.pids == [] or all(not w.is_alive() for w in pool.workers if w is not None)


def _kill_all(pool: IngestPool, stop: threading.Event) -> None:
    """Kill every worker as soon as it is restarted, until the pool gives up."""
    while not stop.wait(0.05):
        for w in pool.workers:
            if w is not None and w.is_alive() and w.pid is not None:
                os.kill(w.pid, signal.SIGKILL)


def test_the_cli_refuses_single_worker_limits_with_processes() -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    result = CliRunner().invoke(cli, ["ingest", "--processes", "2", "--max-messages", "5"])
    assert result.exit_code == 2 and "--processes 1" in result.output
