"""Read-modify-write of one custom resource through the Kubernetes API (the official client).

:func:`patch_resource` GETs the object, asks a function for the change, and sends it as an
RFC 7386 merge patch (``application/merge-patch+json``) carrying the ``resourceVersion`` it
read, so a concurrent writer makes the API server answer 409; the patch is then recomputed
from a fresh read, a bounded number of times. 401, 403 (RBAC) and 404 become a
:class:`~retrain.deploy.DeployError` that names the resource. Tokens are never logged: error
texts carry the API's ``Status`` message, never the request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from monitor.settings.targets import KubernetesApiSettings
from retrain.deploy import DeployError

log = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"
Change = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class Resource:
    """One namespaced custom object, e.g. ``serving.kserve.io/v1beta1`` ``inferenceservices``."""

    group: str
    version: str
    plural: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} ({self.group}/{self.version})"


def api_client(settings: KubernetesApiSettings) -> client.ApiClient:
    """An API client from ``host`` + ``token``, the pod's service account, or a kubeconfig."""
    cfg = client.Configuration()
    try:
        if settings.host:
            cfg.host = settings.host
            cfg.verify_ssl = settings.verify_ssl
            cfg.ssl_ca_cert = str(settings.ca_cert) if settings.ca_cert else None
            if settings.token is not None:
                # as the kubeconfig loader does: the whole header value, prefix included
                cfg.api_key = {"authorization": f"Bearer {settings.token.get_secret_value()}"}
        elif settings.in_cluster:
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(
                config_file=str(settings.kubeconfig) if settings.kubeconfig else None,
                context=settings.context,
                client_configuration=cfg,
                persist_config=False,
            )
    except (ConfigException, OSError) as exc:
        raise DeployError(f"Kubernetes API configuration unusable: {exc}") from exc
    cfg.debug = False  # the client's debug log prints request headers, the token among them
    return client.ApiClient(cfg)


def merged(target: Any, patch: Any) -> Any:
    """RFC 7386: ``target`` with ``patch`` applied (``None`` deletes a key, lists replace).

    >>> merged({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}})
    {'b': {'c': 2, 'd': 3}}
    """
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the API's ``Status`` body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason)


def _refused(resource: Resource, verb: str, exc: ApiException) -> DeployError:
    why = {
        401: "the API server refused the credentials (401 Unauthorized)",
        403: f"RBAC forbids {verb} (403 Forbidden); grant {verb} on {resource.plural}.{resource.group}",
        404: "it does not exist (404 Not Found)",
    }.get(exc.status, f"the API server answered {exc.status}")
    return DeployError(f"cannot {verb} {resource}: {why}: {_status_message(exc)}")


class CustomObjects:
    """GET and merge-PATCH of custom objects, errors turned into :class:`DeployError`."""

    def __init__(self, settings: KubernetesApiSettings) -> None:
        self.settings = settings
        self.api = client.CustomObjectsApi(api_client(settings))

    def _path(self, r: Resource) -> tuple[str, str, str, str, str]:
        return r.group, r.version, r.namespace, r.plural, r.name

    def get(self, resource: Resource) -> dict[str, Any]:
        return self._call(resource, "get", lambda: self.api.get_namespaced_custom_object(
            *self._path(resource), _request_timeout=self.settings.timeout_seconds
        ))  # fmt: skip

    def merge_patch(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(resource, "patch", lambda: self.api.patch_namespaced_custom_object(
            *self._path(resource), body,
            _content_type=MERGE_PATCH, _request_timeout=self.settings.timeout_seconds,
        ))  # fmt: skip

    def _call(self, resource: Resource, verb: str, call: Callable[[], Any]) -> dict[str, Any]:
        try:
            result = call()
        except ApiException as exc:
            raise _refused(resource, verb, exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise DeployError(f"cannot {verb} {resource}: API server unreachable: {exc}") from exc
        if not isinstance(result, dict):
            raise DeployError(f"cannot {verb} {resource}: the API answered {type(result)}")
        return result


class Conflicted(DeployError):
    """The object kept changing between our read and our patch."""


def patch_resource(objects: CustomObjects, resource: Resource, change: Change) -> bool:
    """Apply ``change(object)`` (a merge patch, ``None`` for nothing to do) guarded by the
    ``resourceVersion`` read; on 409 re-read and recompute. True when a patch was sent."""
    attempts = objects.settings.conflict_retries + 1
    for attempt in range(1, attempts + 1):
        current = objects.get(resource)
        patch = change(current)
        if patch is None or merged(current, patch) == current:
            return False
        version = current.get("metadata", {}).get("resourceVersion")
        body = merged(patch, {"metadata": {"resourceVersion": version}})
        try:
            objects.merge_patch(resource, body)
        except DeployError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 409):
                raise
            log.info(
                "%s changed since read (try %d of %d); re-reading", resource, attempt, attempts
            )
            continue
        log.info("patched %s: %s", resource, json.dumps(patch, sort_keys=True))
        return True
    raise Conflicted(f"{resource} kept changing: {attempts} patches answered 409 Conflict")
