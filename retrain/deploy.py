"""Deployment targets: where a rollout spec (which versions serve, with what traffic weight) goes.

A target has one method, ``publish(spec)``. :class:`FileTarget` writes the spec as JSON
atomically (the reference model server watches it); :class:`WebhookTarget` POSTs it to a URL.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from monitor.errors import DriftwatchError
from monitor.settings import RetrainSettings


class DeployError(DriftwatchError):
    """A deployment target refused or could not take the spec."""


@dataclass(frozen=True)
class ArmSpec:
    """One served version: where to fetch its ONNX file (``file://``, ``s3://``, ``https://``)
    and its hash."""

    version: str
    url: str
    sha256: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmSpec:
        """An arm, also from specs written when arms had a local ``path``."""
        url = data.get("url") or Path(data["path"]).resolve().as_uri()
        return cls(version=data["version"], url=url, sha256=data["sha256"])


@dataclass(frozen=True)
class DeploymentSpec:
    """What the model server should serve: a stable arm and an optional canary with its weight."""

    model: str
    stable: ArmSpec
    canary: ArmSpec | None = None
    canary_weight: int = 0  # percent of traffic
    rollout_id: int | None = None
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentSpec:
        canary = data.get("canary")
        return cls(
            model=data["model"],
            stable=ArmSpec.from_dict(data["stable"]),
            canary=ArmSpec.from_dict(canary) if canary else None,
            canary_weight=int(data.get("canary_weight", 0)),
            rollout_id=data.get("rollout_id"),
            updated_at=data.get("updated_at", ""),
        )


def stamped(spec: DeploymentSpec) -> DeploymentSpec:
    values = asdict(spec)
    values["updated_at"] = datetime.now(UTC).isoformat()
    return DeploymentSpec.from_dict(values)


class DeploymentTarget(Protocol):
    def publish(self, spec: DeploymentSpec) -> None: ...


class FileTarget:
    """Writes ``{model}.json`` style specs: one file per target path, replaced atomically."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def publish(self, spec: DeploymentSpec) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(spec.to_dict(), indent=2))
        os.replace(tmp, self.path)

    def read(self) -> DeploymentSpec | None:
        if not self.path.is_file():
            return None
        return DeploymentSpec.from_dict(json.loads(self.path.read_text()))


class WebhookTarget:
    """POSTs the spec as JSON; any non-2xx answer is a :class:`DeployError`."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def publish(self, spec: DeploymentSpec) -> None:
        import httpx

        try:
            resp = httpx.post(
                self.url,
                json=spec.to_dict(),
                timeout=self.timeout,
                headers={"X-Driftwatch-Event": "deployment"},
            )
        except httpx.HTTPError as exc:
            raise DeployError(f"deployment webhook {self.url} unreachable: {exc}") from exc
        if resp.status_code // 100 != 2:
            raise DeployError(f"deployment webhook {self.url} answered {resp.status_code}")


class Targets:
    """Publishes to several targets in order."""

    def __init__(self, targets: list[DeploymentTarget]) -> None:
        self.targets = targets

    def publish(self, spec: DeploymentSpec) -> None:
        for target in self.targets:
            target.publish(spec)


def target_from_settings(settings: RetrainSettings) -> Targets:
    """The file target, plus the webhook when ``deployment_webhook_url`` is set, plus the
    KServe and Seldon targets configured (retrain/targets_k8s.py)."""
    targets: list[DeploymentTarget] = [FileTarget(settings.deployment_spec_path)]
    if settings.deployment_webhook_url:
        targets.append(WebhookTarget(settings.deployment_webhook_url))
    if settings.kserve or settings.seldon:
        # The [k8s] extra, imported only when configured (it also imports this module).
        from retrain.targets_k8s import kubernetes_targets

        targets.extend(kubernetes_targets(settings))
    return Targets(targets)
