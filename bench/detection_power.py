"""Power study on real images (scikit-learn digits): Driftwatch against the textbook tests.

Trains the small CNN of ``retrain/model.py`` on 40% of the digits images and computes its logs
(probabilities, 64-d embeddings, :func:`monitor.imagestats.batch_stats`) once for every
held-out image, clean and after each shift: brightness/contrast, Gaussian noise, blur and
rotation at three intensities each, plus a class knock-out (one class kept at 5%). Then,
**per trial**, the held-out images are split afresh at random: :data:`N_REF` clean ones are
the reference, and windows are drawn from the *other* images without replacement. A shift
hits a **fraction** of the window (10%, 50% or 100% of its images; the rest stay clean, like
one camera out of ten). Every detector sees the same window pairs: Driftwatch's verdict
(:func:`monitor.detect`, default settings, one 0.05 budget) and its families, and the
baselines of ``bench/power_baselines.py`` (BBSDs, KS on pixel statistics, RBF-MMD with
permutations, chi-square), each at alpha 0.05. Printed and written into ``docs/detection.md``
(between the ``power`` markers).

Run::

    .venv/bin/python bench/detection_power.py                       # full grid (slow)
    .venv/bin/python bench/detection_power.py --windows 8 --clean-windows 60 \
        --sizes 10,50,200,500                                       # reduced grid
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from power_baselines import NAMES as BASELINES
from power_baselines import baselines

from monitor import detect
from monitor.batch import LogBatch
from monitor.detectors.registry import fit_all
from monitor.imagestats import batch_stats
from monitor.settings import FAMILIES, DetectorSettings

if TYPE_CHECKING:
    from retrain.model import DigitsNet

SIZES = (10, 20, 50, 100, 200, 500)
FRACTIONS = (0.1, 0.5, 1.0)
DOC = Path(__file__).resolve().parents[1] / "docs" / "detection.md"
BEGIN, END = "<!-- power:begin -->", "<!-- power:end -->"
RARE_CLASS = 3
#: Share of the digits images held out from training (the reference and windows come from them).
HOLDOUT = 0.6
#: Reference size per trial; the rest of the held-out images (578) are the window pool.
N_REF = 500
KEYS = (*FAMILIES, "driftwatch", *BASELINES)


@dataclass(frozen=True)
class Condition:
    """The held-out images under one shift, with the model's outputs precomputed per image."""

    name: str
    batch: LogBatch  # one row per held-out image, same order for every condition
    rare: bool = False  # windows keep only 5% of the rare class's images


def _logs(net: DigitsNet, images: np.ndarray, labels: np.ndarray) -> LogBatch:
    from retrain.model import predict

    probs, emb = predict(net, images)
    return LogBatch(
        probs=probs.astype(np.float32),
        predicted=probs.argmax(axis=1).astype(np.int64),
        embeddings=emb.astype(np.float32),
        pixel=batch_stats(images),
        labels=labels,
    )


def _shifts() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    from retrain.digits import blur, brightness_contrast, gaussian_noise, rotate

    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for b, c in ((0.1, 0.9), (0.25, 0.7), (0.4, 0.5)):
        out[f"brightness +{b:g}/x{c:g}"] = lambda x, b=b, c=c: brightness_contrast(x, b, c)
    for sigma in (0.1, 0.2, 0.35):
        out[f"noise {sigma:g}"] = lambda x, s=sigma: gaussian_noise(x, s)
    for sigma in (0.6, 1.2, 2.0):
        out[f"blur {sigma:g}"] = lambda x, s=sigma: blur(x, s)
    for deg in (10.0, 25.0, 45.0):
        out[f"rotation {deg:g}"] = lambda x, d=deg: rotate(x, d)
    return out


def build_conditions(seed: int) -> list[Condition]:
    """The clean held-out images and each shift of them, through the trained model."""
    import torch

    from retrain.digits import train_holdout
    from retrain.model import train_classifier

    torch.set_num_threads(2)
    train, holdout = train_holdout(seed=seed, holdout=HOLDOUT)
    net = train_classifier(train.images, train.labels, seed=seed)
    images, labels = holdout.images, holdout.labels
    out = [Condition("clean", _logs(net, images, labels))]
    out += [Condition(name, _logs(net, fn(images), labels)) for name, fn in _shifts().items()]
    out.append(Condition(f"class {RARE_CLASS} knock-out", out[0].batch, rare=True))
    return out


def accuracy(batch: LogBatch, idx: np.ndarray | None = None) -> float:
    """Share of correct predictions (of the rows ``idx``)."""
    assert batch.labels is not None
    pred, lab = batch.predicted, batch.labels
    if idx is not None:
        pred, lab = pred[idx], lab[idx]
    return float((pred == lab).mean())


def mix(clean: LogBatch, shifted: LogBatch, rows: np.ndarray, n_shifted: int) -> LogBatch:
    """The window of ``rows``: its first ``n_shifted`` images shifted, the rest clean."""
    a, b = shifted.take(rows[:n_shifted]), clean.take(rows[n_shifted:])
    assert a.embeddings is not None and b.embeddings is not None
    assert a.pixel is not None and b.pixel is not None and a.labels is not None
    assert b.labels is not None
    return LogBatch(
        probs=np.concatenate([a.probs, b.probs]),
        predicted=np.concatenate([a.predicted, b.predicted]),
        embeddings=np.concatenate([a.embeddings, b.embeddings]),
        pixel=np.concatenate([a.pixel, b.pixel]),
        labels=np.concatenate([a.labels, b.labels]),
    )


Cell = tuple[str, float, int]  # condition, fraction, window size


def _cells(conditions: list[Condition], sizes: tuple[int, ...]) -> list[tuple[Condition, float]]:
    out: list[tuple[Condition, float]] = []
    for cond in conditions[1:]:
        out += [(cond, 1.0)] if cond.rare else [(cond, f) for f in FRACTIONS]
    return out


def run_trials(
    conditions: list[Condition], sizes: tuple[int, ...], windows: int, clean_windows: int, seed: int
) -> tuple[dict[Cell, dict[str, int]], dict[Cell, int], list[float]]:
    """Score every window with Driftwatch and the baselines; hit and trial counts per cell."""
    clean = conditions[0].batch
    assert clean.labels is not None
    rng = np.random.default_rng(seed)
    detectors = DetectorSettings()
    hits: dict[Cell, dict[str, int]] = {}
    trials: dict[Cell, int] = {}
    rare_acc: list[float] = []
    for t in range(max(windows, clean_windows)):
        order = rng.permutation(len(clean))
        ref_idx, pool = np.sort(order[:N_REF]), order[N_REF:]
        ref = clean.take(ref_idx)
        profiles = fit_all(ref, detectors, "digits", seed=seed + t)
        is_rare = clean.labels[pool] == RARE_CLASS
        rare_pool = pool[~is_rare | (rng.random(len(pool)) < 0.05)]
        rare_acc.append(accuracy(clean, rare_pool))
        todo = [(conditions[0], 1.0)] if t < clean_windows else []
        todo += _cells(conditions, sizes) if t < windows else []
        for cond, frac in todo:
            for size in sizes:
                rows = rng.choice(rare_pool if cond.rare else pool, size=size, replace=False)
                n_shift = size if cond.rare else round(frac * size)
                window = mix(clean, cond.batch, rows, n_shift)
                verdict = detect(profiles, window, detectors, model="digits")
                flags = {r.family: r.drifted for r in verdict.results}
                flags["driftwatch"] = verdict.drifted
                flags.update(baselines(ref, window, seed=t))
                cell = hits.setdefault((cond.name, frac, size), dict.fromkeys(KEYS, 0))
                for k in KEYS:
                    cell[k] += int(flags.get(k, False))
                trials[(cond.name, frac, size)] = trials.get((cond.name, frac, size), 0) + 1
    return hits, trials, rare_acc


def tables(
    conditions: list[Condition],
    sizes: tuple[int, ...],
    hits: dict[Cell, dict[str, int]],
    trials: dict[Cell, int],
    rare_acc: list[float],
) -> str:
    """Mean detection and false alarms per window size, and the harmful shifts one by one."""
    rate = {c: {k: v / trials[c] for k, v in h.items()} for c, h in hits.items()}
    head = "| detector | " + " | ".join(str(s) for s in sizes) + " |"
    rule = "| --- |" + " ---: |" * len(sizes)
    shifted = [(c.name, f) for c, f in _cells(conditions, sizes)]
    lines = ["Mean detection over every shifted cell (condition x fraction):", "", head, rule]
    for k in KEYS:
        means = [np.mean([rate[(n, f, s)][k] for n, f in shifted]) for s in sizes]
        lines.append(f"| {k} | " + " | ".join(f"{m * 100:.0f}%" for m in means) + " |")
    lines += ["", "False alarms (clean windows):", "", head, rule]
    for k in KEYS:
        lines.append(
            f"| {k} | "
            + " | ".join(f"{rate[('clean', 1.0, s)][k] * 100:.1f}%" for s in sizes)
            + " |"
        )
    clean_acc = accuracy(conditions[0].batch)
    lines += [
        "",
        "Harmful shifts (>= 5 accuracy points lost), Driftwatch / best baseline per window size:",
        "",
        "| shift | fraction | accuracy lost | " + " | ".join(str(s) for s in sizes) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(sizes),
    ]
    by_name = {c.name: c for c in conditions}
    for name, frac in shifted:
        cond = by_name[name]
        acc = float(np.mean(rare_acc)) if cond.rare else accuracy(cond.batch)
        drop = (clean_acc - acc) * frac
        if drop < 0.05:
            continue
        cells = []
        for s in sizes:
            r = rate[(name, frac, s)]
            best = max(r[b] for b in BASELINES)
            cells.append(f"{r['driftwatch'] * 100:.0f} / {best * 100:.0f}")
        lines.append(f"| {name} | {frac:.0%} | {drop * 100:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(
    windows: int,
    clean_windows: int,
    sizes: tuple[int, ...],
    seed: int,
    log: Callable[[str], None] = print,
) -> str:
    """Run the study; returns the Markdown tables with a header line."""
    t0 = time.perf_counter()
    conditions = build_conditions(seed)
    log(f"model trained, logs computed in {time.perf_counter() - t0:.1f}s")
    hits, trials, rare_acc = run_trials(conditions, sizes, windows, clean_windows, seed)
    n_all = len(conditions[0].batch)
    header = (
        f"Model trained on {100 - HOLDOUT * 100:.0f}% of digits; {n_all} held-out images (clean "
        f"accuracy {accuracy(conditions[0].batch) * 100:.1f}%); per trial a fresh reference of "
        f"{N_REF} clean images and windows from the other {n_all - N_REF} without replacement; "
        f"{windows} windows per shifted cell, {clean_windows} clean; {len(conditions) - 2} "
        f"shifts x {len(FRACTIONS)} fractions + a knock-out; seed {seed}; "
        f"{time.perf_counter() - t0:.0f}s in all.\n\n"
    )
    return header + tables(conditions, sizes, hits, trials, rare_acc)


def write_doc(table: str, command: str) -> None:
    """Replace the text between the power markers of ``docs/detection.md``."""
    text = DOC.read_text() if DOC.exists() else ""
    machine = "2 shared cores, Python 3.11, no GPU, " + time.strftime("%Y-%m-%d")
    block = f"{BEGIN}\nCommand: `{command}` ({machine})\n\n{table}{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Detection power on real images\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--windows", type=int, default=30, help="windows per shifted cell")
    parser.add_argument("--clean-windows", type=int, default=100)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/detection.md")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    table = run(args.windows, args.clean_windows, sizes, args.seed)
    print(table)
    if not args.no_write:
        cmd = (
            f".venv/bin/python bench/detection_power.py --windows {args.windows} "
            f"--clean-windows {args.clean_windows} --sizes {args.sizes} --seed {args.seed}"
        )
        write_doc(table, cmd)
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()
