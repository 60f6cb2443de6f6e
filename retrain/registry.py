"""The model registry: content-hashed artifacts on disk, versions and their audit trail in SQL.

Artifacts are written into a private staging folder (each file to a temporary name, fsynced,
renamed), and the whole folder is renamed into ``<root>/<model>/<version>/`` only when every
artifact is complete; the version row is added after that. A crash at any point leaves either
nothing or a complete, hash-verified version, never half of one. Stale staging folders are
removed by :meth:`ArtifactStore.clean_staging`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from monitor.errors import DriftwatchError, NotFound
from monitor.settings import RetrainSettings
from monitor.store.retrain_tables import ModelVersion, RegistryEvent
from monitor.store.versions import all_versions, newest_events, promoted_version, version_row
from monitor.vocabulary import VersionState
from retrain.storage import ObjectStorage, sha256_bytes, storage_from_url, write_atomic

#: Allowed state changes of a model version.
VERSION_TRANSITIONS: dict[VersionState, tuple[VersionState, ...]] = {
    "candidate": ("canary", "failed", "promoted"),
    "canary": ("promoted", "rolled_back"),
    "promoted": ("retired",),
    "rolled_back": (),
    "failed": (),
    "retired": (),
}


class RegistryError(DriftwatchError):
    """An artifact is missing or corrupt, or a state change is not allowed."""


class Staging:
    """Artifacts being written for one version; becomes visible only on commit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.artifacts: dict[str, dict[str, Any]] = {}

    def write(self, name: str, filename: str, data: bytes) -> None:
        """Add artifact ``name`` stored as ``filename``."""
        write_atomic(self.folder / filename, data)
        self.artifacts[name] = {"file": filename, "sha256": sha256_bytes(data), "bytes": len(data)}


def _inside(root: Path, names: tuple[str, ...], what: str) -> Path:
    """``root/names...`` when every name part is plain and the path stays under ``root``.

    >>> _inside(Path("/r"), ("team/digits", "v1"), "digits v1")
    PosixPath('/r/team/digits/v1')
    >>> _inside(Path("/r"), ("a/../../../etc", "v1"), "a/../../../etc v1")
    Traceback (most recent call last):
    ...
    retrain.registry.RegistryError: a/../../../etc v1: a name may not leave the registry root
    """
    parts = [part for name in names for part in name.split("/")]
    path = root.joinpath(*parts)
    plain = all(p not in ("", ".", "..") and "\\" not in p for p in parts)
    if not plain or not path.resolve().is_relative_to(root.resolve()):
        raise RegistryError(f"{what}: a name may not leave the registry root")
    return path


class ArtifactStore:
    """Files of the registry under ``root``, mirrored to ``remote`` (an object store other pods
    read) when one is given; :meth:`url` is what deployment specs reference."""

    def __init__(self, root: Path | str, remote: ObjectStorage | None = None) -> None:
        self.root = Path(root)
        self.remote = remote

    @classmethod
    def from_settings(cls, settings: RetrainSettings) -> ArtifactStore:
        """``registry_dir``, mirrored to ``artifact_url`` when it is set."""
        url = settings.artifact_url
        remote = None if url is None else storage_from_url(url, settings.s3_endpoint_url)
        return cls(settings.registry_dir, remote)

    @property
    def staging_root(self) -> Path:
        return self.root / ".staging"

    @contextmanager
    def stage(self, model: str, version: str) -> Iterator[Staging]:
        """Write artifacts inside the block; they are published when it ends without error.

        The manifest (``manifest.json``) is written last, then the folder is renamed into
        place; on any error the staging folder is removed and nothing is published.
        """
        folder = self.staging_root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        staging = Staging(folder)
        try:
            yield staging
            manifest = {"model": model, "version": version, "artifacts": staging.artifacts}
            write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2).encode())
            final = self.version_dir(model, version)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                raise RegistryError(f"{model} {version} already has artifacts at {final}")
            os.replace(folder, final)
            if self.remote is not None:
                for name in [*(a["file"] for a in staging.artifacts.values()), "manifest.json"]:
                    self.remote.put(f"{model}/{version}/{name}", (final / name).read_bytes())
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def version_dir(self, model: str, version: str) -> Path:
        """``<root>/<model>/<version>``, refused when a name could leave the root."""
        return _inside(self.root, (model, version), f"{model} {version}")

    def path(self, mv: ModelVersion, name: str) -> Path:
        """The file of artifact ``name`` of ``mv``, after checking its hash."""
        meta = mv.artifacts.get(name)
        if meta is None:
            raise RegistryError(f"{mv.model} {mv.version} has no artifact {name!r}")
        folder = self.version_dir(mv.model, mv.version)
        path = _inside(folder, (str(meta["file"]),), f"artifact {name!r}")
        if not path.is_file():
            raise RegistryError(f"artifact {name!r} of {mv.model} {mv.version} is missing: {path}")
        digest = sha256_bytes(path.read_bytes())
        if digest != meta["sha256"]:
            raise RegistryError(
                f"artifact {name!r} of {mv.model} {mv.version} is corrupt: sha256 {digest[:12]} "
                f"!= recorded {meta['sha256'][:12]}"
            )
        return path

    def url(self, mv: ModelVersion, name: str) -> str:
        """Where model servers fetch artifact ``name`` of ``mv`` (checked here first)."""
        path = self.path(mv, name)
        if self.remote is None:
            return path.resolve().as_uri()
        return self.remote.url(f"{mv.model}/{mv.version}/{path.name}")

    def clean_staging(self) -> int:
        """Remove staging folders left by crashed writers; returns how many."""
        if not self.staging_root.is_dir():
            return 0
        stale = [p for p in self.staging_root.iterdir() if p.is_dir()]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)


def audit(
    session: Session,
    model: str,
    version: str | None,
    event: str,
    job_id: int | None = None,
    **detail: Any,
) -> None:
    """Append one entry to the audit trail."""
    session.add(
        RegistryEvent(model=model, version=version, job_id=job_id, event=event, detail=detail)
    )


def register(
    session: Session,
    model: str,
    version: str,
    artifacts: dict[str, dict[str, Any]],
    *,
    state: VersionState = "candidate",
    parent_version: str | None = None,
    job_id: int | None = None,
    recipe: str = "",
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    """Add a version whose artifacts are already published by :meth:`ArtifactStore.stage`."""
    mv = ModelVersion(
        model=model,
        version=version,
        state=state,
        parent_version=parent_version,
        job_id=job_id,
        recipe=recipe,
        params=dict(params or {}),
        metrics=dict(metrics or {}),
        artifacts=artifacts,
    )
    session.add(mv)
    session.flush()
    audit(
        session,
        model,
        version,
        "registered",
        job_id,
        state=state,
        parent=parent_version,
        artifacts={k: v["sha256"] for k, v in artifacts.items()},
    )
    return mv


def get_version(session: Session, model: str, version: str) -> ModelVersion:
    mv = version_row(session, model, version)
    if mv is None:
        raise NotFound(f"model {model} has no version {version}")
    return mv


def set_state(
    session: Session, mv: ModelVersion, state: VersionState, reason: str = ""
) -> ModelVersion:
    """Move ``mv`` to ``state`` (checked against :data:`VERSION_TRANSITIONS`) and audit it.

    Promoting a version retires the version promoted before it.
    """
    if state not in VERSION_TRANSITIONS.get(mv.state, ()):
        raise RegistryError(f"{mv.model} {mv.version} cannot go from {mv.state} to {state}")
    if state == "promoted":
        previous = promoted_version(session, mv.model)
        if previous is not None and previous.id != mv.id:
            set_state(session, previous, "retired", f"replaced by {mv.version}")
    old, mv.state = mv.state, state
    mv.updated_at = datetime.now(UTC)
    audit(session, mv.model, mv.version, f"state_{state}", mv.job_id, previous=old, reason=reason)
    session.flush()
    return mv


def list_versions(session: Session, model: str | None = None) -> list[ModelVersion]:
    return all_versions(session, model)


def history(session: Session, model: str, limit: int = 200) -> list[RegistryEvent]:
    """The audit trail of ``model``, oldest first."""
    return list(reversed(newest_events(session, model, limit)))
