"""Reference profiles: fit from stored logs or a file, store versioned, activate, load.

A profile is one ``reference_profiles`` row plus one ``profile_parts`` row per detector family
holding that family's fitted state (``kind``, ``schema_version`` and the bytes of
``Profile.to_bytes()``), never the reference itself. At most one profile is active per model and
version; :func:`activate_profile` switches it in the caller's transaction. Functions take a
Session and never commit.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.detectors.registry import family_of, fit_all, load_profile
from monitor.errors import NotFound
from monitor.impact.stage import fit_reference_impact
from monitor.settings import Settings
from monitor.store import profiles_repo
from monitor.store.logs import load_range, read_reference_file
from monitor.store.tables import ProfilePart, ReferenceProfile

if TYPE_CHECKING:
    from monitor.detectors.base import ProfileBase


def fit_profile_from_batch(
    session: Session,
    settings: Settings,
    model: str,
    version: str,
    batch: LogBatch,
    name: str,
    source: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    activate: bool = False,
) -> ReferenceProfile:
    """Fit every enabled family on ``batch`` and store the profile (inactive unless
    ``activate``)."""

    parts = fit_all(batch, settings.detectors, model, seed=seed)
    row = ReferenceProfile(
        model=model,
        model_version=version,
        name=name,
        active=False,
        n_ref=len(batch),
        source=dict(source or {}),
    )
    session.add(row)
    session.flush()
    for family, profile in parts.items():
        session.add(
            ProfilePart(
                profile_id=row.id,
                family=family,
                kind=profile.kind,
                schema_version=profile.schema_version,
                payload=profile.to_bytes(),
            )
        )
    session.flush()
    fit_reference_impact(session, row.id, batch, settings.policy.impact)
    if activate:
        activate_profile(session, row.id)
    return row


def fit_profile_from_store(
    session: Session,
    settings: Settings,
    model: str,
    version: str,
    start: datetime | None,
    end: datetime | None,
    name: str,
    *,
    arm: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    activate: bool = False,
) -> ReferenceProfile:
    """Fit a profile on the stored logs of ``model``/``version`` with ``start <= ts < end``."""
    batch = load_range(session, model, version, start, end, arm=arm, limit=limit)
    source = {
        "type": "store",
        "start": None if start is None else start.isoformat(),
        "end": None if end is None else end.isoformat(),
        "arm": arm,
    }
    return fit_profile_from_batch(
        session, settings, model, version, batch, name, source, seed=seed, activate=activate
    )


def fit_profile_from_file(
    session: Session,
    settings: Settings,
    model: str,
    version: str,
    path: Path | str,
    name: str,
    *,
    seed: int = 0,
    activate: bool = False,
) -> ReferenceProfile:
    """Fit a profile on a Parquet, NPZ or JSONL file of prediction logs."""
    batch = read_reference_file(path)
    source = {"type": "file", "path": str(Path(path).resolve())}
    return fit_profile_from_batch(
        session, settings, model, version, batch, name, source, seed=seed, activate=activate
    )


def get_profile(session: Session, profile_id: int) -> ReferenceProfile:
    """The profile ``profile_id`` or :class:`NotFound`."""
    row = session.get(ReferenceProfile, profile_id)
    if row is None:
        raise NotFound(f"reference profile {profile_id} does not exist")
    return row


def activate_profile(session: Session, profile_id: int) -> ReferenceProfile:
    """Make ``profile_id`` the one active profile of its model and version."""
    row = get_profile(session, profile_id)
    profiles_repo.deactivate_others(session, row)
    row.active = True
    session.flush()
    return row


def active_profile(session: Session, model: str, version: str) -> ReferenceProfile | None:
    """The active profile of ``model``/``version``, or None."""
    return profiles_repo.active_profile(session, model, version)


def list_profiles(
    session: Session, model: str | None = None, version: str | None = None
) -> list[ReferenceProfile]:
    """Profiles, newest first, optionally of one model (and version)."""
    return profiles_repo.find_profiles(session, model, version)


def profile_parts(session: Session, profile_id: int) -> list[ProfilePart]:
    """The stored family parts of a profile."""
    return profiles_repo.profile_parts(session, profile_id)


def load_profiles(session: Session, profile_id: int) -> dict[str, ProfileBase]:
    """The fitted per-family profiles of ``profile_id``, ready for ``registry.score_all``."""

    profiles: dict[str, ProfileBase] = {}
    for part in profile_parts(session, profile_id):
        profiles[family_of(part.kind)] = load_profile(part.kind, part.schema_version, part.payload)
    return profiles


def reference_batch(session: Session, profile: ReferenceProfile, limit: int = 5000) -> LogBatch:
    """The reference logs ``profile`` was fitted on, reloaded from its source (the store range or
    the file), at most the newest ``limit`` of them. For reports, not for detection."""
    source = profile.source or {}
    if source.get("type") == "store":
        start, end = source.get("start"), source.get("end")
        return load_range(
            session,
            profile.model,
            profile.model_version,
            None if start is None else datetime.fromisoformat(start),
            None if end is None else datetime.fromisoformat(end),
            arm=source.get("arm"),
            limit=limit,
        )
    if source.get("type") == "file":
        batch = read_reference_file(source["path"])
        n = len(batch)
        return batch if n <= limit else batch.take(np.arange(n - limit, n))
    raise NotFound(f"profile {profile.id} does not record where its reference came from")
