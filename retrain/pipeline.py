"""One retraining job end to end, as numbered steps:

1. claim the job (``queued -> running``) in its own transaction;
2. read the labelled production images of the period; keep ``holdout_fraction`` for the gate;
3. run the recipe (fine-tune on the rest plus a reference replay);
4. export to ONNX and check parity with torch; quantize to INT8 calibrated on recent production
   images; fail when INT8 accuracy drops more than allowed below FP32 on the held-out set;
5. publish the artifacts atomically and register the candidate with its figures;
6. run the offline gate against the current version and store the report;
7. on a pass, start the online canary rollout; on a refusal, mark the candidate failed.

Any error marks the job ``failed`` with the reason; no partial version is ever registered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import DriftwatchError, NotFound
from monitor.settings import Settings
from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import CanaryReport, ModelVersion
from monitor.store.versions import promoted_version
from retrain import jobs, observe, registry
from retrain.data import load_labelled, split_recent
from retrain.deploy import target_from_settings
from retrain.gate import GateReport, evaluate
from retrain.rollout import served_artifact, start

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    job_id: int
    state: str
    version: str | None = None
    gate_passed: bool | None = None
    rollout_id: int | None = None
    error: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def _throughput(sess: Any, x: np.ndarray, batch: int, repeats: int = 20) -> dict[str, float]:
    from retrain.export import INPUT, OUTPUTS

    xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])), dtype=np.float32)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(list(OUTPUTS), {INPUT: xb})
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def build_artifacts(
    net: Any, x_calib: np.ndarray, x_hold: np.ndarray, y_hold: np.ndarray, settings: Settings
) -> tuple[bytes, bytes, dict[str, Any]]:
    """(ONNX FP32, ONNX INT8, figures): export, parity, quantize, INT8 accuracy, format, timings."""
    from retrain.export import check_parity, export_onnx, session
    from retrain.quantize import choose_format, measure_int8, quantize_int8

    cfg = settings.retrain
    fp32 = export_onnx(net, x_calib[:2])
    parity = check_parity(net, fp32, x_calib[:256], cfg.parity_tolerance)
    int8 = quantize_int8(fp32, x_calib[:512])
    s32, s8 = session(fp32), session(int8)
    check = measure_int8(s32, s8, x_hold, y_hold, cfg.max_int8_accuracy_drop)
    choice = choose_format(
        fp32,
        int8,
        x_hold,
        cfg.serving_batch,
        cfg.serving_threads,
        cfg.int8_min_speedup,
        accuracy_refusal="" if check.ok else check.reason(),
    )
    figures = {
        "parity": {
            "max_abs_logits": parity.max_abs_logits,
            "max_abs_embedding": parity.max_abs_embedding,
            "tolerance": cfg.parity_tolerance,
        },
        "accuracy": {"fp32": check.fp32_accuracy, "int8": check.int8_accuracy, "n": check.n},
        "size_bytes": {"fp32": len(fp32), "int8": len(int8)},
        "latency": {
            f"{kind}_b{b}": _throughput(s, x_hold, b)
            for kind, s in (("fp32", s32), ("int8", s8))
            for b in (1, 32)
        },
        "format": choice.to_dict(),
    }
    return fp32, int8, figures


def publish_version(
    session: Session,
    store: registry.ArtifactStore,
    model: str,
    version: str,
    net: Any,
    x_calib: np.ndarray,
    x_hold: np.ndarray,
    y_hold: np.ndarray,
    settings: Settings,
    **register_kw: Any,
) -> ModelVersion:
    """Build, publish atomically and register ``version`` of ``model`` from a torch ``net``."""
    from retrain.recipes import state_bytes

    fp32, int8, figures = build_artifacts(net, x_calib, x_hold, y_hold, settings)
    with store.stage(model, version) as st:
        st.write("torch", "model.pt", state_bytes(net))
        st.write("onnx_fp32", "model.fp32.onnx", fp32)
        st.write("onnx_int8", "model.int8.onnx", int8)
    metrics = {**register_kw.pop("metrics", {}), **figures}
    observe.version_figures(model, version, figures)
    return registry.register(session, model, version, st.artifacts, metrics=metrics, **register_kw)


def register_baseline(
    settings: Settings,
    sessions: sessionmaker[Session],
    model: str,
    version: str,
    net: Any,
    images: np.ndarray,
    labels: np.ndarray,
    to_input: Callable[[np.ndarray], np.ndarray] | None = None,
) -> ModelVersion:
    """Register an already-trained model as the promoted version (the first one a rollout uses)."""
    from retrain.recipes import digits_input

    prep = to_input or digits_input
    x = prep(images)
    store = registry.ArtifactStore.from_settings(settings.retrain)
    with unit_of_work(sessions) as session:
        return publish_version(
            session,
            store,
            model,
            version,
            net,
            x,
            x,
            labels,
            settings,
            state="promoted",
            recipe="baseline",
        )


def _load_base(store: registry.ArtifactStore, mv: ModelVersion | None) -> bytes | None:
    return (
        None if mv is None or "torch" not in mv.artifacts else store.path(mv, "torch").read_bytes()
    )


def run_job(
    settings: Settings,
    sessions: sessionmaker[Session],
    job_id: int | None = None,
    *,
    progress: bool = True,
    target: Any = None,
) -> JobOutcome | None:
    """Run job ``job_id`` (or the oldest queued one); returns None when there is nothing to do."""

    cfg = settings.retrain
    store = registry.ArtifactStore.from_settings(cfg)
    store.clean_staging()
    with unit_of_work(sessions) as session:
        if job_id is None:
            claimed = jobs.claim_next(session)
            if claimed is None:
                return None
        else:
            claimed = jobs.transition(session, jobs.get_job(session, job_id), "running", "started")
        job_id, model, params = claimed.id, claimed.model, dict(claimed.params)
    try:
        return _run(
            settings,
            sessions,
            store,
            job_id,
            model,
            params,
            progress,
            target or target_from_settings(cfg),
        )
    except BaseException as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("retrain job %s failed: %s", job_id, reason)
        with unit_of_work(sessions) as session:
            job = jobs.transition(session, jobs.get_job(session, job_id), "failed", reason)
            if job.candidate_version is not None:  # registered before the crash: never serve it
                mv = registry.get_version(session, model, job.candidate_version)
                if mv.state == "candidate":
                    registry.set_state(session, mv, "failed", f"job {job_id} failed: {reason}")
        if not isinstance(exc, Exception):
            raise
        return JobOutcome(job_id=job_id, state="failed", error=reason)


def _inputs(
    settings: Settings,
    sessions: sessionmaker[Session],
    store: registry.ArtifactStore,
    model: str,
    params: dict[str, Any],
) -> tuple[Any, Any, Any, str]:
    """The labelled production data, the current version's weights, served ONNX and name."""
    cfg = settings.retrain
    with unit_of_work(sessions) as session:
        data = load_labelled(
            session, model, since=_ts(params.get("since")), until=_ts(params.get("until"))
        )
        current = promoted_version(session, model)
        if current is None:
            raise NotFound(f"model {model} has no promoted version to retrain from")
        base = _load_base(store, current)
        current_onnx = store.path(current, served_artifact(current))
        current_version = current.version
    if len(data) < cfg.min_labelled:
        raise DriftwatchError(
            f"only {len(data)} labelled production images with thumbnails "
            f"(need {cfg.min_labelled}); skipped {data.skipped}"
        )
    return data, base, current_onnx, current_version


def _run(
    settings: Settings,
    sessions: sessionmaker[Session],
    store: registry.ArtifactStore,
    job_id: int,
    model: str,
    params: dict[str, Any],
    progress: bool,
    target: Any,
) -> JobOutcome:
    from retrain.export import session as ort_session
    from retrain.recipes import RecipeInput, load_recipe

    cfg = settings.retrain
    data, base, current_onnx, current_version = _inputs(settings, sessions, store, model, params)
    seed = int(params.get("seed", cfg.seed))
    train, hold = split_recent(data, cfg.holdout_fraction, seed)
    recipe_name = str(params.get("recipe", cfg.recipe))
    recipe = load_recipe(recipe_name)
    out = recipe(
        RecipeInput(
            images=train.images,
            labels=train.labels,
            base_weights=base,
            params={**cfg.recipe_params, **params.get("recipe_params", {})},
            seed=seed,
            progress=progress,
        )
    )
    x_train, x_hold = out.to_input(train.images), out.to_input(hold.images)
    version = f"{current_version.split('-r')[0]}-r{job_id}"
    with unit_of_work(sessions) as session:
        mv = publish_version(
            session,
            store,
            model,
            version,
            out.net,
            x_train,
            x_hold,
            hold.labels,
            settings,
            state="candidate",
            parent_version=current_version,
            job_id=job_id,
            recipe=recipe_name,
            params=out.params,
            metrics={"history": out.history, "n_train": len(train), "n_holdout": len(hold)},
        )
        job = jobs.get_job(session, job_id)
        job.candidate_version = version
        figures = dict(mv.metrics)
        cand_path = store.path(mv, served_artifact(mv))
        sizes = {
            "candidate": mv.artifacts[served_artifact(mv)]["bytes"],
            "current": current_onnx.stat().st_size,
        }
    ref_x, ref_y = out.reference_holdout
    report = evaluate(
        ort_session(cand_path),
        ort_session(current_onnx),
        (x_hold, hold.labels),
        (out.to_input(ref_x), ref_y),
        sizes,
        cfg,
        formats=figures.get("format", {}),
    )
    observe.gate_agreement(model, report.agreement_recent)
    return _conclude(
        settings,
        sessions,
        store,
        target,
        job_id,
        model,
        (version, current_version),
        report,
        figures,
    )


def _conclude(
    settings: Settings,
    sessions: sessionmaker[Session],
    store: registry.ArtifactStore,
    target: Any,
    job_id: int,
    model: str,
    versions: tuple[str, str],
    report: GateReport,
    figures: dict[str, Any],
) -> JobOutcome:
    """Store the gate report; fail the job on a refusal, else start the canary rollout."""
    version, current_version = versions
    with unit_of_work(sessions) as session:
        session.add(
            CanaryReport(
                model=model,
                candidate_version=version,
                current_version=current_version,
                job_id=job_id,
                passed=report.passed,
                reasons=report.reasons,
                report=report.to_dict(),
            )
        )
        mv = registry.get_version(session, model, version)
        job = jobs.get_job(session, job_id)
        if not report.passed:
            registry.set_state(session, mv, "failed", "; ".join(report.reasons))
            jobs.transition(
                session,
                job,
                "failed",
                "offline gate refused the candidate: " + "; ".join(report.reasons),
            )
            return JobOutcome(
                job_id, "failed", version, False, error="; ".join(report.reasons), figures=figures
            )
        rollout = start(session, settings, store, target, mv)
        jobs.transition(
            session,
            job,
            "succeeded",
            f"candidate {version} passed the gate; canary rollout {rollout.id} started",
        )
        return JobOutcome(job_id, "succeeded", version, True, rollout.id, figures=figures)


def _ts(value: Any) -> Any:
    from datetime import datetime

    return None if value is None else datetime.fromisoformat(str(value))
