"""A local Kubernetes API server for custom objects that refuses what the real one refuses.

``GET`` and ``PATCH`` of ``/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}``, in the
real server's order of checks: a bearer token (401), an RBAC rule per verb and resource
(403), the object (404), ``application/merge-patch+json`` only (415), a ``resourceVersion``
in the patch that is not the stored one (409 Conflict), then the CRD's validation (422
Invalid). Refusals carry a ``Status`` object, as the API does. A patch is applied with RFC 7386
semantics (written here apart from the product's own) and bumps ``resourceVersion`` and, when
the spec changed, ``generation``.

The validators stand for the CRDs' schemas and controllers: KServe's ``canaryTrafficPercent``
is an integer 0-100; a Seldon Experiment has candidates with non-negative integer weights and
its ``default`` among them (Seldon's scheduler refuses the rest; here the refusal is a 422).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = re.compile(r"^/apis/([^/]+)/([^/]+)/namespaces/([^/]+)/([^/]+)/([^/?]+)$")
Key = tuple[str, str, str, str, str]  # group, version, namespace, plural, name
Validator = Callable[[dict[str, Any]], str | None]


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2, as written there."""
    if not isinstance(patch, dict):
        return patch
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge(result.get(name), value)
    return result


def kserve_valid(obj: dict[str, Any]) -> str | None:
    percent = obj.get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
    if percent is not None and (not isinstance(percent, int) or not 0 <= percent <= 100):
        return f"spec.predictor.canaryTrafficPercent: Invalid value: {percent!r}: must be 0-100"
    return None


def seldon_valid(obj: dict[str, Any]) -> str | None:
    spec = obj.get("spec", {})
    candidates = spec.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return "spec.candidates: Required value: an experiment needs candidates"
    for c in candidates:
        if set(c) != {"name", "weight"} or not isinstance(c["weight"], int) or c["weight"] < 0:
            return f"spec.candidates: Invalid value: {c!r}"
    if spec.get("default") and spec["default"] not in {c["name"] for c in candidates}:
        return f"spec.default: Invalid value: {spec['default']!r} is not a candidate"
    return None


@dataclass
class Seen:
    method: str
    path: str
    content_type: str
    body: Any
    status: int


@dataclass
class KubeApi:
    """The server's state: objects, tokens (token -> user), granted (user, verb, plural)."""

    token: str = "dw-token-7f3a9c"
    user: str = "system:serviceaccount:ml:driftwatch"
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    granted: set[tuple[str, str, str]] = field(default_factory=set)
    validators: dict[str, Validator] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    before_patch: list[Callable[[], None]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _rv: int = 100

    def create(self, group: str, version: str, plural: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with self.lock:
            self._rv += 1
            meta.update(resourceVersion=str(self._rv), generation=1)
            self.objects[(group, version, meta["namespace"], plural, meta["name"])] = obj
            self.granted |= {(self.user, "get", plural), (self.user, "patch", plural)}

    def get(self, key: Key) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.objects[key])

    def write(self, key: Key, patch: dict[str, Any]) -> None:
        """Another writer's change (kubectl, a controller): stored and versioned."""
        with self.lock:
            old = self.objects[key]
            new = merge(old, patch)
            self._rv += 1
            new["metadata"]["resourceVersion"] = str(self._rv)
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"]["generation"] + 1
            self.objects[key] = new

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        match = PATH.match(path.split("?")[0])
        if not match:
            return _status(
                404, "NotFound", f"the server could not find the requested resource {path}"
            )
        group, _version, ns, plural, name = key = match.groups()  # type: ignore[assignment]
        resource = f'{plural}.{group} "{name}"'
        if headers.get("authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        verb = {"GET": "get", "PATCH": "patch"}.get(method)
        if verb is None:
            return _status(405, "MethodNotAllowed", f"{method} is not supported here")
        if (self.user, verb, plural) not in self.granted:
            return _status(403, "Forbidden", f'{resource} is forbidden: User "{self.user}" cannot '
                           f'{verb} resource "{plural}" in API group "{group}" in the namespace "{ns}"')  # fmt: skip
        with self.lock:
            if key not in self.objects:
                return _status(404, "NotFound", f"{resource} not found")
            if method == "GET":
                return 200, self.get(key)
            return self._patch(key, resource, headers.get("content-type", ""), raw)

    def _patch(self, key: Key, resource: str, content_type: str, raw: bytes) -> tuple[int, Any]:
        if content_type.split(";")[0].strip() != "application/merge-patch+json":
            return _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got {content_type!r})")  # fmt: skip
        for hook in self.before_patch:
            hook()
        patch = json.loads(raw)
        sent = (patch.get("metadata") or {}).get("resourceVersion")
        stored = self.objects[key]["metadata"]["resourceVersion"]
        if sent is not None and sent != stored:
            return _status(409, "Conflict", f"Operation cannot be fulfilled on {resource}: the object has been modified; please apply your changes to the latest version and try again")  # fmt: skip
        candidate = merge(self.objects[key], patch)
        problem = self.validators.get(key[3], lambda _: None)(candidate)
        if problem:
            return _status(422, "Invalid", f"{resource} is invalid: {problem}")
        self.write(key, patch)
        return 200, self.get(key)


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }  # fmt: skip


class KubeApiServer:
    """:class:`KubeApi` served over HTTP on 127.0.0.1 in a thread; a context manager."""

    def __init__(self, api: KubeApi | None = None) -> None:
        self.api = api or KubeApi(
            validators={"inferenceservices": kserve_valid, "experiments": seldon_valid}
        )
        owner = self.api

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, reply = owner.handle(self.command, self.path, headers, raw)
                with owner.lock:
                    body = json.loads(raw) if raw else None
                    ctype = headers.get("content-type", "")
                    owner.seen.append(Seen(self.command, self.path, ctype, body, status))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve()

            def do_PATCH(self) -> None:
                self._serve()

            def do_PUT(self) -> None:
                self._serve()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def patches(self) -> list[Seen]:
        return [s for s in self.api.seen if s.method == "PATCH"]

    def __enter__(self) -> KubeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def inference_service(namespace: str, name: str, storage_uri: str) -> dict[str, Any]:
    """A v1beta1 InferenceService as ``kubectl apply`` would leave it, first revision ready."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": storage_uri}}},
        "status": {"components": {"predictor": {"latestRolledoutRevision": f"{name}-predictor-00001"}}},
    }  # fmt: skip


def experiment(namespace: str, name: str, stable_model: str) -> dict[str, Any]:
    """A Seldon Core 2 Experiment whose default model takes all traffic."""
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"default": stable_model, "candidates": [{"name": stable_model, "weight": 100}]},
    }
