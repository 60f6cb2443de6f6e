"""What the SDK reads from the environment: where Kafka is, which model this is, and which
revision of it the rollout platform is running (so a canary verdict can tell the arms apart
without code in the model server).

Revisions, first found wins:

=============================  ===================================================  ============
variable                       set by                                               ``platform``
=============================  ===================================================  ============
``DRIFTWATCH_REVISION``        you                                                  ``custom``
``ROLLOUTS_POD_TEMPLATE_HASH`` Argo Rollouts: the pod label ``rollouts-pod-         ``argo-
                               template-hash`` exposed through the downward API     rollouts``
``K_REVISION``                 Knative Serving (and KServe serverless) on every     ``knative``
                               revision's container
``PREDICTOR_ID``               Seldon Core v1: the predictor's name                 ``seldon``
``MLSERVER_MODEL_NAME``        Seldon Core 2 / MLServer: the model's name           ``seldon``
=============================  ===================================================  ============

>>> platform_revision({"K_REVISION": "digits-00002"})
('knative', 'digits-00002')
>>> platform_arm({"PREDICTOR_ID": "canary"}), platform_arm({"K_REVISION": "x"})
('canary', None)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from driftwatch_sdk.encode import Arm

#: (environment variable, platform name), in the order they are tried.
REVISION_SOURCES: tuple[tuple[str, str], ...] = (
    ("DRIFTWATCH_REVISION", "custom"),
    ("ROLLOUTS_POD_TEMPLATE_HASH", "argo-rollouts"),
    ("K_REVISION", "knative"),
    ("PREDICTOR_ID", "seldon"),
    ("MLSERVER_MODEL_NAME", "seldon"),
)
_ARMS = ("stable", "canary")


def platform_revision(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """``(platform, revision)`` of the first revision variable set, or None."""
    env = os.environ if env is None else env
    for var, platform in REVISION_SOURCES:
        value = env.get(var, "").strip()
        if value:
            return platform, value
    return None


def platform_arm(env: Mapping[str, str] | None = None) -> Arm | None:
    """``DRIFTWATCH_ARM``, else the revision when it is literally ``stable`` or ``canary``
    (Seldon predictors are often named so); None when the platform does not say."""
    env = os.environ if env is None else env
    explicit = env.get("DRIFTWATCH_ARM", "").strip().lower()
    if explicit:
        if explicit not in _ARMS:
            raise ValueError(f"DRIFTWATCH_ARM={explicit!r}, expected stable or canary")
        return explicit  # type: ignore[return-value]
    found = platform_revision(env)
    if found and found[1].lower() in _ARMS:
        return found[1].lower()  # type: ignore[return-value]
    return None


def env_tags(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``DRIFTWATCH_TAGS`` (a JSON object or ``k=v,k=v``) plus ``revision`` and ``platform``
    from :func:`platform_revision`.

    >>> env_tags({"DRIFTWATCH_TAGS": "site=lyon,camera=dock-3", "K_REVISION": "r2"})
    {'site': 'lyon', 'camera': 'dock-3', 'revision': 'r2', 'platform': 'knative'}
    """
    env = os.environ if env is None else env
    text = env.get("DRIFTWATCH_TAGS", "").strip()
    tags: dict[str, str] = {}
    if text.startswith("{"):
        tags = {str(k): str(v) for k, v in json.loads(text).items()}
    elif text:
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"DRIFTWATCH_TAGS entry {part!r} is not key=value")
            tags[key.strip()] = value.strip()
    found = platform_revision(env)
    if found:
        tags.setdefault("revision", found[1])
        tags.setdefault("platform", found[0])
    return tags


def kafka_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Logger keyword arguments from the variables the server's settings use
    (``DRIFTWATCH_KAFKA__BOOTSTRAP_SERVERS``, ``__PREDICTIONS_TOPIC``, ``__LABELS_TOPIC``,
    ``__CLIENT_ID``, ``__SECURITY_PROTOCOL``, ``__SASL_MECHANISM``, ``__SASL_USERNAME``,
    ``__SASL_PASSWORD``)."""
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        value = env.get(f"DRIFTWATCH_KAFKA__{name}", "").strip()
        return value or None

    out: dict[str, Any] = {}
    servers = get("BOOTSTRAP_SERVERS")
    if servers:
        out["bootstrap_servers"] = [s.strip() for s in servers.split(",") if s.strip()]
    for name in ("PREDICTIONS_TOPIC", "LABELS_TOPIC"):
        if get(name):
            out[name.lower()] = get(name)
    client: dict[str, Any] = {}
    for name, key in (
        ("CLIENT_ID", "client_id"),
        ("SECURITY_PROTOCOL", "security_protocol"),
        ("SASL_MECHANISM", "sasl_mechanism"),
        ("SASL_USERNAME", "sasl_plain_username"),
        ("SASL_PASSWORD", "sasl_plain_password"),
    ):
        if get(name):
            client[key] = get(name)
    if client:
        out["client_config"] = client
    return out
