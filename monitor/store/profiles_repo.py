"""The reference profiles' SQL: the active profile of a version, listings, a profile's parts."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from monitor.store.tables import ProfilePart, ReferenceProfile


def deactivate_others(session: Session, row: ReferenceProfile) -> None:
    """Mark every other profile of ``row``'s model and version inactive."""
    session.execute(
        update(ReferenceProfile)
        .where(
            ReferenceProfile.model == row.model,
            ReferenceProfile.model_version == row.model_version,
            ReferenceProfile.id != row.id,
        )
        .values(active=False)
    )


def active_profile(session: Session, model: str, version: str) -> ReferenceProfile | None:
    """The active profile of ``model``/``version``, or None."""
    return session.scalars(
        select(ReferenceProfile)
        .where(
            ReferenceProfile.model == model,
            ReferenceProfile.model_version == version,
            ReferenceProfile.active.is_(True),
        )
        .order_by(ReferenceProfile.id.desc())
        .limit(1)
    ).first()


def find_profiles(
    session: Session, model: str | None = None, version: str | None = None
) -> list[ReferenceProfile]:
    """Profiles, newest first, optionally of one model (and version)."""
    stmt = select(ReferenceProfile).order_by(ReferenceProfile.id.desc())
    if model is not None:
        stmt = stmt.where(ReferenceProfile.model == model)
    if version is not None:
        stmt = stmt.where(ReferenceProfile.model_version == version)
    return list(session.scalars(stmt))


def profile_parts(session: Session, profile_id: int) -> list[ProfilePart]:
    """The stored family parts of a profile."""
    return list(
        session.scalars(
            select(ProfilePart)
            .where(ProfilePart.profile_id == profile_id)
            .order_by(ProfilePart.family)
        )
    )
