"""Kill ``driftwatch ingest`` with SIGKILL mid-stream, restart it, stop it with SIGTERM, restart
it again: nothing lost, nothing stored twice, offsets never ahead of the store."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from sqlalchemy import func, select

from ingest.sdk import encode_prediction
from monitor.settings import DatabaseSettings, IngestSettings, KafkaSettings, Settings
from monitor.store.db import make_engine
from monitor.store.tables import Prediction
from tests.conftest import poll_until
from tests.test_ingest_worker import committed, produce


def _counts(url: str) -> tuple[int, int]:
    engine = make_engine(DatabaseSettings(url=url))
    with engine.connect() as conn:
        total, distinct = conn.execute(
            select(func.count(), func.count(func.distinct(Prediction.request_id)))
        ).one()
    engine.dispose()
    return int(total), int(distinct)


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from monitor.cli import main; main()",
            "--config",
            str(config),
            "ingest",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigkill_and_sigterm_mid_stream_then_restart(
    pg_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    db_url = pg_url  # the production backend; idempotent writes on both run in test_ingest_worker
    # a short session timeout: the restarted worker's join waits for the killed member to expire
    kafka = make_topics(partitions=2).model_copy(
        update={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    )
    ingest = IngestSettings(batch_max_messages=300, batch_max_seconds=0.1)
    settings = settings_for(db_url, kafka, ingest=ingest)
    config = tmp_path / "driftwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            settings.model_dump(
                mode="json",
                include={"environment", "kafka", "database", "ingest"},
                exclude_none=True,
            )
        )
    )
    n = 12_000
    produce(
        kafka,
        kafka.predictions_topic,
        [encode_prediction("digits", "v1", f"r{i}", [0.1, 0.9]) for i in range(n)],
    )

    def run_until(rows: int, sig: signal.Signals) -> tuple[int, str]:
        proc = _start(config)

        def into_the_stream() -> bool:  # well into the stream, far from its end
            assert proc.poll() is None, proc.stdout
            return _counts(db_url)[0] >= rows

        poll_until(into_the_stream, 60, f"{rows} rows")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        landed = _counts(db_url)[0]
        assert landed < n, "the worker finished before the signal; make the stream longer"
        return landed, out

    landed, _ = run_until(1500, signal.SIGKILL)
    assert committed(kafka, partitions=2) <= landed  # offsets never run ahead of the store

    # SIGTERM: the batch in flight is finished and committed, the consumer leaves cleanly
    landed, out = run_until(landed + 3000, signal.SIGTERM)
    assert "finishing the current batch" in out and "stored=" in out, out
    assert committed(kafka, partitions=2) == landed

    last = _start(config, "--idle-timeout", "2")
    out, _ = last.communicate(timeout=90)
    assert last.returncode == 0, out
    assert _counts(db_url) == (n, n)
    assert committed(kafka, partitions=2) == n
    summary = out.strip().splitlines()[-1]
    stored = int(summary.split("stored=")[1].split()[0])
    assert stored == n - landed, summary
