"""The built-in status page: gathered from a real store (SQLite and PostgreSQL) after a drift
and canary run, rendered self-contained, and loaded in headless Chromium with no console errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from monitor.cli import cli
from monitor.demo.scenario import MODEL, run_monitor, scenario_logs
from monitor.detectors.registry import effect_floor
from monitor.errors import NotFound
from monitor.reports.status_page import FamilyHistory, StatusData, gather, render, status_html
from monitor.settings import Settings, WindowSettings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions

PER_WINDOW = 200
ARTIFACTS = Path(__file__).resolve().parents[1] / "var" / "artifacts"


def _seed(sessions: sessionmaker[Session], settings: Settings) -> datetime:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    with unit_of_work(sessions) as s:
        insert_predictions(s, scenario_logs(t0, per_window=PER_WINDOW))
    engine = sessions.kw["bind"]
    report = run_monitor(engine, settings, t0, per_window=PER_WINDOW)
    assert report.windows_evaluated == 7  # 2 ref, 1 clean, 2 dark, 1 stable, 1 canary
    assert any(d.transition.to_state == "alert" for d in report.decisions)
    return t0


def _settings(settings_for: Callable[..., Settings], db_url: str) -> Settings:
    return settings_for(db_url, windows=WindowSettings(max_count=PER_WINDOW, max_seconds=3600))


def test_gather_reads_the_story_from_the_store(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = _settings(settings_for, db_url)
    _seed(sessions, settings)
    with unit_of_work(sessions) as s:
        data = gather(s, settings, MODEL)
        with pytest.raises(NotFound):
            gather(s, settings, "no-such-model")
    assert set(data.families) == {"embedding", "pixel", "confidence", "classes"}
    pixel = data.families["pixel"]
    assert pixel.drifted[-1] and not pixel.drifted[0]
    assert pixel.warn == effect_floor(settings.detectors, MODEL, "pixel") == 0.1
    assert pixel.alert == pixel.warn * settings.policy.alert_effect_multiple
    assert any(
        name == "pixel: brightness" and change.startswith("\u2212")
        for name, change, _, _ in data.moved
    )
    assert data.reference is not None and data.current is not None
    assert data.reference.n == 2 * PER_WINDOW
    assert abs(sum(data.current.class_shares) - 1) < 1e-9
    stable, canary = data.arms["stable"], data.arms["canary"]
    assert (stable.version, canary.version) == ("v1", "v2")
    assert canary.accuracy is not None and stable.accuracy is not None
    assert canary.accuracy > stable.accuracy  # the scenario's canary is the better model
    assert canary.latency_p50_ms is not None and stable.latency_p50_ms is not None
    assert canary.latency_p50_ms < stable.latency_p50_ms


def test_render_is_self_contained_and_escapes() -> None:
    t = datetime(2026, 11, 22, tzinfo=UTC)
    history = FamilyHistory([t, t], [0.05, 0.4], 0.1, 0.2, [False, True])
    page = render(StatusData("<script>x</script>", t, {"pixel": history}))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert page.count('class="threshold"') == 2  # warn and alert lines


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (run tests/services.sh)"
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _console_errors(stderr: str) -> list[str]:
    """Console messages Chromium logged (``CONSOLE`` lines) and failed page loads."""
    return [
        line
        for line in stderr.splitlines()
        if ":CONSOLE" in line or "Uncaught" in line or "net::ERR_" in line
    ]


def test_console_capture_sees_a_broken_page(tmp_path: Path) -> None:
    """The check below would catch a script error: prove it on a page that has one."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><script>console.error('boom'); undefinedCall();</script></body></html>"
    )
    run = _chromium("--dump-dom", bad.as_uri(), profile=tmp_path / "profile")
    errors = _console_errors(run.stderr)
    assert any("boom" in e for e in errors) and any("undefinedCall" in e for e in errors)


def test_status_page_renders_in_headless_chromium(
    pg_url: str, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    from monitor.store.db import make_engine, session_factory

    settings = _settings(settings_for, pg_url)
    engine = make_engine(settings.database)
    sessions = session_factory(engine)
    _seed(sessions, settings)
    with unit_of_work(sessions) as s:
        page = status_html(s, settings, MODEL)
    engine.dispose()
    html_path = tmp_path / "status.html"
    html_path.write_text(page)

    dom = _chromium("--dump-dom", html_path.as_uri(), profile=tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_errors(dom.stderr) == []
    plots = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]+)"', dom.stdout)
    assert len(plots) == 10, plots  # 4 families, accuracy, ref/cur x2, pixel, arms x2
    for title in (
        "pixel effect size",
        "Reference vs current: class distribution",
        "Reference vs current: confidence histogram",
        "Pixel statistics: reference vs current",
        "Stable vs canary: class distribution",
        "Stable vs canary: confidence histogram",
    ):
        assert title in plots
    assert dom.stdout.count("<polyline") == 5 and dom.stdout.count("<rect") > 100

    shot = tmp_path / "status.png"
    run = _chromium(
        "--window-size=1200,1900",
        f"--screenshot={shot}",
        html_path.as_uri(),
        profile=tmp_path / "p2",
    )
    assert run.returncode == 0 and _console_errors(run.stderr) == [], run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "status_page.png")
    shutil.copyfile(html_path, ARTIFACTS / "status_page.html")


def test_report_status_writes_the_page(
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.store.db import make_engine, session_factory

    settings = _settings(settings_for, sqlite_url)
    engine = make_engine(settings.database)
    _seed(session_factory(engine), settings)
    engine.dispose()
    monkeypatch.setenv("DRIFTWATCH_DATABASE__URL", sqlite_url)
    out = tmp_path / "digits.html"
    result = CliRunner().invoke(cli, ["report", "status", MODEL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count('<svg class="plot"') == 10
    missing = CliRunner().invoke(cli, ["report", "status", "nope", "--out", str(out)])
    assert missing.exit_code != 0
