"""The registry's audit trail read as an outbox: which events a mirror has not delivered yet.

The registry writes its audit events (``registered``, ``state_promoted``, ...) in the same
transaction as the change they record, so they are an outbox that needs no table of its own.
A mirror records each delivered (or dead-lettered) event as another audit event,
``<mirror>_mirrored`` / ``<mirror>_mirror_failed`` with ``detail.event_id``; the newest one is its
cursor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.retrain_tables import RegistryEvent, Rollout


def mirror_cursor(session: Session, mirror: str, model: str) -> int:
    """Id of the last event of ``model`` that ``mirror`` delivered or gave up on (0: none)."""
    detail = session.scalar(
        select(RegistryEvent.detail)
        .where(
            RegistryEvent.model == model,
            RegistryEvent.event.in_((f"{mirror}_mirrored", f"{mirror}_mirror_failed")),
        )
        .order_by(RegistryEvent.id.desc())
        .limit(1)
    )
    return int((detail or {}).get("event_id", 0))


def undelivered(
    session: Session, model: str, after: int, events: tuple[str, ...], limit: int = 100
) -> list[RegistryEvent]:
    """Events of ``model`` named in ``events`` with an id above ``after``, oldest first."""
    return list(
        session.scalars(
            select(RegistryEvent)
            .where(
                RegistryEvent.model == model,
                RegistryEvent.id > after,
                RegistryEvent.event.in_(events),
            )
            .order_by(RegistryEvent.id)
            .limit(limit)
        )
    )


def count_undelivered(session: Session, model: str, after: int, events: tuple[str, ...]) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RegistryEvent)
            .where(
                RegistryEvent.model == model,
                RegistryEvent.id > after,
                RegistryEvent.event.in_(events),
            )
        )
        or 0
    )


def registry_models(session: Session) -> list[str]:
    """Every model with an audit trail."""
    return list(
        session.scalars(select(RegistryEvent.model).distinct().order_by(RegistryEvent.model))
    )


def record_delivery(
    session: Session, mirror: str, event: RegistryEvent, failed: str | None = None
) -> None:
    """Move ``mirror``'s cursor past ``event``: delivered, or given up with reason ``failed``."""
    detail: dict[str, Any] = {"event_id": event.id, "of": event.event}
    if failed is not None:
        detail["error"] = failed
    name = f"{mirror}_mirror_failed" if failed is not None else f"{mirror}_mirrored"
    session.add(
        RegistryEvent(
            model=event.model, version=event.version, job_id=event.job_id, event=name, detail=detail
        )
    )


def rollout_of(session: Session, model: str, candidate_version: str) -> Rollout | None:
    """The newest rollout of ``candidate_version`` of ``model``."""
    return session.scalar(
        select(Rollout)
        .where(Rollout.model == model, Rollout.candidate_version == candidate_version)
        .order_by(Rollout.id.desc())
        .limit(1)
    )
