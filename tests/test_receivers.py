"""Each channel against a local receiver that enforces the real API: Alertmanager's schema and
re-send cadence, PagerDuty's Events v2 rules (acknowledge included), Slack's webhook rules
with the URL kept secret, Standard Webhooks signatures checked by the reference verifier; and
the channel registry, extended by a toy channel the documented way."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from monitor.alerts import outbox
from monitor.alerts.channels import registry
from monitor.alerts.channels.base import ChannelBase, Request
from monitor.alerts.message import AlertMessage
from monitor.settings import (
    AlertmanagerChannel,
    AlertSettings,
    PagerDutyChannel,
    Settings,
    SlackChannel,
    WebhookChannel,
)
from monitor.store.alerting_tables import AlertDeliveryRow, AlertRow
from monitor.store.db import unit_of_work
from tests import receivers
from tests.test_alerts import EVIDENCE, NOW, message

NEW = "whsec_" + base64.b64encode(b"new-secret-of-twenty-four").decode()
OLD = "whsec_" + base64.b64encode(b"old-secret-of-twenty-four").decode()
ROUTING_KEY = "R0UT1NGKEY000000000000000000000A"  # 32 characters, as PagerDuty issues them


def _open_alert(session: Session, cfg: AlertSettings) -> AlertRow:
    alert = AlertRow(
        model="digits", model_version="v3", family="pixel", severity="critical",
        status="firing", dedup_key="k", opened_at=NOW, summary="s", evidence=EVIDENCE,
        reopen_count=0, updated_at=NOW,
    )  # fmt: skip
    session.add(alert)
    session.flush()
    outbox.enqueue(session, alert, "trigger", cfg, NOW)
    return alert


@pytest.fixture
def deliver(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> Iterator[Callable[..., Any]]:
    """``deliver(cfg, now)``: one delivery run of the outbox at ``now``."""

    def run(cfg: AlertSettings, now: datetime) -> Any:
        return outbox.deliver_pending(sessions, settings_for(db_url, alerts=cfg), now)

    yield run


# ---------------------------------------------------------------- Alertmanager


def test_alertmanager_open_alert_is_resent_each_tick_and_resolved_explicitly(
    sessions: sessionmaker[Session], deliver: Callable[..., Any]
) -> None:
    am = receivers.Alertmanager(clock=NOW)
    with am.server as rx:
        cfg = AlertSettings(channels=[AlertmanagerChannel(url=rx.url, ends_after_seconds=60)])
        with unit_of_work(sessions) as session:
            alert_id = _open_alert(session, cfg).id
        tick = NOW
        for _ in range(30):  # 30 delivery ticks of 20 s: a 10-minute incident
            am.clock = tick
            deliver(cfg, tick)
            assert len(am.active(tick + timedelta(seconds=20))) == 1, "ended between ticks"
            tick += timedelta(seconds=20)
        assert rx.rejected == [] and am.gaps == []
        assert len(rx.accepted) == 30  # the first post (the trigger) and one re-send per tick
        with unit_of_work(sessions) as session:
            alert = session.get(AlertRow, alert_id)
            assert alert is not None
            alert.status, alert.resolved_at = "resolved", tick
            outbox.enqueue(session, alert, "resolve", cfg, tick)
        am.clock = tick
        assert deliver(cfg, tick) == {"delivered": 1}  # the resolve; nothing re-sent after it
        assert am.active(tick) == []
        assert deliver(cfg, tick + timedelta(seconds=20)) == {}
    assert len(rx.accepted) == 31


def test_alertmanager_alert_ends_by_itself_when_driftwatch_stops(
    sessions: sessionmaker[Session], deliver: Callable[..., Any]
) -> None:
    am = receivers.Alertmanager(clock=NOW)
    with am.server as rx:
        cfg = AlertSettings(channels=[AlertmanagerChannel(url=rx.url, ends_after_seconds=90)])
        with unit_of_work(sessions) as session:
            _open_alert(session, cfg)
        deliver(cfg, NOW)
    assert len(am.active(NOW + timedelta(seconds=80))) == 1
    assert am.active(NOW + timedelta(seconds=91)) == []  # not 24 hours later


def test_alertmanager_receiver_refuses_a_day_long_ends_at() -> None:
    am = receivers.Alertmanager(clock=NOW)
    with am.server as rx, httpx.Client() as client:
        channel = AlertmanagerChannel(url=rx.url, ends_after_seconds=86400)
        with pytest.raises(outbox.DeliveryError, match="HTTP 400"):
            outbox.send(client, message(), channel, NOW)


# ---------------------------------------------------------------- PagerDuty


def test_pagerduty_trigger_acknowledge_resolve_with_one_dedup_key(
    sessions: sessionmaker[Session], deliver: Callable[..., Any]
) -> None:
    with receivers.Enforcing(receivers.pagerduty) as rx:
        channel = PagerDutyChannel(routing_key=ROUTING_KEY, url=rx.url + "/v2/enqueue")
        cfg = AlertSettings(channels=[channel], dashboard_url="http://grafana.local/d/oncall")
        with unit_of_work(sessions) as session:
            alert_id = _open_alert(session, cfg).id
        deliver(cfg, NOW)
        with unit_of_work(sessions) as session:
            alert = session.get(AlertRow, alert_id)
            assert alert is not None
            outbox.acknowledge(session, alert, "alice", cfg, NOW)
        deliver(cfg, NOW)
        with unit_of_work(sessions) as session:
            alert = session.get(AlertRow, alert_id)
            assert alert is not None and alert.acked_by == "alice"
            alert.status = "resolved"
            outbox.enqueue(session, alert, "resolve", cfg, NOW)
        deliver(cfg, NOW)
    assert rx.rejected == []
    trigger, ack, resolve = (r.json for r in rx.accepted)
    assert [e["event_action"] for e in (trigger, ack, resolve)] == [
        "trigger", "acknowledge", "resolve",
    ]  # fmt: skip
    assert trigger["dedup_key"] == ack["dedup_key"] == resolve["dedup_key"]
    assert trigger["dedup_key"] == f"driftwatch/digits/v3/pixel/{alert_id}"
    assert trigger["client"] == "Driftwatch"
    assert trigger["client_url"].startswith("http://grafana.local/d/oncall?var-model=digits")
    assert set(ack) == {"routing_key", "event_action", "dedup_key"}


def test_acknowledge_is_queued_only_for_channels_that_track_acks(
    sessions: sessionmaker[Session],
) -> None:
    cfg = AlertSettings(
        channels=[
            PagerDutyChannel(routing_key=ROUTING_KEY),
            WebhookChannel(url="http://127.0.0.1:9/w"),
            AlertmanagerChannel(url="http://127.0.0.1:9"),
        ]
    )
    with unit_of_work(sessions) as session:
        alert = _open_alert(session, cfg)
        rows = outbox.acknowledge(session, alert, "bob", cfg, NOW)
        assert [r.channel for r in rows] == ["pagerduty"]
        assert alert.acked_at == NOW and alert.acked_by == "bob"


def test_pagerduty_receiver_refuses_a_short_routing_key() -> None:
    with receivers.Enforcing(receivers.pagerduty) as rx, httpx.Client() as client:
        channel = PagerDutyChannel(routing_key="short", url=rx.url + "/v2/enqueue")
        with pytest.raises(outbox.DeliveryError, match="HTTP 400"):
            outbox.send(client, message(), channel, NOW)


# ---------------------------------------------------------------- Slack


def test_slack_url_is_a_secret_never_shown_or_logged(caplog: pytest.LogCaptureFixture) -> None:
    path = "/services/T0ABC/B0DEF/Xs3cr3tT0k3n"
    with receivers.Enforcing(receivers.slack) as rx, httpx.Client() as client:
        channel = SlackChannel(url=rx.url + path)
        with caplog.at_level(logging.DEBUG):
            outbox.send(client, message(), channel, NOW)
            with pytest.raises(outbox.DeliveryError, match="HTTP 404") as err:
                outbox.send(client, message(), SlackChannel(url=rx.url + "/hooks/Xs3cr3tT0k3n"))
    assert [r.path for r in rx.accepted] == [path]
    settings = Settings(environment="test", alerts=AlertSettings(channels=[channel]))
    for text in (caplog.text, repr(settings), str(settings), str(err.value)):
        assert "Xs3cr3tT0k3n" not in text
    assert "HTTP Request: POST" in caplog.text  # httpx did log the request, host only


# ---------------------------------------------------------------- Standard Webhooks


def test_webhook_signed_per_standard_webhooks_with_both_secrets_during_rotation() -> None:
    with receivers.Enforcing(lambda item: (200, b"")) as rx, httpx.Client() as client:
        channel = WebhookChannel(url=rx.url, secret=NEW, previous_secret=OLD)
        outbox.send(client, message(), channel, NOW)
        outbox.send(client, message(), channel, NOW)  # a retry of the same message
    first, retry = rx.accepted
    for secret in (NEW, OLD):  # receivers on either side of the rotation accept it
        assert Webhook(secret).verify(first.body, first.headers)["alert_id"] == 42
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"someone-else-entirely!!").decode()).verify(
            first.body, first.headers
        )
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(first.body.replace(b"digits", b"digitz"), first.headers)
    sigs = first.headers["webhook-signature"].split(" ")
    assert len(sigs) == 2 and all(s.startswith("v1,") for s in sigs)
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]  # receivers dedupe on it
    assert first.headers["webhook-id"] != message("resolve").message_id


def test_webhook_secret_must_be_whsec() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        WebhookChannel(url="http://x", secret="plain-password")


# ---------------------------------------------------------------- the registry


class ToyChannel(ChannelBase):
    """A new channel type: this class and one line in the registry, nothing else."""

    type: Literal["toy"] = "toy"
    name: str = "toy"
    url: str
    shout: bool = False

    events: ClassVar[frozenset[str]] = frozenset({"trigger"})

    def request(self, msg: AlertMessage, now: datetime) -> Request:
        text = msg.title.upper() if self.shout else msg.title
        return self.url + "/toy", text.encode(), {"Content-Type": "text/plain"}


@pytest.fixture
def toy() -> Iterator[None]:
    registry.register(ToyChannel)  # the one line a new channel adds to the registry
    yield
    del registry.CHANNELS["toy"]


@pytest.mark.usefixtures("toy")
def test_a_toy_channel_registered_by_one_line_is_configured_and_delivered(
    sessions: sessionmaker[Session], deliver: Callable[..., Any]
) -> None:
    with receivers.Enforcing(lambda item: (200, b"")) as rx:
        cfg = AlertSettings.model_validate(
            {"channels": [{"type": "toy", "url": rx.url, "shout": True}]}
        )
        assert isinstance(cfg.channels[0], ToyChannel)
        with unit_of_work(sessions) as session:
            alert = _open_alert(session, cfg)
            assert outbox.enqueue(session, alert, "resolve", cfg, NOW) == []  # not its event
        assert deliver(cfg, NOW) == {"delivered": 1}
    assert rx.accepted[0].path == "/toy"
    assert rx.accepted[0].body.startswith(b"[CRITICAL] DRIFT IN DIGITS V3")
    with unit_of_work(sessions) as session:
        assert session.scalars(select(AlertDeliveryRow.channel)).all() == ["toy"]


def test_unknown_channel_type_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown channel type 'sms'; known: alertmanager"):
        AlertSettings.model_validate({"channels": [{"type": "sms", "url": "x"}]})
    with pytest.raises(ValueError, match="unique"):
        AlertSettings(channels=[WebhookChannel(url="http://a"), WebhookChannel(url="http://b")])


def test_settings_json_schema_lists_every_channel_type() -> None:
    items = AlertSettings.model_json_schema()["properties"]["channels"]["items"]["oneOf"]
    types = {i["properties"]["type"]["const"] for i in items}
    assert {"alertmanager", "pagerduty", "slack", "webhook"} <= types


def test_runbook_link_points_at_the_family_section() -> None:
    assert message().runbook_url == "http://runbooks.local/drift#drift-pixel"
