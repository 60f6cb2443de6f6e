"""The ``driftwatch`` command as a script sees it: --version, --json, documented exit codes, and
the same refusal as the API for rolling back a rollout that has ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.app import create_app
from monitor.cli import main
from monitor.settings import ApiSettings, Settings
from monitor.store.alerting_tables import AlertRow
from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import Rollout

NOW = datetime.now(UTC).replace(microsecond=0)
TOKEN = "cli-token-for-tests-only"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def driftwatch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """``driftwatch ARGS`` through :func:`monitor.cli.main` (exit code, stdout, stderr)."""

    def run(db_url: str, *args: str) -> Run:
        monkeypatch.setenv("DRIFTWATCH_DATABASE__URL", db_url)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out = capsys.readouterr()
        return Run(int(exited.value.code or 0), out.out, out.err)

    return run


@pytest.fixture
def seeded(sqlite_url: str) -> str:
    engine = create_engine(sqlite_url)
    with unit_of_work(sessionmaker(engine)) as session:
        session.add(
            AlertRow(
                model="digits",
                model_version="v1",
                family="pixel",
                severity="warning",
                status="firing",
                dedup_key="digits/v1/pixel",
                opened_at=NOW,
                summary="pixel drift",
                evidence={"windows": 2},
                reopen_count=0,
                updated_at=NOW,
            )
        )
        session.add(
            Rollout(
                model="digits",
                stable_version="v1",
                candidate_version="v2",
                plan=[5, 25, 100],
                step_index=1,
                state="rolled_back",
                reason="canary accuracy dropped",
                started_at=NOW,
                step_started_at=NOW,
                finished_at=NOW,
            )
        )
    engine.dispose()
    return sqlite_url


def test_version_from_the_installed_entry_point(sqlite_url: str) -> None:
    env = {**os.environ, "DRIFTWATCH_DATABASE__URL": sqlite_url}
    code = "from monitor.cli import main; main()"
    version = subprocess.run(
        [sys.executable, "-c", code, "--version"], env=env, capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("driftwatch, version 0.")


def test_help_documents_the_exit_codes(sqlite_url: str, driftwatch: Callable[..., Run]) -> None:
    shown = driftwatch(sqlite_url, "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    for phrase in ("2 usage", "3 conflict", "4 not found", "5 unavailable", "--json"):
        assert phrase in text


def test_json_lists(seeded: str, driftwatch: Callable[..., Run]) -> None:
    alerts = driftwatch(seeded, "alerts", "list", "--json")
    assert alerts.returncode == 0, alerts.stderr
    [alert] = json.loads(alerts.stdout)
    assert alert["summary"] == "pixel drift" and alert["evidence"] == {"windows": 2}
    rollouts = driftwatch(seeded, "retrain", "rollouts", "--json")
    [rollout] = json.loads(rollouts.stdout)
    assert rollout["state"] == "rolled_back" and rollout["weight"] == 25
    assert json.loads(driftwatch(seeded, "reference", "list", "--json").stdout) == []
    assert json.loads(driftwatch(seeded, "retrain", "list", "--json").stdout) == []
    assert json.loads(driftwatch(seeded, "retrain", "versions", "--json").stdout) == []


def test_exit_codes(seeded: str, driftwatch: Callable[..., Run]) -> None:
    assert driftwatch(seeded, "alerts", "lst").returncode == 2
    assert driftwatch(seeded, "alerts", "ack", "not-a-number").returncode == 2
    missing = driftwatch(seeded, "alerts", "ack", "99")
    assert missing.returncode == 4 and "alert 99 does not exist" in missing.stderr
    down = driftwatch("postgresql://driftwatch@127.0.0.1:1/none", "alerts", "list")
    assert down.returncode == 5, down.stderr
    acked = driftwatch(seeded, "alerts", "ack", "1", "--by", "bob")
    assert acked.returncode == 0 and "acknowledged by bob" in acked.stdout
    silenced = driftwatch(seeded, "alerts", "silence", "1", "--minutes", "30")
    assert silenced.returncode == 0 and "silenced until" in silenced.stdout


def test_rolling_back_an_ended_rollout_is_refused_by_both_doors(
    seeded: str, settings_for: Callable[..., Settings], driftwatch: Callable[..., Run]
) -> None:
    cli = driftwatch(seeded, "retrain", "rollback", "1", "--reason", "again")
    assert cli.returncode == 3 and "already rolled_back" in cli.stderr
    engine: Engine = create_engine(seeded)
    app = create_app(settings_for(seeded, api=ApiSettings(token=TOKEN)), engine, False)
    with TestClient(app) as client:
        api = client.post(
            "/api/v1/retrain/rollouts/1/rollback",
            json={"reason": "again"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert api.status_code == 409 and "already rolled_back" in api.json()["detail"]
    with Session(engine) as session:
        assert session.get(Rollout, 1).reason == "canary accuracy dropped"  # type: ignore[union-attr]
    engine.dispose()


NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
sys.meta_path.insert(0, NoTorch())
from monitor.cli import main
main(sys.argv[1:])
"""


def test_a_command_whose_extra_is_missing_is_listed_and_says_what_to_install() -> None:
    """Without the ``ml`` extra (no torch), ``--help`` lists every command and the ones that
    need torch say so when run (a process of its own, where torch cannot be imported)."""
    from monitor.cli import COMMANDS

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", NO_TORCH, *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    listed = run("--help")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in COMMANDS)
    ran = run("demo")
    assert ran.returncode != 0 and "needs torch" in ran.stderr, ran.stderr
