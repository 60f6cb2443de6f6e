"""The canary verdict for rollout tools that move the traffic themselves.

- ``GET /canary/{model}/verdict?stable=<arm>&canary=<arm>``: Argo Rollouts' ``web`` metric
  provider (the arms are the two ``rollouts-pod-template-hash`` values the SDK logs). Always
  200 with the JSON verdict (``verdict``, ``ready``, ``reason``, per-arm figures,
  ``thresholds``); a non-2xx status means Driftwatch itself is broken (its database is down).
  Each answer also sets the ``driftwatch_canary_verdict`` gauge for Argo's and Flagger's
  ``prometheus`` providers.
- ``POST /canary/flagger/{hook}`` for Flagger webhooks (``rollout``,
  ``confirm-traffic-increase``, ``confirm-promotion``): Flagger's payload, the model and arms in
  its ``metadata``. ``rollout`` answers 2xx unless the verdict is rollback (Flagger counts a
  failed check and rolls back at its threshold); the confirm hooks answer 2xx only on advance,
  anything else holds the weight (Flagger pauses until 2xx).

The evidence period starts at the canary arm's first log within ``lookback_s``; both arms are
read over that same period, and the wait is measured from it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from monitor.api.deps import NamePath, require_read, session_dep
from monitor.schemas import NAME_PATTERN
from monitor.settings import Settings
from monitor.store.logs import first_log_time
from monitor.store.versions import promoted_version
from retrain import observe
from retrain.evidence import Arm, gather_arms
from retrain.verdict import Thresholds, Verdict, decide

router = APIRouter(tags=["canary"], dependencies=[Depends(require_read)])

SCHEMA = "driftwatch.canary.v1"
Hook = Literal["rollout", "confirm-traffic-increase", "confirm-promotion"]


def canary_verdict(
    session: Session,
    settings: Settings,
    model: str,
    stable: str,
    canary: str,
    max_wait_s: float | None = None,
    lookback_s: float = 86400.0,
) -> Verdict:
    """The verdict of arm ``canary`` against arm ``stable`` of ``model``, now."""
    now = datetime.now(UTC)
    first = first_log_time(session, model, canary, now - timedelta(seconds=lookback_s))
    if first is not None and first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    start = first or now
    ref = promoted_version(session, model)
    s, c, found = gather_arms(
        session,
        settings.detectors,
        model,
        Arm(stable),
        Arm(canary),
        start,
        now,
        reference_version=None if ref is None else ref.version,
    )
    v = decide(
        s,
        c,
        Thresholds.of(settings.retrain, max_wait_s),
        found,
        (now - start).total_seconds(),
    )
    observe.canary_verdict(model, stable, canary, v.verdict)
    return v


def _finite(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


class VerdictOut(BaseModel):
    """The canary verdict as every door serves it (Argo's web provider reads these fields)."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="schema", description=f"always {SCHEMA!r}")
    model: str
    arms: dict[str, str] = Field(description="the two arms compared: stable and canary")
    verdict: Literal["advance", "wait", "rollback"]
    ready: bool = Field(description="false while the verdict is wait")
    reason: str
    stable: dict[str, Any] = Field(description="the stable arm's figures")
    canary: dict[str, Any] = Field(description="the canary arm's figures")
    thresholds: dict[str, Any]
    waited_s: float
    detectors: list[dict[str, Any]] = Field(default_factory=list)


class FlaggerAnswer(VerdictOut):
    """A Flagger webhook's answer: the verdict plus what Flagger asked about."""

    hook: str
    target: str
    phase: str


def _body(v: Verdict, model: str, stable: str, canary: str) -> dict[str, Any]:
    body: dict[str, Any] = _finite(v.to_dict())
    return {"schema": SCHEMA, "model": model, "arms": {"stable": stable, "canary": canary}, **body}


@router.get(
    "/canary/{model}/verdict",
    summary="Canary verdict of two arms (Argo Rollouts web metric provider).",
    responses={503: {"description": "Driftwatch's database is unreachable"}},
    response_model=VerdictOut,
    response_model_by_alias=True,
)
def verdict_route(
    model: NamePath,
    request: Request,
    session: Annotated[Session, Depends(session_dep)],
    stable: Annotated[str, Query(pattern=NAME_PATTERN, description="the stable arm")],
    canary: Annotated[str, Query(pattern=NAME_PATTERN, description="the canary arm")],
    max_wait_s: Annotated[float | None, Query(gt=0, le=30 * 86400)] = None,
    lookback_s: Annotated[float, Query(gt=0, le=366 * 86400)] = 86400.0,
) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    v = canary_verdict(session, settings, model, stable, canary, max_wait_s, lookback_s)
    return _body(v, model, stable, canary)


class FlaggerPayload(BaseModel):
    """What Flagger POSTs to a webhook (``metadata`` is the webhook's own string map)."""

    name: str
    namespace: str
    phase: str
    checksum: str | None = None
    type: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


def _status(hook: Hook, outcome: str) -> int:
    if hook == "rollout":
        return 412 if outcome == "rollback" else 200
    return 200 if outcome == "advance" else 403


@router.post(
    "/canary/flagger/{hook}",
    summary="Flagger webhook: 2xx lets the canary go on, anything else holds or fails it.",
    responses={
        200: {"model": FlaggerAnswer},
        403: {
            "model": FlaggerAnswer,
            "description": "confirm hook: wait or rollback; Flagger holds",
        },
        412: {"model": FlaggerAnswer, "description": "rollout hook: rollback; a failed check"},
    },
)
def flagger_route(
    hook: Hook,
    payload: FlaggerPayload,
    request: Request,
    session: Annotated[Session, Depends(session_dep)],
) -> JSONResponse:
    settings: Settings = request.app.state.settings
    meta = payload.metadata
    model = meta.get("model", payload.name)
    stable, canary = meta.get("stable", "stable"), meta.get("canary", "canary")
    try:
        max_wait = float(meta["max_wait_s"]) if "max_wait_s" in meta else None
    except ValueError:
        return JSONResponse({"detail": "metadata.max_wait_s must be a number"}, status_code=400)
    v = canary_verdict(session, settings, model, stable, canary, max_wait)
    body = {"hook": hook, "target": f"{payload.namespace}/{payload.name}", "phase": payload.phase}
    return JSONResponse(
        {**body, **_body(v, model, stable, canary)}, status_code=_status(hook, v.verdict)
    )
