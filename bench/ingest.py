"""Ingest throughput: raw kafka-python consume rate (the ceiling) vs Driftwatch broker -> DB.

One run, one machine, the same messages: 128-d float16 embeddings, 10 classes, 13 pixel
statistics, produced by the SDK's encoder with gzip. Prints messages/s and the ratio to the
ceiling for SQLite and PostgreSQL, then the worker's RSS over a 10x longer stream.
Run it as a module (``-m``): as a script its own name would shadow the ``ingest`` package.

    .venv/bin/python -m bench.ingest [--n 50000] [--long-factor 10] [--no-pg]
    .venv/bin/python -m bench.ingest --processes 1 2 [--n 200000]

With ``--processes``, the topic has 4 partitions and ``driftwatch ingest --processes N``'s pool
(:class:`ingest.processes.IngestPool`) is timed instead, for each N, from its first stored row
to the last (so the group join is not counted), against the raw rate over all partitions.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from ingest.broker import LocalBroker
from ingest.processes import IngestPool
from ingest.sdk import encode_prediction
from ingest.worker import FETCH_MAX_WAIT_MS, IngestWorker
from monitor.imagestats import STAT_NAMES
from monitor.settings import DatabaseSettings, IngestSettings, KafkaSettings, Settings
from monitor.store import migrate

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def messages(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(10), size=n)
    emb = rng.normal(size=(n, 128)).astype(np.float32)
    stats = rng.uniform(size=(n, len(STAT_NAMES)))
    tag = uuid.uuid4().hex[:8]
    return [
        encode_prediction(
            "digits",
            "v1",
            f"{tag}-{i}",
            probs[i],
            embedding=emb[i],
            pixel_stats=dict(zip(STAT_NAMES, stats[i].tolist(), strict=True)),
            latency_ms=3.0,
            arm="stable",
        )
        for i in range(n)
    ]


def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type="gzip",
        linger_ms=20,
        batch_size=512 * 1024,
        acks=1,
    )
    for i, raw in enumerate(payloads):
        producer.send(topic, value=raw, key=str(i).encode())
    producer.flush()
    producer.close()


def raw_consume(kafka: KafkaSettings, n: int) -> float:
    """Records/s of a bare kafka-python consumer reading the topic from the start."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        max_poll_records=kafka.max_poll_records,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        receive_message_max_bytes=kafka.fetch_max_bytes + 1_048_576,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    tps = [
        TopicPartition(kafka.predictions_topic, p)
        for p in sorted(consumer.partitions_for_topic(kafka.predictions_topic) or {0})
    ]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got, started = 0, time.perf_counter()
    while got < n:
        for records in consumer.poll(timeout_ms=1000).values():
            got += sum(1 for r in records if r.value)
    rate = n / (time.perf_counter() - started)
    consumer.close()
    return rate


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def driftwatch(
    kafka: KafkaSettings, url: str, n: int, sample_rss: bool = False
) -> tuple[float, list[float]]:
    """Records/s of an IngestWorker from first assignment to the last commit, and RSS samples."""
    settings = Settings(
        environment="test",
        kafka=kafka,
        database=DatabaseSettings(url=url),
        ingest=IngestSettings(batch_max_messages=kafka.max_poll_records),
    )
    worker = IngestWorker(settings)
    samples: list[float] = []
    done = threading.Event()

    def sampler() -> None:
        while not done.wait(1.0):
            samples.append(rss_mib())

    if sample_rss:
        threading.Thread(target=sampler, daemon=True).start()
    stats = worker.run(max_messages=n)
    end = time.monotonic()
    done.set()
    assert stats.stored == n, stats
    assert stats.assigned_at is not None
    return n / (end - stats.assigned_at), samples


def _rows(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.scalar(text("SELECT count(*) FROM predictions")) or 0)
    engine.dispose()
    return n


def pool_rate(kafka: KafkaSettings, url: str, n: int, processes: int) -> float:
    """Records/s of an :class:`IngestPool` of ``processes`` workers, first row to last."""
    settings = Settings(
        environment="test",
        kafka=kafka.model_copy(update={"group_id": f"g-{uuid.uuid4().hex[:8]}"}),
        database=DatabaseSettings(url=url),
        ingest=IngestSettings(batch_max_messages=kafka.max_poll_records),
    )
    pool = IngestPool(settings, processes)
    pool.start()
    try:
        while _rows(url) == 0:
            time.sleep(0.01)
        started = time.perf_counter()
        while _rows(url) < n:
            time.sleep(0.02)
        return n / (time.perf_counter() - started)
    finally:
        pool.stop()


def bench_processes(broker: LocalBroker, counts: list[int], n: int, pg: bool, tmp: Path) -> None:
    kafka = broker.fresh_topics(4)
    for start in range(0, n, 50_000):
        produce(broker.bootstrap, kafka.predictions_topic, messages(min(50_000, n - start), start))
    raw = raw_consume(kafka, n)
    print(f"{n} messages on 4 partitions; raw kafka-python consume: {raw:,.0f} msg/s")
    for processes in counts:
        sqlite_url = f"sqlite:///{tmp / f'p{processes}.db'}"
        migrate.upgrade(sqlite_url)
        rate = pool_rate(kafka, sqlite_url, n, processes)
        print(
            f"  {processes} process(es) -> SQLite:     {rate:>9,.0f} msg/s  ratio {rate / raw:.2f}"
        )
        if pg:
            name = f"dw_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            pg_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            try:
                migrate.upgrade(pg_url)
                rate = pool_rate(kafka, pg_url, n, processes)
                print(
                    f"  {processes} process(es) -> PostgreSQL: {rate:>9,.0f} msg/s  ratio {rate / raw:.2f}"
                )
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--long-factor", type=int, default=10)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--processes", type=int, nargs="+", help="Time the process pool instead.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="dw-bench-"))
    try:
        with LocalBroker() as broker:
            if args.processes:
                bench_processes(broker, args.processes, args.n, not args.no_pg, tmp)
                return

            def topic_with(n: int) -> KafkaSettings:
                kafka = broker.fresh_topics()
                t0 = time.perf_counter()
                size = 0
                for start in range(0, n, 50_000):  # in chunks, so the bench's own RSS stays small
                    payload = messages(min(50_000, n - start), seed=start)
                    size += sum(len(p) for p in payload)
                    produce(broker.bootstrap, kafka.predictions_topic, payload)
                    del payload
                print(
                    f"  produced {n} messages ({size / n:.0f} B each) "
                    f"in {time.perf_counter() - t0:.1f}s"
                )
                return kafka

            n = args.n
            print(
                f"messages: {n}, 128-d float16 embedding, 10 classes, {len(STAT_NAMES)} pixel stats"
            )
            kafka = topic_with(n)
            raw = raw_consume(kafka, n)
            print(f"raw kafka-python consume:   {raw:>9,.0f} msg/s")
            sqlite_url = f"sqlite:///{tmp / 'bench.db'}"
            migrate.upgrade(sqlite_url)
            rate, _ = driftwatch(kafka, sqlite_url, n)
            print(f"driftwatch -> SQLite:       {rate:>9,.0f} msg/s  ratio {rate / raw:.2f}")
            if not args.no_pg:
                name = f"dw_bench_{uuid.uuid4().hex[:8]}"
                admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                pg_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
                try:
                    migrate.upgrade(pg_url)
                    kafka_pg = kafka.model_copy(update={"group_id": f"g-{uuid.uuid4().hex[:8]}"})
                    rate, _ = driftwatch(kafka_pg, pg_url, n)
                    print(
                        f"driftwatch -> PostgreSQL:   {rate:>9,.0f} msg/s  ratio {rate / raw:.2f}"
                    )
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
            if args.long_factor > 1:
                long_n = n * args.long_factor
                print(f"memory: {long_n} messages into SQLite")
                kafka_long = topic_with(long_n)
                long_url = f"sqlite:///{tmp / 'long.db'}"
                migrate.upgrade(long_url)
                rate, rss = driftwatch(kafka_long, long_url, long_n, sample_rss=True)
                tenth = rss[max(len(rss) // 10 - 1, 0)] if rss else float("nan")
                print(
                    f"driftwatch -> SQLite ({args.long_factor}x): {rate:>9,.0f} msg/s; "
                    f"RSS at 10% {tenth:.0f} MiB, "
                    f"max {max(rss, default=float('nan')):.0f} MiB, "
                    f"end {rss[-1] if rss else float('nan'):.0f} MiB"
                )

    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
