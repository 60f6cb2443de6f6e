"""Deployment targets on Kubernetes: a KServe InferenceService and a Seldon Core 2 Experiment.

Both turn a :class:`~retrain.deploy.DeploymentSpec` into a merge patch of the live object
(:func:`retrain.kube.patch_resource`: read, patch with the read ``resourceVersion``, re-read
on 409). The patch functions are pure: the object read and the spec in, the patch out.

KServe (serverless mode) keeps the last revision rolled out at 100% and sends
``canaryTrafficPercent`` of the traffic to the newest one: a canary sets the predictor's
storageUri to the candidate and the percent to the step's weight; a promotion removes the
percent (the candidate becomes the rolled-out revision); a rollback sets it to 0, which pins all
traffic to the previous rolled-out revision. Seldon Core 2 splits by ``spec.candidates[].weight``
(a share of their sum): the canary gets the step's weight and the stable arm the rest; a
stable-only spec gives the stable arm 100 and every other candidate 0.
"""

from __future__ import annotations

from typing import Any

from monitor.settings import RetrainSettings
from monitor.settings.targets import KServeTargetSettings, SeldonTargetSettings
from retrain.deploy import ArmSpec, DeploymentSpec, DeploymentTarget
from retrain.kube import CustomObjects, Resource, patch_resource

ANNOTATION = "driftwatch.io"


def arm_text(template: str, model: str, arm: ArmSpec) -> str:
    """``template`` filled from ``arm`` (``{model}``, ``{version}``, ``{url}``, ``{sha256}``).

    >>> arm_text("{model}-{version}", "digits", ArmSpec("v2", "s3://b/v2.onnx", "ab"))
    'digits-v2'
    """
    return template.format(model=model, version=arm.version, url=arm.url, sha256=arm.sha256)


def served_annotations(spec: DeploymentSpec) -> dict[str, Any]:
    """Which versions the object serves, for ``kubectl describe`` (``None`` removes a key)."""
    return {
        f"{ANNOTATION}/stable-version": spec.stable.version,
        f"{ANNOTATION}/canary-version": spec.canary.version if spec.canary else None,
        f"{ANNOTATION}/canary-weight": str(spec.canary_weight) if spec.canary else None,
        f"{ANNOTATION}/rollout-id": None if spec.rollout_id is None else str(spec.rollout_id),
    }


def kserve_patch(
    isvc: dict[str, Any], spec: DeploymentSpec, settings: KServeTargetSettings
) -> dict[str, Any]:
    """The merge patch that makes InferenceService ``isvc`` serve ``spec``."""
    predictor = isvc.get("spec", {}).get("predictor", {})
    field = settings.model_field
    current_uri = (predictor.get(field) or {}).get("storageUri")
    percent = predictor.get("canaryTrafficPercent")
    stable_uri = arm_text(settings.storage_uri, spec.model, spec.stable)
    change: dict[str, Any]
    if spec.canary is not None:
        canary_uri = arm_text(settings.storage_uri, spec.model, spec.canary)
        change = {"canaryTrafficPercent": spec.canary_weight, field: {"storageUri": canary_uri}}
    elif percent is not None and current_uri == stable_uri:
        change = {"canaryTrafficPercent": None}  # promote: the candidate is rolled out
    elif percent is not None:
        change = {"canaryTrafficPercent": 0}  # roll back: the previous rolled-out revision
    else:
        change = {field: {"storageUri": stable_uri}}
    return {"metadata": {"annotations": served_annotations(spec)}, "spec": {"predictor": change}}


def seldon_patch(
    experiment: dict[str, Any], spec: DeploymentSpec, settings: SeldonTargetSettings
) -> dict[str, Any]:
    """The merge patch that makes Experiment ``experiment`` split traffic as ``spec`` says.

    The candidates list is replaced whole (merge patches replace lists); a ``spec.default``
    already set stays a candidate, at weight 0 unless it is an arm, as Seldon requires.
    """
    body = experiment.get("spec", {})
    stable = arm_text(settings.model_name, spec.model, spec.stable)
    weights = {stable: 100}
    if spec.canary is not None:
        weights = {stable: 100 - spec.canary_weight}
        weights[arm_text(settings.model_name, spec.model, spec.canary)] = spec.canary_weight
    else:
        for candidate in body.get("candidates") or ():
            weights.setdefault(str(candidate["name"]), 0)
    if body.get("default"):
        weights.setdefault(str(body["default"]), 0)
    candidates = [{"name": name, "weight": weight} for name, weight in weights.items()]
    return {
        "metadata": {"annotations": served_annotations(spec)},
        "spec": {"candidates": candidates},
    }


class KServeTarget:
    """Publishes a spec of its model to one InferenceService; other models' specs pass by."""

    def __init__(self, objects: CustomObjects, settings: KServeTargetSettings) -> None:
        self.objects = objects
        self.settings = settings
        self.resource = Resource(
            "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService",
            settings.namespace, settings.name,
        )  # fmt: skip

    def publish(self, spec: DeploymentSpec) -> None:
        if spec.model == self.settings.model:
            patch_resource(
                self.objects, self.resource, lambda obj: kserve_patch(obj, spec, self.settings)
            )


class SeldonExperimentTarget:
    """Publishes a spec of its model to one Seldon Core 2 Experiment."""

    def __init__(self, objects: CustomObjects, settings: SeldonTargetSettings) -> None:
        self.objects = objects
        self.settings = settings
        self.resource = Resource(
            "mlops.seldon.io", "v1alpha1", "experiments", "Experiment",
            settings.namespace, settings.name,
        )  # fmt: skip

    def publish(self, spec: DeploymentSpec) -> None:
        if spec.model == self.settings.model:
            patch_resource(
                self.objects, self.resource, lambda obj: seldon_patch(obj, spec, self.settings)
            )


def kubernetes_targets(settings: RetrainSettings) -> list[DeploymentTarget]:
    """The configured KServe and Seldon targets, sharing one API client."""
    if not settings.kserve and not settings.seldon:
        return []
    objects = CustomObjects(settings.kubernetes)
    targets: list[DeploymentTarget] = [KServeTarget(objects, s) for s in settings.kserve]
    targets += [SeldonExperimentTarget(objects, s) for s in settings.seldon]
    return targets
