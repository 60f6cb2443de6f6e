"""The demo's last act (``driftwatch demo``): close the loop after the drift alert.

:func:`close_loop` is an ``after_alert`` stage of :func:`monitor.demo.run.run_demo`: it runs
:func:`monitor.demo.retrain_stage.close_the_loop` on the demo's camera (blur + brightness) with the
job the policy queued for the page (fresh labelled traffic -> retrain -> ONNX INT8 -> offline
gate -> staged canary 5 -> 25 -> 50 -> 100% -> promotion), evaluating windows as traffic flows.
Its labelled traffic goes through the SDK -> broker -> ingest worker path like the rest of the
demo (thumbnails included, which retraining reads back). The promoted version then gets its own
reference profile, fitted on the images it was trained on (passed through itself), so its windows
on the still-changed camera are judged against what it was built for; when they are clean, the
old version's alert resolves (:mod:`monitor.policy.supersede`). :func:`print_loop` adds the
figures to the final timeline.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor.demo.retrain_stage import SdkEmitter, serve_labelled
from monitor.demo.retrain_stage import close_the_loop as run_loop
from monitor.demo.run import _evaluate, _wait_stored, run_demo
from monitor.demo.state import WINDOW, Demo, Phase
from monitor.evaluate import switch_profile
from monitor.profiles import fit_profile_from_batch
from monitor.store.alerts_repo import any_firing
from monitor.store.db import unit_of_work
from monitor.store.jobs_repo import first_job_from
from monitor.store.logs import _logs_to_batch
from monitor.store.rollouts_repo import recent_rollouts
from monitor.store.windows_repo import earliest_start
from retrain.data import load_labelled
from retrain.gate import gate_report
from retrain.jobs import get_job
from retrain.recipes import digits_input
from retrain.server import ModelServer

if TYPE_CHECKING:
    from monitor.schemas import PredictionLog

MODEL = "digits"
SHIFT = "camera"  # retrain.digits.SHIFTS["camera"]: the demo's camera change
AFTER_WINDOWS = 4  # windows served by the promoted version, at most, for the alert to resolve


def _phase_now(demo: Demo) -> str:
    with demo.factory() as s:
        ro = next(iter(recent_rollouts(s, limit=1)), None)
    if ro is None:
        return "fresh labels"
    return f"canary {ro.plan[ro.step_index]}%" if ro.state == "running" else f"{ro.state}"


class _Emitter:
    """Send the served logs through the SDK -> broker -> ingest worker path, like the rest of
    the demo, wait until they are stored, and evaluate the windows they close."""

    def __init__(self, demo: Demo) -> None:

        assert demo.settings is not None
        self.demo = demo
        self.sdk = SdkEmitter(demo.settings, self._stored)

    def _stored(self, n: int) -> None:

        self.demo.logged += n
        _wait_stored(self.demo, self.demo.logged)

    def __call__(self, logs: list[PredictionLog]) -> None:

        self.sdk(logs)
        _evaluate(self.demo, Phase(_phase_now(self.demo), 0))


def _policy_trigger(demo: Demo) -> str:
    """The trigger key of the job the policy queued for the page (so no second job is made)."""
    with demo.factory() as s:
        job = first_job_from(s, MODEL, "policy")
    return "demo-drift" if job is None else job.trigger_key.split(":", 2)[2]


def fit_own_reference(demo: Demo, version: str, job_id: int) -> int:
    """Fit and activate ``version``'s reference on the labelled images its job trained on,
    as served by ``version`` itself; returns how many logs it was fitted on."""

    assert demo.settings is not None
    with demo.factory() as s:
        job = get_job(s, job_id)
        began = datetime.fromisoformat(
            next(h["ts"] for h in job.history if h["state"] == "running")
        )
        # the changed camera's images only (earlier traffic sent normal-camera thumbnails too)
        data = load_labelled(s, MODEL, since=_camera_changed_at(demo), until=began)
    server = ModelServer(demo.settings.retrain.deployment_spec_path, digits_input)
    if server.reload().stable.version != version:
        raise click.ClickException(f"{version} is not the deployed stable version")
    logs = server.predict(data.images, [f"ref-{i}" for i in data.ids], data.labels.tolist())
    batch = _logs_to_batch(logs, f"{version} training images")
    with unit_of_work(demo.factory) as s:
        row = fit_profile_from_batch(
            s,
            demo.settings,
            MODEL,
            version,
            batch,
            "trained-on",
            {"job_id": job_id, "images": len(logs)},
        )
        switch_profile(s, row.id)
    return len(logs)


def _camera_changed_at(demo: Demo) -> datetime | None:
    """When the first window of the changed camera began (None before the change)."""
    ids = [w for w, phase in demo.window_phase.items() if phase == "camera changed"]
    with demo.factory() as s:
        return earliest_start(s, ids)


def _incident_open(demo: Demo) -> bool:
    with demo.factory() as s:
        return any_firing(s)


def close_loop(demo: Demo) -> None:
    """Retrain -> INT8 -> gate -> canary -> promotion, then the promoted version's windows."""
    trigger = _policy_trigger(demo)
    demo.say(
        f"--- closing the loop: retrain job for '{trigger}' on fresh labels of the changed camera"
    )
    emit = _Emitter(demo)
    try:
        _close_loop(demo, trigger, emit)
    finally:
        emit.sdk.close()


def _close_loop(demo: Demo, trigger: str, emit: _Emitter) -> None:
    import torch

    assert demo.settings is not None
    torch.set_num_threads(2)
    out = run_loop(
        demo.settings,
        demo.factory,
        MODEL,
        shift=SHIFT,
        trigger=trigger,
        baseline=demo.net,
        n_fresh=600,
        emit=emit,
        log=lambda line: demo.say("  " + line),
        seed=1,
    )
    demo.loop = dict(out)
    demo.fix_camera = False  # the new model copes with the changed camera: leave it changed
    if out["state"] != "promoted":
        demo.say(f"the candidate was not promoted ({out['state']}): the alert stays open")
        return
    version = str(out["version"])
    n_ref = fit_own_reference(demo, version, int(out["job"]))
    demo.say(
        f"reference of {version} fitted on the {n_ref} labelled images it was trained on "
        "(served by itself) and activated"
    )
    phase = Phase(f"{version} promoted", AFTER_WINDOWS, 0.25, 1.0)
    demo.say(f"--- {phase.name}: camera still changed ({phase.camera})")
    _evaluate(demo, phase)
    for i in range(AFTER_WINDOWS):
        if not _incident_open(demo):
            break
        serve_labelled(
            demo.settings,
            demo.factory,
            MODEL,
            WINDOW,
            shift=SHIFT,
            seed=100 + i,
            prefix=f"after-{i}",
            emit=emit.sdk,
        )
        _evaluate(demo, phase)
    demo.loop["resolved"] = not _incident_open(demo)


def print_loop(demo: Demo) -> None:
    """The retrain loop's figures, step by step, under the timeline."""

    loop = demo.loop
    click.echo("\nRetrain loop")
    click.echo("-" * 78)
    if "figures" not in loop:
        click.echo(f"job {loop.get('job')} {loop.get('state')}: {loop.get('error')}")
        return
    f = loop["figures"]
    a, size, lat = f["accuracy"], f["size_bytes"], f["latency"]
    click.echo(f"1. drift alert -> retrain job {loop['job']} on fresh labelled camera traffic")
    click.echo(
        f"2. candidate {loop['version']}: held-out accuracy FP32 {a['fp32']:.1%}, "
        f"INT8 {a['int8']:.1%} (n={a['n']})"
    )
    click.echo(
        f"3. INT8: size {size['fp32'] / 1024:.0f} -> {size['int8'] / 1024:.0f} KiB; "
        f"latency p50 batch 1 {lat['fp32_b1']['p50_ms']:.2f} -> "
        f"{lat['int8_b1']['p50_ms']:.2f} ms, batch 32 {lat['fp32_b32']['p50_ms']:.2f} -> "
        f"{lat['int8_b32']['p50_ms']:.2f} ms"
    )
    with unit_of_work(demo.factory) as s:
        report = gate_report(s, MODEL, str(loop["version"]))
    click.echo("4. offline gate: " + report.replace("\n", "\n   "))
    click.echo("5. canary rollout (arm accuracy on live labelled traffic):")
    for st in loop["steps"]:
        acc = (
            ""
            if st["canary_accuracy"] is None or st["stable_accuracy"] is None
            else f"stable {st['stable_accuracy']:.1%} vs canary {st['canary_accuracy']:.1%}; "
        )
        click.echo(f"   {st['weight']:>3}%: {st['outcome']:<8} {acc}{st['reason']}")
    click.echo(
        f"6. {loop['state']}: accuracy on the changed camera {loop['accuracy_before']:.1%}"
        f" -> {loop['accuracy_after']:.1%} ({loop['seconds']:.0f} s for steps 1-5)"
    )
    click.echo(
        "7. drift "
        + (
            "resolved: the promoted version's windows are clean against its own reference"
            if loop.get("resolved")
            else "NOT resolved"
        )
    )


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the demo's database and logs go (wiped first).",
)
def demo(workdir: Path) -> None:
    """Detect a camera change, page once, retrain, canary, promote, resolve (< 3 min)."""
    import logging

    if logging.getLogger().level > logging.DEBUG:  # keep the story readable unless -v
        logging.getLogger().setLevel(logging.WARNING)
        for noisy in ("kafka", "monitor.evaluate"):  # canary windows wait for a reference
            logging.getLogger(noisy).setLevel(logging.ERROR)
    run_demo(after_alert=[close_loop], workdir=workdir, after_timeline=[print_loop])
