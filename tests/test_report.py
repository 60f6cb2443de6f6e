"""The Evidently HTML report of a window: real Evidently, real database, the real CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.cli import cli
from monitor.detectors.simulate import synthetic_batch
from monitor.profiles import fit_profile_from_store
from monitor.reports.evidently_report import frames, write_report
from monitor.schemas import PredictionLog, encode_array
from monitor.settings import Settings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.tables import Window
from monitor.windows import close_windows

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_frames_keep_varying_columns_and_project_embeddings() -> None:
    ref, cur = synthetic_batch(300, seed=1), synthetic_batch(200, seed=2, brightness=-0.3)
    r, c, numerical, categorical = frames(ref, cur)
    assert categorical == ["predicted_class"]
    expected = {"confidence", "entropy", "brightness", "embedding_pc1", "embedding_pc5"}
    assert expected <= set(numerical)
    assert "width" not in numerical  # constant in both: nothing to compare
    assert len(r) == 300 and len(c) == 200
    np.testing.assert_allclose(c["confidence"], cur.probs.max(axis=1), rtol=1e-6)
    # the reference's projections are centred (PCA fitted on the reference)
    assert abs(float(r["embedding_pc1"].mean())) < 1e-6


def test_report_flags_the_moved_column(tmp_path: Path) -> None:
    ref, cur = synthetic_batch(400, seed=1), synthetic_batch(400, seed=2, brightness=-0.3)
    out = tmp_path / "r.html"
    summary = write_report(ref, cur, out)
    html = out.read_text()
    assert out.stat().st_size > 10_000 and "<html" in html.lower()
    assert summary["brightness"] < 1e-6  # K-S p-value of the darkened column
    assert summary["contrast"] > 1e-3
    assert 0 < summary["drifted_share"] < 1


def _logs(
    make_log: Callable[..., PredictionLog], n: int, start: datetime, bright: float, seed: int
) -> list[PredictionLog]:
    rng = np.random.default_rng(seed)
    return [
        make_log(
            timestamp=start + timedelta(seconds=i),
            embedding=encode_array(rng.normal(size=16).astype(np.float32), "float32"),
            pixel_stats={
                "brightness": float(rng.normal(bright, 0.05)),
                "contrast": float(rng.normal(0.2, 0.03)),
            },
        )
        for i in range(n)
    ]


def test_cli_writes_report_for_a_window(
    db_url: str,
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = settings_for(db_url)
    with unit_of_work(sessions) as s:
        insert_predictions(s, _logs(make_log, 100, T0, 0.5, 1) + _logs(make_log, 100, T0, 0.2, 2))
    with unit_of_work(sessions) as s:
        close_windows(
            s,
            settings.model_copy(
                update={"windows": settings.windows.model_copy(update={"max_count": 100})}
            ),
            now=T0 + timedelta(seconds=200),
            settle_seconds=0,
        )
        ids = list(s.scalars(select(Window.id).order_by(Window.first_id)))
    assert len(ids) == 2
    out = tmp_path / "w.html"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "evidently",
            "--window",
            str(ids[1]),
            "--reference-window",
            str(ids[0]),
            "--out",
            str(out),
        ],
        env={"DRIFTWATCH_DATABASE__URL": db_url, "DRIFTWATCH_ENVIRONMENT": "test"},
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and "brightness" in out.read_text()
    assert f"window {ids[1]} (n=100) vs window {ids[0]} (n=100)" in result.output

    with unit_of_work(sessions) as s:  # default: the active profile's reference logs
        end = T0 + timedelta(seconds=50)  # both batches log from T0: 50 + 50 logs
        profile = fit_profile_from_store(s, settings, "digits", "v1", T0, end, "ref", activate=True)
        profile_id = profile.id
    default = CliRunner().invoke(
        cli,
        ["report", "evidently", "--window", str(ids[1]), "--out", str(out)],
        env={"DRIFTWATCH_DATABASE__URL": db_url, "DRIFTWATCH_ENVIRONMENT": "test"},
    )
    assert default.exit_code == 0, default.output
    assert f"vs profile {profile_id} (n=100)" in default.output

    missing = CliRunner().invoke(
        cli,
        ["report", "evidently", "--window", "999999", "--out", str(out)],
        env={"DRIFTWATCH_DATABASE__URL": db_url, "DRIFTWATCH_ENVIRONMENT": "test"},
    )
    assert missing.exit_code != 0 and "window 999999 does not exist" in str(missing.exception)
