"""The MLflow Model Registry as a mirror of Driftwatch's registry, over MLflow's REST API 2.0.

Each Driftwatch version becomes a model version of the registered model named after the
Driftwatch model: its ONNX files are artifacts of a run (uploaded through the tracking server's
artifact proxy, ``mlflow-artifacts:``), its figures and gate report are tags. The serving side
reads the registered-model aliases: ``champion`` (the version serving all traffic),
``previous`` (the one it replaced) and ``challenger`` (the canary of a running rollout).

Every call is idempotent (a version is found by its ``driftwatch.version`` tag before one is
created; aliases are set, not toggled), so the outbox relay in :mod:`retrain.registry_mirror`
may repeat a call that failed half-way.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from monitor.errors import DriftwatchError
from monitor.settings import MlflowSettings
from monitor.store.retrain_tables import ModelVersion

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
#: Driftwatch artifact name -> file name under the model version's ``model/`` folder.
ONNX_FILES = {"onnx_fp32": "model.fp32.onnx", "onnx_int8": "model.int8.onnx"}
_TAG_VALUE_LIMIT = 5000  # MLflow's limit of a model version tag value
_PROXY = "mlflow-artifacts:"


class MlflowUnavailable(DriftwatchError):
    """The tracking server did not answer, or answered 5xx/429/401/403: retry later."""


class MlflowRejected(DriftwatchError):
    """The tracking server refused the request itself (4xx): retrying will not help."""


@dataclass(frozen=True)
class MlflowVersion:
    """One model version as the tracking server reports it."""

    name: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str]

    @classmethod
    def of(cls, body: dict[str, Any]) -> MlflowVersion:
        tags = {t["key"]: t.get("value", "") for t in body.get("tags", [])}
        return cls(body["name"], body["version"], body.get("run_id", ""), body["source"], tags)


def flat_tags(prefix: str, value: Any) -> dict[str, str]:
    """Scalars of a nested dict as ``prefix.key.sub`` tags; lists as JSON.

    >>> flat_tags("gate", {"passed": True, "recent": {"candidate": {"accuracy": 0.91}}})
    {'gate.passed': 'true', 'gate.recent.candidate.accuracy': '0.91'}
    """
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, sub in value.items():
            out.update(flat_tags(f"{prefix}.{key}", sub))
        return out
    text = json.dumps(value) if not isinstance(value, str) else value
    return {prefix: text[:_TAG_VALUE_LIMIT]}


class MlflowRegistry:
    """A small client of one tracking server: publish a candidate, promote, roll back."""

    def __init__(self, settings: MlflowSettings, client: httpx.Client | None = None) -> None:
        if settings.tracking_uri is None:
            raise DriftwatchError("retrain.mlflow.tracking_uri is required by the mlflow backend")
        headers = {}
        if settings.token is not None:
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        self.settings = settings
        self.http = client or httpx.Client(
            base_url=settings.tracking_uri.rstrip("/"), headers=headers, timeout=settings.timeout_s
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ HTTP

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise MlflowUnavailable(f"MLflow at {self.http.base_url}: {exc}") from exc
        if response.is_success:
            body = response.json() if response.content else {}
            return body if isinstance(body, dict) else {}
        try:
            error = response.json()
        except ValueError:
            error = {"message": response.text[:300]}
        code, message = error.get("error_code", ""), error.get("message", "")
        what = f"MLflow {method} {path}: HTTP {response.status_code} {code} {message}".strip()
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise MlflowUnavailable(what)
        if code == "RESOURCE_ALREADY_EXISTS":
            raise _Exists(what)
        raise MlflowRejected(what)

    def _api(self, method: str, endpoint: str, **kw: Any) -> dict[str, Any]:
        return self._call(method, f"/api/2.0/mlflow/{endpoint}", **kw)

    # ------------------------------------------------------------------ reads

    def find_version(self, model: str, version: str) -> MlflowVersion | None:
        """The model version mirroring Driftwatch's ``version`` of ``model``, if any."""
        query = f"name = '{_quoted(model)}' and tags.`driftwatch.version` = '{_quoted(version)}'"
        try:
            body = self._api("GET", "model-versions/search", params={"filter": query})
        except MlflowRejected as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc):
                return None
            raise
        found = [MlflowVersion.of(v) for v in body.get("model_versions", [])]
        return min(found, key=lambda v: int(v.version)) if found else None

    def alias(self, model: str, alias: str) -> MlflowVersion | None:
        """The model version ``alias`` points to, or None when it is not set."""
        try:
            body = self._api(
                "GET", "registered-models/alias", params={"name": model, "alias": alias}
            )
        except MlflowRejected as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "INVALID_PARAMETER_VALUE" in str(exc):
                return None
            raise
        return MlflowVersion.of(body["model_version"])

    def download(self, mv: MlflowVersion, name: str) -> bytes:
        """The bytes of ONNX artifact ``name`` (``onnx_fp32``/``onnx_int8``) of ``mv``."""
        return self._download(f"{mv.source}/{ONNX_FILES[name]}")

    # ------------------------------------------------------------------ writes

    def publish_candidate(
        self, mv: ModelVersion, gate_report: dict[str, Any] | None, artifacts: dict[str, Path]
    ) -> MlflowVersion:
        """Find or create the model version of ``mv`` with ``artifacts`` (name -> file) and set
        its tags: Driftwatch's figures, state and, when given, the gate report."""
        self._ensure_model(mv.model)
        found = self.find_version(mv.model, mv.version)
        if found is None:
            found = self._create_version(mv, artifacts)
        tags = {
            "driftwatch.state": mv.state,
            "driftwatch.parent_version": mv.parent_version or "",
            **flat_tags("metrics.accuracy", (mv.metrics or {}).get("accuracy", {})),
            **flat_tags("metrics.format", (mv.metrics or {}).get("format", {})),
        }
        if gate_report is not None:
            tags.update(flat_tags("gate", gate_report))
        self.set_tags(found, tags)
        return found

    def set_tags(self, mv: MlflowVersion, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            if mv.tags.get(key) != value:
                self._api(
                    "POST",
                    "model-versions/set-tag",
                    json={"name": mv.name, "version": mv.version, "key": key, "value": value},
                )

    def challenge(self, mv: MlflowVersion) -> None:
        """Point ``challenger`` at ``mv`` (the canary of a running rollout)."""
        self._set_alias(mv, CHALLENGER)

    def promote(self, mv: MlflowVersion) -> None:
        """``champion`` -> ``mv``; the champion it replaces becomes ``previous``."""
        current = self.alias(mv.name, CHAMPION)
        if current is not None and current.version != mv.version:
            self._set_alias(current, PREVIOUS)
        self._set_alias(mv, CHAMPION)
        self._drop_challenger(mv)

    def roll_back(self, mv_to: MlflowVersion, candidate: MlflowVersion | None = None) -> None:
        """``champion`` back to ``mv_to``; ``challenger`` (the refused ``candidate``) removed."""
        current = self.alias(mv_to.name, CHAMPION)
        if current is not None and current.version != mv_to.version:
            self._set_alias(current, PREVIOUS)
        self._set_alias(mv_to, CHAMPION)
        if candidate is not None:
            self._drop_challenger(candidate)

    # ------------------------------------------------------------------ internals

    def _ensure_model(self, model: str) -> None:
        with contextlib.suppress(_Exists):
            self._api(
                "POST",
                "registered-models/create",
                json={"name": model, "description": f"Driftwatch model {model}"},
            )

    def _set_alias(self, mv: MlflowVersion, alias: str) -> None:
        self._api(
            "POST",
            "registered-models/alias",
            json={"name": mv.name, "alias": alias, "version": mv.version},
        )

    def _drop_challenger(self, mv: MlflowVersion) -> None:
        challenger = self.alias(mv.name, CHALLENGER)
        if challenger is not None and challenger.version == mv.version:
            self._api(
                "DELETE", "registered-models/alias", json={"name": mv.name, "alias": CHALLENGER}
            )

    def _experiment_id(self) -> str:
        name = self.settings.experiment
        try:
            body = self._api("POST", "experiments/create", json={"name": name})
            return str(body["experiment_id"])
        except _Exists:
            got = self._api("GET", "experiments/get-by-name", params={"experiment_name": name})
            return str(got["experiment"]["experiment_id"])

    def _create_version(self, mv: ModelVersion, artifacts: dict[str, Path]) -> MlflowVersion:
        tags = {"driftwatch.model": mv.model, "driftwatch.version": mv.version}
        run = self._api(
            "POST",
            "runs/create",
            json={
                "experiment_id": self._experiment_id(),
                "run_name": f"{mv.model} {mv.version}",
                "start_time": int(time.time() * 1000),
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )["run"]["info"]
        source = f"{run['artifact_uri']}/model"
        for name, path in artifacts.items():
            self._upload(f"{source}/{ONNX_FILES[name]}", path.read_bytes())
        self._api(
            "POST",
            "runs/update",
            json={
                "run_id": run["run_id"],
                "status": "FINISHED",
                "end_time": int(time.time() * 1000),
            },
        )
        body = self._api(
            "POST",
            "model-versions/create",
            json={
                "name": mv.model,
                "source": source,
                "run_id": run["run_id"],
                "description": f"Driftwatch {mv.model} {mv.version} ({mv.recipe or 'baseline'})",
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        return MlflowVersion.of(body["model_version"])

    def _proxied(self, uri: str) -> str:
        """The artifact proxy path of ``uri`` (``mlflow-artifacts:/1/<run>/artifacts/...``)."""
        if not uri.startswith(_PROXY):
            raise MlflowRejected(
                f"artifact URI {uri} is not served by the tracking server: start it with "
                "--serve-artifacts (the default) and no --default-artifact-root of its own"
            )
        path = uri[len(_PROXY) :].lstrip("/")
        if uri.startswith(_PROXY + "//"):  # mlflow-artifacts://host:port/path
            path = path.split("/", 1)[1]
        return "/api/2.0/mlflow-artifacts/artifacts/" + quote(path)

    def _upload(self, uri: str, data: bytes) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        self._call("PUT", self._proxied(uri), content=data, headers=headers)

    def _download(self, uri: str) -> bytes:
        try:
            response = self.http.get(self._proxied(uri))
        except httpx.HTTPError as exc:
            raise MlflowUnavailable(f"MLflow at {self.http.base_url}: {exc}") from exc
        if not response.is_success:
            raise MlflowRejected(f"MLflow artifact {uri}: HTTP {response.status_code}")
        return response.content


class _Exists(MlflowRejected):
    """RESOURCE_ALREADY_EXISTS: what a create of something present answers."""


def _quoted(value: str) -> str:
    """``value`` inside single quotes of an MLflow filter."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
