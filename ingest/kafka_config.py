"""kafka-python keyword arguments for Driftwatch's consumers, producers and admin clients,
built from :class:`~monitor.settings.KafkaSettings` in one place.

TLS takes PEM files as Strimzi issues them (``ca.crt``; ``user.crt`` + ``user.key`` for mTLS);
SASL PLAIN and SCRAM take a username and password. Options kafka-python knows but Driftwatch
does not model go through ``consumer_options`` / ``producer_options`` and win over ours.

>>> from monitor.settings import KafkaSettings
>>> consumer_config(KafkaSettings(auto_offset_reset="latest"))["auto_offset_reset"]
'latest'
"""

from __future__ import annotations

from typing import Any

from monitor.settings import KafkaSettings

#: How long the broker may hold a fetch open waiting for data (kafka-python's default is 500).
FETCH_MAX_WAIT_MS = 20


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection settings shared by every client: servers, TLS, SASL, timeouts."""
    config: dict[str, Any] = {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol.endswith("SSL"):
        config["ssl_check_hostname"] = kafka.ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(kafka, key)
            if value is not None:
                config[key] = str(value)
        if kafka.ssl_password is not None:
            config["ssl_password"] = kafka.ssl_password.get_secret_value()
    if kafka.sasl_mechanism:
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            config["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return config


def consumer_config(kafka: KafkaSettings, *, group: bool = True) -> dict[str, Any]:
    """KafkaConsumer arguments of the ingest group (manual commits), plus pass-through options."""
    config = client_config(kafka)
    config.update(
        group_id=kafka.group_id if group else None,
        enable_auto_commit=False,
        auto_offset_reset=kafka.auto_offset_reset,
        max_poll_records=kafka.max_poll_records,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        # a fetch response is one network frame: let it be as large as we asked for
        receive_message_max_bytes=kafka.fetch_max_bytes + 1_048_576,
        # kafka-python keeps one fetch in flight per broker: a long poll of an idle
        # partition (labels) would hold back the next fetch of a busy one
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )
    config.update(kafka.consumer_options)
    return config


def producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    """KafkaProducer arguments (durable acks), plus pass-through options."""
    return {**client_config(kafka), "acks": "all", "linger_ms": 5, **kafka.producer_options}


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:
    """KafkaAdminClient arguments (connection settings only)."""
    return client_config(kafka)
