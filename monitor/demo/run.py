"""``driftwatch demo`` (``make demo``): the detect-and-alert loop on embedded defaults.

A small CNN trained on scikit-learn's digits serves simulated traffic and logs every prediction
through the SDK into a local Kafka-protocol broker; the ingest worker stores it in SQLite under
``var/``; the reference is fitted from clean traffic; after a few clean windows the "camera"
changes (brighter and blurred); the evaluator detects it and estimates the accuracy it costs
(without labels), the policy pages once, a local webhook receiver prints the alert with the
estimated drop, and the worst images of the paging window are written as an HTML page; the
camera is fixed, the alert resolves; a timeline closes the run.

The run is a list of stages (functions of one :class:`Demo`), so later work can append its own:
``run_demo(after_alert=[my_stage])`` runs ``my_stage(demo)`` after the alert stages (the
retrain -> INT8 canary -> rollout -> promotion stage goes there). Stages run in this order:
``start_services, train_model, fit_reference, clean_traffic, camera_change, *after_alert,
camera_fixed, print_timeline``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np

from ingest.broker import LocalBroker
from ingest.sdk import PredictionLogger
from ingest.worker import IngestWorker
from monitor.alerts.channels.webhook import verify
from monitor.demo.impact import estimate_note, say_calibration, write_worst_images
from monitor.demo.receiver import Receiver
from monitor.demo.state import PHASES, SECRET, WINDOW, Demo, Phase, Stage
from monitor.demo.timeline import print_timeline
from monitor.profiles import fit_profile_from_store
from monitor.scheduler import Evaluator
from monitor.settings import (
    AlertSettings,
    DatabaseSettings,
    KafkaSettings,
    PolicySettings,
    RetrainSettings,
    Settings,
    WebhookChannel,
    WindowSettings,
)
from monitor.store import migrate
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.drift_queries import window_results
from monitor.store.windows_repo import count_logs, windows_except
from retrain.digits import blur, brightness_contrast, train_holdout

# ---------------------------------------------------------------- stages


def start_services(demo: Demo) -> None:
    """Local broker, fresh SQLite database, webhook receiver, ingest worker."""

    shutil.rmtree(demo.workdir, ignore_errors=True)
    demo.workdir.mkdir(parents=True)
    demo.broker = LocalBroker(log_path=demo.workdir / "broker.log").start()
    kafka = KafkaSettings(bootstrap_servers=[demo.broker.bootstrap])
    demo.broker.create_topics(
        [kafka.predictions_topic, kafka.labels_topic, kafka.dead_letter_topic]
    )
    demo.receiver = Receiver(on_request=_print_alert).__enter__()
    db_url = f"sqlite:///{demo.workdir / 'driftwatch.db'}"
    migrate.upgrade(db_url)
    demo.settings = Settings(
        environment="dev",
        kafka=kafka,
        database=DatabaseSettings(url=db_url),
        windows=WindowSettings(max_count=WINDOW, min_count=50, max_seconds=3600),
        policy=PolicySettings(windows_to_warn=1, windows_to_alert=2, windows_to_resolve=2),
        alerts=AlertSettings(
            channels=[
                WebhookChannel(
                    name="oncall-webhook", url=demo.receiver.url + "/alerts", secret=SECRET
                )
            ]
        ),
        retrain=RetrainSettings(
            registry_dir=demo.workdir / "registry",
            deployment_spec_path=demo.workdir / "deployment.json",
            step_min_logs=100,
            min_arm_labels=50,
        ),
    )
    demo.engine = make_engine(demo.settings.database)
    demo.factory = session_factory(demo.engine)
    demo.worker = IngestWorker(demo.settings, engine=demo.engine)
    demo.worker_thread = threading.Thread(target=demo.worker.run, args=(demo.stop,), daemon=True)
    demo.worker_thread.start()
    demo.evaluator = Evaluator(demo.engine, demo.settings, settle_seconds=0)
    demo.say(
        f"broker on {demo.broker.bootstrap}, store {db_url}, "
        f"webhook receiver on {demo.receiver.url}"
    )


def train_model(demo: Demo) -> None:
    """Train the small CNN on the digits training split."""
    import torch

    from retrain.model import DigitsNet, predict, train_classifier

    torch.set_num_threads(2)
    train, holdout = train_holdout(seed=0)
    cache = demo.workdir.parent / "demo-digits-cnn-v1.pt"
    demo.net = None
    if cache.is_file():
        try:
            net = DigitsNet()
            net.load_state_dict(torch.load(cache, weights_only=True))
            demo.net = net.eval()
            demo.say(f"loaded the digits CNN trained by an earlier run ({cache})")
        except (RuntimeError, OSError, ValueError):  # an older architecture: train again
            demo.net = None
    if demo.net is None:
        demo.say(f"training the digits CNN on {len(train.labels)} images ...")
        demo.net = train_classifier(train.images, train.labels, epochs=10, seed=0)
        torch.save(demo.net.state_dict(), cache)
    demo.images, demo.labels = holdout.images, holdout.labels

    probs, _ = predict(demo.net, holdout.images)
    accuracy = float((probs.argmax(1) == holdout.labels).mean())
    demo.say(f"model digits v1 ready: holdout accuracy {accuracy:.1%}")


def serve_window(demo: Demo, phase: Phase) -> None:
    """Serve one window of traffic through the camera of ``phase`` and log it via the SDK."""
    from retrain.model import predict

    assert demo.images is not None and demo.labels is not None
    idx = demo.rng.integers(0, len(demo.labels), WINDOW)
    images = demo.images[idx]
    if phase.blur:
        images = blur(images, phase.blur)
    if phase.brightness:
        images = brightness_contrast(images, brightness=phase.brightness)
    probs, emb = predict(demo.net, images)
    # Each window stands for one simulated minute of traffic, in ten slices.
    minute = demo.clock + timedelta(minutes=1)
    for part in np.array_split(np.arange(WINDOW), 10):
        demo.clock += timedelta(seconds=6)
        demo.logger.log_batch(
            probs[part],
            embeddings=emb[part],
            images=images[part],
            labels=demo.labels[idx[part]].tolist(),
            timestamp=demo.clock,
        )
    demo.clock = minute
    demo.logger.flush()
    demo.logged += WINDOW
    _wait_stored(demo, demo.logged)


def fit_reference(demo: Demo) -> None:
    """Log clean traffic, then fit and activate the reference profile from it."""

    assert demo.settings is not None
    demo.logger = PredictionLogger(
        demo.settings.kafka, "digits", "v1", embedding_dtype="float32", send_thumbnails=True
    )
    phase = PHASES[0]
    for _ in range(phase.windows):
        serve_window(demo, phase)
    with unit_of_work(demo.factory) as session:
        profile = fit_profile_from_store(
            session, demo.settings, "digits", "v1", None, None, "clean-traffic", activate=True
        )
        n_ref = profile.n_ref
        profile_id = profile.id
    demo.say(f"reference profile fitted on {n_ref} clean logs and activated")
    say_calibration(demo, profile_id)
    _evaluate(demo, phase)


def run_phase(demo: Demo, phase: Phase) -> None:
    """Serve ``phase.windows`` windows through its camera, evaluating after each."""
    demo.say(f"--- {phase.name}: {phase.camera}")
    for _ in range(phase.windows):
        serve_window(demo, phase)
        _evaluate(demo, phase)


def clean_traffic(demo: Demo) -> None:
    """A few windows like the reference: nothing should happen."""
    run_phase(demo, PHASES[1])


def camera_change(demo: Demo) -> None:
    """The camera gets brighter and blurred: the monitor warns, then pages once."""
    demo.shifted = PHASES[2]
    run_phase(demo, PHASES[2])
    write_worst_images(demo)


def camera_fixed(demo: Demo) -> None:
    """The camera is fixed (unless an after-alert stage cleared ``demo.fix_camera``)."""
    if demo.fix_camera:
        run_phase(demo, PHASES[3])


def run_demo(
    after_alert: Sequence[Stage] = (),
    workdir: Path = Path("var/demo"),
    after_timeline: Sequence[Stage] = (),
) -> Demo:
    """Run every stage; ``after_alert`` stages run once the policy has paged, while the camera
    is still changed (serve more traffic with ``serve_window(demo, demo.shifted)``); set
    ``demo.fix_camera = False`` to skip the camera-fixed phase."""
    demo = Demo(workdir=workdir)
    stages: list[Stage] = [
        start_services,
        train_model,
        fit_reference,
        clean_traffic,
        camera_change,
        *after_alert,
        camera_fixed,
        print_timeline,
        *after_timeline,
    ]
    try:
        for stage in stages:
            stage(demo)
    finally:
        _shutdown(demo)
    demo.say("done")
    return demo


# ---------------------------------------------------------------- helpers


def _print_alert(item: Any) -> None:

    body = item.json
    ok = verify(item.body, item.headers, SECRET)
    bar = "=" * 78
    click.echo(
        f"\n{bar}\nWEBHOOK RECEIVED ({'signature ok' if ok else 'BAD SIGNATURE'})\n"
        f"{body['text']}\n{bar}\n"
    )


def _wait_stored(demo: Demo, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with demo.factory() as session:
            if count_logs(session) >= n:
                return
        time.sleep(0.05)
    raise click.ClickException(f"ingest stored fewer than {n} logs in {timeout:.0f}s")


def _evaluate(demo: Demo, phase: Phase) -> None:
    report = demo.evaluator.tick()
    with demo.factory() as session:
        for w in windows_except(session, demo.window_phase):
            demo.window_phase[w.id] = phase.name
            rows = window_results(session, w.id, by_family=False)
            stats = (
                " ".join(f"{r.family}={r.effect_size:.3f}{'*' if r.drifted else ''}" for r in rows)
                or "not evaluated (no reference for this version yet)"
            )
            stats += estimate_note(session, w.id)
            demo.say(f"window {w.id:>2} [{phase.name}] {w.model_version}/{w.arm} {stats}")
    for d in report.decisions:
        t = d.transition
        demo.say(f"  policy: {d.version} {d.family} {t.from_state} -> {t.to_state}: {t.reason}")
    for t in report.superseded:
        demo.say(
            f"  policy: {t.evidence['version']} {t.evidence['family']} {t.from_state} -> "
            f"{t.to_state}: {t.reason}"
        )


def _shutdown(demo: Demo) -> None:
    if demo.logger is not None:
        demo.logger.close()
    demo.stop.set()
    if demo.worker_thread is not None:
        demo.worker_thread.join(30)
    if demo.receiver is not None:
        demo.receiver.__exit__(None, None, None)
    if demo.broker is not None:
        demo.broker.stop()
    if demo.engine is not None:
        demo.engine.dispose()
