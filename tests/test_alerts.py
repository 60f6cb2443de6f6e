"""Alert channels against local HTTP receivers that check each service's documented payload,
and the delivery outbox: retries with backoff, no duplicates, a dead channel blocks nobody."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts import outbox as router
from monitor.alerts.channels.webhook import verify
from monitor.alerts.message import AlertMessage
from monitor.demo.receiver import Receiver
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

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
EVIDENCE = {
    "method": "pixel.ks",
    "statistic": 0.41,
    "threshold": 0.1,
    "p_value": 1e-9,
    "effect_size": 0.41,
    "top_features": ["brightness −18%", "sharpness −40%"],
    "window_start": (NOW - timedelta(minutes=5)).isoformat(),
    "window_end": NOW.isoformat(),
}


def message(event: str = "trigger") -> AlertMessage:
    return AlertMessage.build(
        alert_id=42,
        event=event,
        model="digits",
        version="v3",  # type: ignore[arg-type]
        family="pixel",
        severity="critical",
        evidence=EVIDENCE,
        dashboard_url="http://grafana.local/d/oncall",
        runbook_url="http://runbooks.local/drift",
    )


def deliver(channel: Any, event: str = "trigger") -> None:
    with httpx.Client(timeout=5) as client:
        router.send(client, message(event), channel)


def test_message_says_what_oncall_needs() -> None:
    text = message().text()
    for needle in (
        "digits v3",
        "pixel",
        "effect size 0.41 vs threshold 0.1",
        "statistic 0.41",
        "brightness −18%",
        "sharpness −40%",
        "2026-11-22T02:55:00+00:00",
        "http://grafana.local/d/oncall?var-model=digits",
        "runbook: Image statistics",
    ):
        assert needle in text


KEY = "whsec_" + "czNjcmV0LWtleS1vZi0yNC1ieXRlcyEh"
OTHER = "whsec_" + "b3RoZXIta2V5LW9mLTI0LWJ5dGVzISE="


def test_webhook_json_with_standard_webhooks_signature() -> None:
    with Receiver() as rx:
        deliver(WebhookChannel(url=rx.url + "/hook", secret=KEY))
    req = rx.received[0]
    assert req.path == "/hook" and req.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", req.headers["webhook-signature"])
    assert re.fullmatch(r"msg_[0-9a-f]{32}", req.headers["webhook-id"])
    assert verify(req.body, req.headers, KEY)
    assert not verify(req.body, req.headers, OTHER)
    assert not verify(req.body + b" ", req.headers, KEY)
    sent = int(req.headers["webhook-timestamp"])
    assert verify(req.body, req.headers, KEY, now=sent + 299)
    assert not verify(req.body, req.headers, KEY, now=sent + 301)  # a replay, too late
    body = req.json
    assert body["model"] == "digits" and body["event"] == "trigger"
    assert body["dedup_key"] == "driftwatch/digits/v3/pixel/42"


def test_slack_incoming_webhook_blocks() -> None:
    with Receiver() as rx:
        deliver(SlackChannel(url=rx.url + "/services/T0/B0/XXX"))
    body = rx.received[0].json
    assert isinstance(body["text"], str) and body["text"]  # the notification fallback
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "section", "context"]
    header = body["blocks"][0]["text"]
    assert header["type"] == "plain_text" and len(header["text"]) <= 150
    fields = body["blocks"][1]["fields"]
    assert all(f["type"] == "mrkdwn" for f in fields) and len(fields) <= 10
    assert "brightness −18%" in body["blocks"][2]["text"]["text"]
    assert "<http://grafana.local/d/oncall" in body["blocks"][3]["elements"][0]["text"]


def test_pagerduty_events_v2_trigger_and_resolve_share_dedup_key() -> None:
    with Receiver(status=202, reply=b'{"status":"success"}') as rx:
        channel = PagerDutyChannel(
            routing_key="R0UT1NGKEY000000000000000000000A", url=rx.url + "/v2/enqueue"
        )
        deliver(channel, "trigger")
        deliver(channel, "resolve")
    trigger, resolve = (r.json for r in rx.received)
    assert rx.received[0].path == "/v2/enqueue"
    assert trigger["routing_key"] == "R0UT1NGKEY000000000000000000000A"
    assert trigger["event_action"] == "trigger"
    payload = trigger["payload"]
    assert {"summary", "source", "severity"} <= set(payload)
    assert len(payload["summary"]) <= 1024 and payload["severity"] in {
        "critical",
        "error",
        "warning",
        "info",
    }
    assert payload["source"] == "driftwatch/digits/v3"
    assert datetime.fromisoformat(payload["timestamp"]) == NOW
    assert resolve == {
        "routing_key": "R0UT1NGKEY000000000000000000000A",
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


def test_alertmanager_v2_alert_list() -> None:
    with Receiver() as rx:
        deliver(AlertmanagerChannel(url=rx.url), "trigger")
        deliver(AlertmanagerChannel(url=rx.url + "/api/v2/alerts"), "resolve")
    assert [r.path for r in rx.received] == ["/api/v2/alerts", "/api/v2/alerts"]
    firing, resolved = (r.json for r in rx.received)
    assert isinstance(firing, list) and len(firing) == 1
    alert = firing[0]
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert alert["labels"]["alertname"] == "DriftwatchDrift"
    assert {"model": "digits", "version": "v3", "family": "pixel"}.items() <= alert[
        "labels"
    ].items()
    assert all(isinstance(v, str) for v in alert["labels"].values())
    assert "summary" in alert["annotations"]
    starts = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
    assert starts == NOW
    assert datetime.fromisoformat(firing[0]["endsAt"].replace("Z", "+00:00")) > datetime.now(UTC)
    assert datetime.fromisoformat(resolved[0]["endsAt"].replace("Z", "+00:00")) <= datetime.now(UTC)
    assert resolved[0]["labels"] == alert["labels"]  # same identity resolves the same alert


# ---------------------------------------------------------------- the outbox, on both databases


def _alert(factory: sessionmaker[Session], cfg: AlertSettings) -> int:
    with unit_of_work(factory) as session:
        alert = AlertRow(
            model="digits",
            model_version="v3",
            family="pixel",
            severity="critical",
            status="firing",
            dedup_key="k",
            opened_at=NOW,
            summary="s",
            evidence=EVIDENCE,
            reopen_count=0,
            updated_at=NOW,
        )
        session.add(alert)
        session.flush()
        router.enqueue(session, alert, "trigger", cfg, NOW)
        return alert.id


def test_retries_with_backoff_then_no_duplicate(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    with Receiver() as rx:
        cfg = AlertSettings(
            channels=[WebhookChannel(url=rx.url, secret=KEY)],
            max_attempts=5,
            backoff_initial_seconds=10,
        )
        settings = settings_for(db_url, alerts=cfg)
        alert_id = _alert(sessions, cfg)
        rx.fail_next = 2
        assert router.deliver_pending(sessions, settings, NOW)["failed"] == 1
        # not due yet: the backoff holds it back
        assert router.deliver_pending(sessions, settings, NOW + timedelta(seconds=5)) == {}
        assert (
            router.deliver_pending(sessions, settings, NOW + timedelta(seconds=10))["failed"] == 1
        )
        # second backoff doubles to 20 s
        assert router.deliver_pending(sessions, settings, NOW + timedelta(seconds=25)) == {}
        assert (
            router.deliver_pending(sessions, settings, NOW + timedelta(seconds=30))["delivered"]
            == 1
        )
        for later in (60, 600, 6000):
            assert router.deliver_pending(sessions, settings, NOW + timedelta(seconds=later)) == {}
    assert len(rx.failed) == 2 and len(rx.received) == 1
    assert rx.received[0].json["alert_id"] == alert_id
    with unit_of_work(sessions) as session:
        row = session.scalars(select(AlertDeliveryRow)).one()
        assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)


def test_gives_up_after_max_attempts(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    with Receiver(status=503) as rx:
        cfg = AlertSettings(
            channels=[SlackChannel(url=rx.url)], max_attempts=2, backoff_initial_seconds=1
        )
        settings = settings_for(db_url, alerts=cfg)
        _alert(sessions, cfg)
        router.deliver_pending(sessions, settings, NOW)
        assert router.deliver_pending(sessions, settings, NOW + timedelta(hours=1)) == {
            "gave_up": 1
        }
    with unit_of_work(sessions) as session:
        row = session.scalars(select(AlertDeliveryRow)).one()
        assert row.status == "gave_up" and "HTTP 503" in (row.last_error or "")


def test_dead_channel_does_not_block_the_others(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    with Receiver() as rx:
        cfg = AlertSettings(
            channels=[
                WebhookChannel(name="dead", url="http://127.0.0.1:9/nothing-listens"),
                SlackChannel(name="slack", url=rx.url),
                AlertmanagerChannel(name="am", url=rx.url),
            ],
            timeout_seconds=1,
        )
        settings = settings_for(db_url, alerts=cfg)
        for _ in range(3):
            _alert(sessions, cfg)
        outcomes = router.deliver_pending(sessions, settings, NOW)
    # the dead channel is tried once and then skipped for this run
    assert outcomes == {"delivered": 6, "failed": 1}
    assert len(rx.received) == 6
    with unit_of_work(sessions) as session:
        pending = session.scalar(
            select(func.count())
            .select_from(AlertDeliveryRow)
            .where(AlertDeliveryRow.status == "pending", AlertDeliveryRow.channel == "dead")
        )
        assert pending == 3


def test_silenced_alert_is_not_sent(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    with Receiver() as rx:
        cfg = AlertSettings(channels=[WebhookChannel(url=rx.url)])
        settings = settings_for(db_url, alerts=cfg)
        alert_id = _alert(sessions, cfg)
        with unit_of_work(sessions) as session:
            alert = session.get(AlertRow, alert_id)
            assert alert is not None
            alert.silenced_until = NOW + timedelta(hours=1)
        assert router.deliver_pending(sessions, settings, NOW) == {"silenced": 1}
    assert rx.received == []


def test_send_test_reaches_every_channel() -> None:
    with Receiver() as rx:
        cfg = AlertSettings(
            channels=[WebhookChannel(url=rx.url + "/w"), SlackChannel(url=rx.url + "/s")],
            backoff_initial_seconds=0.01,
        )
        rx.fail_next = 1
        result = router.send_test(Settings(environment="test", alerts=cfg))
    assert result == {"webhook": "ok", "slack": "ok"}
    assert [r.path for r in rx.received] == ["/w", "/s"]
    assert json.loads(rx.received[0].body)["event"] == "test"


def test_cli_list_and_ack(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Any,
    monkeypatch: Any,
) -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    _alert(sessions, AlertSettings())
    monkeypatch.setenv("DRIFTWATCH_DATABASE__URL", db_url)
    runner = CliRunner()
    listed = runner.invoke(cli, ["alerts", "list"])
    assert listed.exit_code == 0 and "firing" in listed.output and "digits v3" in listed.output
    acked = runner.invoke(cli, ["alerts", "ack", "1", "--by", "bob"])
    assert acked.exit_code == 0 and "acknowledged by bob" in acked.output
    with unit_of_work(sessions) as session:
        alert = session.get(AlertRow, 1)
        assert alert is not None and alert.acked_by == "bob"
    missing = runner.invoke(cli, ["alerts", "ack", "99"])
    assert missing.exit_code != 0 and "alert 99 does not exist" in str(missing.exception)
