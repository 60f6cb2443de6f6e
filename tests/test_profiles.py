"""Reference profiles: fitted from stored logs or a file, stored per family, one active per
model version, loaded back for scoring; and the ``driftwatch reference`` CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.batch import LogBatch
from monitor.cli import cli
from monitor.detectors.simulate import synthetic_batch
from monitor.errors import DriftwatchError, NotFound
from monitor.imagestats import STAT_NAMES
from monitor.profiles import (
    activate_profile,
    active_profile,
    fit_profile_from_batch,
    fit_profile_from_file,
    fit_profile_from_store,
    get_profile,
    list_profiles,
    load_profiles,
    profile_parts,
    reference_batch,
)
from monitor.schemas import EmbeddingDtype, PredictionLog, encode_array
from monitor.settings import FAMILIES, Settings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.tables import ProfilePart

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def batch_logs(
    batch: LogBatch,
    start: datetime = T0,
    prefix: str = "r",
    *,
    dtype: EmbeddingDtype = "float32",
    **fields: object,
) -> list[PredictionLog]:
    """PredictionLogs carrying exactly the arrays of ``batch`` (one per second)."""
    assert batch.embeddings is not None and batch.pixel is not None
    return [
        PredictionLog.model_validate(
            {
                "model": "digits",
                "model_version": "v1",
                "request_id": f"{prefix}-{i}",
                "timestamp": start + timedelta(seconds=i),
                "predicted_class": int(batch.predicted[i]),
                "probabilities": (batch.probs[i] / batch.probs[i].sum()).tolist(),
                "embedding": encode_array(batch.embeddings[i], dtype),
                "pixel_stats": dict(zip(STAT_NAMES, map(float, batch.pixel[i]), strict=True)),
                **fields,
            }
        )
        for i in range(len(batch))
    ]


def test_fit_from_store_stores_one_part_per_family(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(db_url)
    with unit_of_work(sessions) as s:
        insert_predictions(s, batch_logs(synthetic_batch(300, seed=1, dim=32)))
    with unit_of_work(sessions) as s:
        row = fit_profile_from_store(
            s, settings, "digits", "v1", T0, T0 + timedelta(seconds=200), "ref-a"
        )
        assert row.n_ref == 200 and not row.active
        assert row.source == {
            "type": "store",
            "start": T0.isoformat(),
            "end": (T0 + timedelta(seconds=200)).isoformat(),
            "arm": None,
        }
        profile_id = row.id
    with unit_of_work(sessions) as s:
        parts = profile_parts(s, profile_id)
        assert sorted(p.family for p in parts) == sorted(FAMILIES)
        loaded = load_profiles(s, profile_id)
        for part in parts:
            assert loaded[part.family].kind == part.kind
            assert loaded[part.family].to_bytes() == part.payload  # lossless round trip
        # the profile is bounded: far smaller than the reference logs themselves
        assert sum(len(p.payload) for p in parts) < 300 * 32 * 4 * 4
        assert len(reference_batch(s, get_profile(s, profile_id))) == 200
        with pytest.raises(DriftwatchError, match="no logs"):
            fit_profile_from_store(s, settings, "digits", "v9", None, None, "nothing")


def test_one_active_profile_per_model_version(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(db_url)
    ref = synthetic_batch(200, seed=2, dim=16)
    with unit_of_work(sessions) as s:
        a = fit_profile_from_batch(s, settings, "digits", "v1", ref, "a", activate=True)
        b = fit_profile_from_batch(s, settings, "digits", "v1", ref, "b")
        other = fit_profile_from_batch(s, settings, "digits", "v2", ref, "c", activate=True)
        ids = a.id, b.id, other.id
    with unit_of_work(sessions) as s:
        assert active_profile(s, "digits", "v1").id == ids[0]  # type: ignore[union-attr]
        activate_profile(s, ids[1])
    with unit_of_work(sessions) as s:
        assert active_profile(s, "digits", "v1").id == ids[1]  # type: ignore[union-attr]
        assert active_profile(s, "digits", "v2").id == ids[2]  # type: ignore[union-attr]
        assert active_profile(s, "digits", "v3") is None
        assert [p.id for p in list_profiles(s, "digits", "v1")] == [ids[1], ids[0]]
        assert [p.active for p in list_profiles(s, "digits", "v1")] == [True, False]
        with pytest.raises(NotFound):
            activate_profile(s, 999_999)


def test_fit_from_file_and_cli(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    ref = synthetic_batch(150, seed=3, dim=16)
    path = tmp_path / "ref.jsonl"
    path.write_text("\n".join(log.model_dump_json() for log in batch_logs(ref)))
    env = {"DRIFTWATCH_DATABASE__URL": db_url, "DRIFTWATCH_ENVIRONMENT": "test"}
    runner = CliRunner()
    fitted = runner.invoke(
        cli,
        [
            "reference",
            "fit",
            "--model",
            "digits",
            "--version",
            "v1",
            "--file",
            str(path),
            "--name",
            "from-file",
            "--activate",
        ],
        env=env,
    )
    assert fitted.exit_code == 0, fitted.output
    assert "on 150 logs (active)" in fitted.output
    listed = runner.invoke(cli, ["reference", "list", "--model", "digits"], env=env)
    assert listed.exit_code == 0 and "'from-file'" in listed.output and "* " in listed.output
    with unit_of_work(sessions) as s:
        profile_id = active_profile(s, "digits", "v1").id  # type: ignore[union-attr]
        n_parts = len(s.scalars(select(ProfilePart)).all())
        reloaded = reference_batch(s, get_profile(s, profile_id))
        np.testing.assert_allclose(
            reloaded.probs, ref.probs / ref.probs.sum(1, keepdims=True), rtol=1e-5
        )
    shown = runner.invoke(cli, ["reference", "show", str(profile_id)], env=env)
    doc = json.loads(shown.output)
    assert doc["source"]["type"] == "file" and len(doc["parts"]) == n_parts == len(FAMILIES)
    with unit_of_work(sessions) as s:
        second = fit_profile_from_file(s, settings_for(db_url), "digits", "v1", path, "2")
        second_id = second.id
    switched = runner.invoke(cli, ["reference", "activate", str(second_id)], env=env)
    assert switched.exit_code == 0 and f"profile {second_id} active" in switched.output
    bad = runner.invoke(
        cli,
        [
            "reference",
            "fit",
            "--model",
            "digits",
            "--version",
            "v1",
            "--file",
            str(path),
            "--from",
            "yesterday",
        ],
        env=env,
    )
    assert bad.exit_code != 0 and "not an ISO 8601 time" in bad.output
