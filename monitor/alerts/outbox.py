"""Alert routing: an outbox of deliveries, sent per channel with retries and backoff.

1. The evaluator calls :func:`enqueue` in its own transaction: one ``pending`` row per channel.
2. :func:`deliver_pending` (its own scheduler job) sends due rows, each in its own short
   transaction: ``delivered`` on a 2xx, else ``attempts + 1`` and a retry after exponential
   backoff, ``gave_up`` after ``max_attempts``. A delivered row is never sent again, so a
   receiver that recovers gets each message once.
3. A channel that fails is skipped for the rest of the run (and its timeout is short), so a
   dead channel never holds up the others, and never the evaluation.
4. Channels that want it (Alertmanager) get every open alert again on each run, with a short
   ``endsAt`` (:func:`resend_firing`), once its trigger has been delivered.

Each channel type builds its own request (:mod:`monitor.alerts.channels.registry`); an event a
service does not understand (``acknowledge`` is PagerDuty's) is not queued for it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.channels.base import ChannelBase
from monitor.alerts.message import AlertMessage, Event
from monitor.errors import DriftwatchError
from monitor.metrics import metric
from monitor.settings import AlertSettings, Settings
from monitor.store import alerts_repo
from monitor.store.alerting_tables import AlertDeliveryRow, AlertRow
from monitor.store.db import unit_of_work

log = logging.getLogger(__name__)


class _RedactUrls(logging.Filter):
    """httpx logs each request's URL; a Slack webhook URL is a credential, so only the host
    is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                f"{a.scheme}://{a.host}/<redacted>" if isinstance(a, httpx.URL) else a
                for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())


class DeliveryError(DriftwatchError):
    """A channel did not accept a message."""


def send(
    client: httpx.Client, msg: AlertMessage, channel: ChannelBase, now: datetime | None = None
) -> int:
    """POST ``msg`` to ``channel`` once; the status code, or :class:`DeliveryError`."""
    return _post(client, channel, *channel.request(msg, now or datetime.now(UTC)))


def _post(
    client: httpx.Client, channel: ChannelBase, url: str, body: bytes, headers: dict[str, str]
) -> int:
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{channel.name}: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise DeliveryError(f"{channel.name}: HTTP {response.status_code}: {response.text[:200]}")
    return response.status_code


def backoff(attempts: int, settings: AlertSettings) -> timedelta:
    """Delay before attempt ``attempts + 1``: doubling from the initial delay, capped."""
    seconds = settings.backoff_initial_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.backoff_max_seconds))


def enqueue(
    session: Session, alert: AlertRow, event: Event, settings: AlertSettings, now: datetime
) -> list[AlertDeliveryRow]:
    """Add one pending delivery of ``event`` for ``alert`` per configured channel."""
    key = f"{event}:{alert.reopen_count}"
    rows = [
        AlertDeliveryRow(
            alert_id=alert.id,
            channel=ch.name,
            event=event,
            event_key=key,
            status="pending",
            attempts=0,
            next_attempt_at=now,
        )
        for ch in settings.channels
        if ch.accepts(event)
    ]
    session.add_all(rows)
    return rows


def acknowledge(
    session: Session, alert: AlertRow, by: str, settings: AlertSettings, now: datetime
) -> list[AlertDeliveryRow]:
    """Mark ``alert`` acknowledged by ``by`` and tell the channels that track acks (PagerDuty)."""
    alert.acked_at, alert.acked_by, alert.updated_at = now, by, now
    if alert.status != "firing" or not alert.paged:
        return []
    return enqueue(session, alert, "acknowledge", settings, now)


def message_for(alert: AlertRow, event: Event, settings: AlertSettings) -> AlertMessage:
    return AlertMessage.build(
        reopen_count=alert.reopen_count,
        alert_id=alert.id,
        event=event,
        model=alert.model,
        version=alert.model_version,
        family=alert.family,
        severity=alert.severity,
        evidence=alert.evidence,
        dashboard_url=settings.dashboard_url,
        runbook_url=settings.runbook_url,
    )


def deliver_pending(
    factory: sessionmaker[Session],
    settings: Settings,
    now: datetime | None = None,
    client: httpx.Client | None = None,
    limit: int = 200,
    on_delivered: Callable[[AlertMessage, str], None] | None = None,
) -> Counter[str]:
    """Send the due deliveries once each; returns counts by outcome.

    ``now`` defaults to the wall clock (tests pass it to step through backoff).
    """
    now = now or datetime.now(UTC)
    cfg = settings.alerts
    channels = {ch.name: ch for ch in cfg.channels}
    outcomes: Counter[str] = Counter()
    failed_channels: set[str] = set()
    own_client = client is None
    http = client or httpx.Client(timeout=cfg.timeout_seconds)
    try:
        with unit_of_work(factory) as session:
            due = alerts_repo.due_deliveries(session, now, limit)
        for delivery_id in due:
            with unit_of_work(factory) as session:
                outcome = _deliver_one(
                    session,
                    delivery_id,
                    channels,
                    failed_channels,
                    http,
                    settings,
                    now,
                    on_delivered,
                )
            if outcome:
                outcomes[outcome] += 1
        for channel in cfg.channels:
            if channel.resend_firing and channel.name not in failed_channels:
                with unit_of_work(factory) as session:
                    if n := resend_firing(session, channel, http, cfg, now):
                        outcomes["resent"] += n
    finally:
        if own_client:
            http.close()
    return outcomes


def resend_firing(
    session: Session, channel: ChannelBase, http: httpx.Client, cfg: AlertSettings, now: datetime
) -> int:
    """Re-send, in one POST, every open alert whose trigger ``channel`` already has; how many.

    A silenced alert is left out (it then ends at its last ``endsAt``). A failure is logged
    and counted; the next run sends again.
    """
    alerts = [
        a
        # delivered before now: not a trigger this very run just sent
        for a in alerts_repo.firing_delivered_to(session, channel.name, now)
        if a.silenced_until is None or a.silenced_until <= now
    ]
    if not alerts:
        return 0
    msgs = [message_for(a, "trigger", cfg) for a in alerts]
    try:
        _post(http, channel, *channel.batch_request(msgs, now))
    except DeliveryError as exc:
        log.warning("re-sending %d open alerts to %s failed: %s", len(msgs), channel.name, exc)
        _count(channel.name, "resend_failed")
        return 0
    metric("driftwatch_alert_deliveries_total").labels(channel=channel.name, outcome="resent").inc(
        len(msgs)
    )
    return len(msgs)


def _deliver_one(
    session: Session,
    delivery_id: int,
    channels: dict[str, ChannelBase],
    failed_channels: set[str],
    http: httpx.Client,
    settings: Settings,
    now: datetime,
    on_delivered: Callable[[AlertMessage, str], None] | None,
) -> str | None:
    row = alerts_repo.lock_pending_delivery(session, delivery_id)
    if row is None or row.channel in failed_channels:
        return None  # another sender has it, or its channel is down for this run
    alert = session.get(AlertRow, row.alert_id)
    channel = channels.get(row.channel)
    if alert is None or channel is None:
        row.status, row.last_error = "gave_up", f"channel {row.channel!r} no longer configured"
        return _count(row.channel, "gave_up")
    if alert.silenced_until is not None and alert.silenced_until > now and row.event != "test":
        row.status, row.last_error = "silenced", f"silenced until {alert.silenced_until}"
        return _count(row.channel, "silenced")
    msg = message_for(alert, row.event, settings.alerts)  # type: ignore[arg-type]
    row.attempts += 1
    started = time.perf_counter()
    try:
        row.last_status_code = send(http, msg, channel, now)
    except DeliveryError as exc:
        failed_channels.add(row.channel)
        row.last_error = str(exc)
        if row.attempts >= settings.alerts.max_attempts:
            row.status = "gave_up"
            log.error(
                "alert %s to %s: gave up after %d attempts: %s",
                alert.id,
                row.channel,
                row.attempts,
                exc,
            )
            return _count(row.channel, "gave_up")
        row.next_attempt_at = now + backoff(row.attempts, settings.alerts)
        log.warning(
            "alert %s to %s failed (attempt %d), retry at %s: %s",
            alert.id,
            row.channel,
            row.attempts,
            row.next_attempt_at,
            exc,
        )
        return _count(row.channel, "failed")
    row.latency_seconds = time.perf_counter() - started
    row.status, row.delivered_at, row.last_error = "delivered", now, None
    if on_delivered is not None:
        on_delivered(msg, row.channel)
    return _count(row.channel, "delivered")


def _count(channel: str, outcome: str) -> str:
    metric("driftwatch_alert_deliveries_total").labels(channel=channel, outcome=outcome).inc()
    return outcome


def send_test(settings: Settings, client: httpx.Client | None = None) -> dict[str, Any]:
    """Send a test message to every channel now, with retries; {channel: "ok" or error}."""

    now = datetime.now(UTC).isoformat()
    msg = AlertMessage.build(
        alert_id=0,
        event="test",
        model="driftwatch-test",
        version="v0",
        family="pixel",
        severity="warning",
        dashboard_url=settings.alerts.dashboard_url,
        runbook_url=settings.alerts.runbook_url,
        evidence={
            "method": "pixel.ks",
            "statistic": 0.42,
            "threshold": 0.1,
            "p_value": 1e-6,
            "effect_size": 0.42,
            "top_features": ["brightness -18% (test)"],
            "window_start": now,
            "window_end": now,
        },
    )
    results: dict[str, Any] = {}
    http = client or httpx.Client(timeout=settings.alerts.timeout_seconds)
    try:
        for channel in settings.alerts.channels:
            for attempt in range(1, settings.alerts.max_attempts + 1):
                try:
                    send(http, msg, channel)
                    results[channel.name] = "ok"
                    break
                except DeliveryError as exc:
                    results[channel.name] = str(exc)
                    if attempt < settings.alerts.max_attempts:
                        time.sleep(backoff(attempt, settings.alerts).total_seconds())
    finally:
        if client is None:
            http.close()
    return results
