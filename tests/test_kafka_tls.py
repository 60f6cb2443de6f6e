"""Kafka over TLS with client certificates (mTLS, as Strimzi issues them), end to end: the
settings' ``ssl_*`` files drive the worker's consumer and producer and the admin client.

The bundled Tansu build listens in plain text only (its ``--cert``/``--key`` do not turn TLS
on, see docs/operations.md), so a TLS-terminating proxy that requires a client certificate
signed by a throwaway CA stands in front of it, the way a TLS listener fronts a Kafka broker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

from ingest.broker import LocalBroker, free_port
from ingest.kafka_config import admin_config, client_config, producer_config
from ingest.worker import IngestWorker
from monitor.schemas import PredictionLog
from monitor.settings import DatabaseSettings, IngestSettings, KafkaSettings, Settings
from monitor.store.db import make_engine
from monitor.store.tables import Prediction

_Key = ec.EllipticCurvePrivateKey


def _cert(
    cn: str, key: _Key, issuer: tuple[str, _Key] | None, usage: Any = None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_cn, signer = issuer or (cn, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: _Key | None = None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA (Strimzi's ``ca.crt``), a server certificate for 127.0.0.1, a client
    certificate (``user.crt``/``user.key``) and one from another CA."""
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    server_key, user_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = ("driftwatch-test-ca", ca_key)
    return {
        "ca": _write(d / "ca.crt", _cert(ca[0], ca_key, None)),
        "server": _write(d / "server.crt", _cert("broker", server_key, ca, ExtendedKeyUsageOID.SERVER_AUTH), server_key),
        "user": _write(d / "user.crt", _cert("driftwatch", user_key, ca, ExtendedKeyUsageOID.CLIENT_AUTH), user_key),
        "stranger": _write(d / "stranger.crt", _cert("stranger", other_key, ("other-ca", other_key), ExtendedKeyUsageOID.CLIENT_AUTH), other_key),
    }  # fmt: skip


@contextlib.contextmanager
def tls_proxy(pki: dict[str, Path], port: int, upstream: Callable[[], int]) -> Iterator[None]:
    """TLS on ``127.0.0.1:port``, client certificate required, bytes piped to the broker."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server"], pki["server"].with_suffix(".key"))
    ctx.load_verify_locations(pki["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    # kafka-python 2.x drops a connection on TLS 1.3 session tickets sent after the handshake
    # ("Socket EVENT_READ without in-flight-requests"): a broker-side setting, as in Kafka
    ctx.num_tickets = 0
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream())
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
        started.set()
        async with server:
            with contextlib.suppress(asyncio.CancelledError):
                await server.serve_forever()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)


@pytest.fixture(scope="module")
def tls_broker(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker reachable only through mTLS at the returned ``host:port``."""
    port = free_port()
    broker = LocalBroker(
        advertised=f"127.0.0.1:{port}", log_path=tmp_path_factory.mktemp("b") / "log"
    )
    with tls_proxy(pki, port, lambda: broker.port), broker:
        yield f"127.0.0.1:{port}"


def _kafka(bootstrap: str, pki: dict[str, Path], user: str = "user") -> KafkaSettings:
    tag = f"{user}-{datetime.datetime.now().timestamp():.0f}"
    return KafkaSettings(
        bootstrap_servers=[bootstrap],
        predictions_topic=f"tls-predictions-{tag}",
        labels_topic=f"tls-labels-{tag}",
        dead_letter_topic=f"tls-dead-letter-{tag}",
        group_id=f"tls-group-{tag}",
        security_protocol="SSL",
        ssl_cafile=pki["ca"],
        ssl_certfile=pki[user],
        ssl_keyfile=pki[user].with_suffix(".key"),
    )


def test_worker_consumes_and_dead_letters_over_mtls(
    tls_broker: str,
    pki: dict[str, Path],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    make_log: Callable[..., PredictionLog],
) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    kafka = _kafka(tls_broker, pki)
    admin = KafkaAdminClient(**admin_config(kafka))
    topics = [kafka.predictions_topic, kafka.labels_topic, kafka.dead_letter_topic]
    admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in topics])
    admin.close()
    producer = KafkaProducer(**producer_config(kafka))
    for item in [make_log() for _ in range(25)]:
        producer.send(kafka.predictions_topic, value=item.model_dump_json().encode())
    producer.send(kafka.predictions_topic, value=b"not json")
    producer.flush()
    producer.close()

    settings = settings_for(sqlite_url, kafka, ingest=IngestSettings(batch_max_seconds=0.2))
    stats = IngestWorker(settings).run(max_messages=26, idle_timeout=30)
    assert (stats.stored, stats.dead_lettered) == (25, 1)
    engine = make_engine(DatabaseSettings(url=sqlite_url))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 25
    engine.dispose()
    reader = KafkaConsumer(**client_config(kafka))
    tp = TopicPartition(kafka.dead_letter_topic, 0)
    reader.assign([tp])
    reader.seek_to_beginning(tp)
    dead = [r for _ in range(20) for rs in reader.poll(timeout_ms=300).values() for r in rs]
    reader.close()
    assert len(dead) == 1


@pytest.mark.parametrize("who", ["no client certificate", "a certificate from another CA"])
def test_clients_without_a_valid_client_certificate_are_refused(
    tls_broker: str, pki: dict[str, Path], who: str
) -> None:
    from kafka import KafkaConsumer
    from kafka.errors import NoBrokersAvailable

    kafka = _kafka(tls_broker, pki, "stranger" if "another" in who else "user")
    config = client_config(kafka)
    if who == "no client certificate":
        config.pop("ssl_certfile"), config.pop("ssl_keyfile")
    with pytest.raises(NoBrokersAvailable):
        KafkaConsumer(**config, api_version_auto_timeout_ms=3000)
    # the same broker answers a client holding the CA's user certificate
    ok = KafkaConsumer(**client_config(_kafka(tls_broker, pki)))
    assert isinstance(ok.topics(), set)
    ok.close()


def test_settings_refuse_half_a_client_certificate(pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="go together"):
        KafkaSettings(security_protocol="SSL", ssl_certfile=pki["user"])
    with pytest.raises(ValueError, match="need security_protocol SSL"):
        KafkaSettings(ssl_cafile=pki["ca"])
    config = client_config(_kafka("h:1", pki))
    assert config["ssl_cafile"] == str(pki["ca"]) and config["ssl_check_hostname"] is True
