"""Kubernetes deployment targets of the canary controller: the API connection, KServe
InferenceServices and Seldon Core 2 Experiments (retrain/targets_k8s.py, docs/canary.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from monitor.settings.base import _Section

#: Placeholders of the arm templates: ``{model}``, ``{version}``, ``{url}``, ``{sha256}``.
ARM_FIELDS = ("model", "version", "url", "sha256")


def _check_template(template: str) -> str:
    try:
        template.format(**dict.fromkeys(ARM_FIELDS, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        names = ", ".join("{" + name + "}" for name in ARM_FIELDS)
        raise ValueError(f"template {template!r} may use only {names}") from exc
    return template


class KubernetesApiSettings(_Section):
    """How the targets reach the Kubernetes API: ``host`` with a bearer ``token``, the pod's
    service account (``in_cluster``), or a kubeconfig (``kubeconfig``, default ~/.kube/config)."""

    in_cluster: bool = Field(False, description="Use the pod's service account token.")
    kubeconfig: Path | None = Field(None, description="Kubeconfig file; None: ~/.kube/config.")
    context: str | None = Field(None, description="Kubeconfig context; None: its current one.")
    host: str | None = Field(None, description="API server URL, used with token.")
    token: SecretStr | None = Field(None, description="Bearer token for host.")
    ca_cert: Path | None = Field(None, description="CA bundle of the API server (with host).")
    verify_ssl: bool = True
    timeout_seconds: float = Field(10.0, gt=0, description="Limit of one API request.")
    conflict_retries: int = Field(
        5, ge=0, description="Re-reads after a 409 Conflict before the publish fails."
    )

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesApiSettings:
        if self.host and self.in_cluster:
            raise ValueError("kubernetes: set host or in_cluster, not both")
        if self.token is not None and not self.host:
            raise ValueError("kubernetes: token needs host")
        return self


class KServeTargetSettings(_Section):
    """One InferenceService that serves a Driftwatch model; the canary moves its predictor's
    ``canaryTrafficPercent``."""

    model: str = Field(description="The Driftwatch model this InferenceService serves.")
    namespace: str
    name: str = Field(description="The InferenceService's name.")
    storage_uri: str = Field(
        "{url}", description="An arm's storageUri; placeholders {model} {version} {url} {sha256}."
    )
    model_field: str = Field(
        "model", description="spec.predictor.<model_field>.storageUri holds the model."
    )

    @model_validator(mode="after")
    def _template(self) -> KServeTargetSettings:
        _check_template(self.storage_uri)
        return self


class SeldonTargetSettings(_Section):
    """One Seldon Core 2 Experiment that splits a Driftwatch model's traffic between the
    Seldon Models of its arms."""

    model: str = Field(description="The Driftwatch model the Experiment splits.")
    namespace: str
    name: str = Field(description="The Experiment's name.")
    model_name: str = Field(
        "{model}-{version}", description="The Seldon Model of an arm; placeholders as storage_uri."
    )

    @model_validator(mode="after")
    def _template(self) -> SeldonTargetSettings:
        _check_template(self.model_name)
        return self
