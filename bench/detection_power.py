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
from monitor.settings import FAMILIES, DetectorSettings, FamilySettings

if TYPE_CHECKING:
    from retrain.model import DigitsNet

SIZES = (10, 20, 50, 100, 200, 500, 1000)
FRACTIONS = (0.1, 0.5, 1.0)
DOC = Path(__file__).resolve().parents[1] / "docs" / "detection.md"
BEGIN, END = "<!-- power:begin -->", "<!-- power:end -->"
RARE_CLASS = 3
#: Share of the digits images held out from training (the reference and windows come from them):
#: 1,527 images, so a window of 1,000 is drawn without replacement beside a reference of 400.
HOLDOUT = 0.85
#: Reference size per trial; the rest of the held-out images (1,127) are the window pool.
N_REF = 400
#: Strength of the adversarial (FGSM) shift, as a share of the pixel range.
FGSM_EPS = 0.1
#: Candidate settings measured beside the defaults: BBSDs as the confidence family's kind, and
#: that plus a budget weighted toward the pixel family (the most powerful on small windows).
BBSD = DetectorSettings(confidence=FamilySettings(method="confidence.bbsd"))
WEIGHTED = DetectorSettings(
    confidence=FamilySettings(method="confidence.bbsd", alpha=0.01),
    pixel=FamilySettings(alpha=0.02),
    embedding=FamilySettings(alpha=0.01),
    classes=FamilySettings(alpha=0.01),
)
CANDIDATES = {"driftwatch": DetectorSettings(), "dw-bbsd": BBSD, "dw-bbsd-weighted": WEIGHTED}
KEYS = (*FAMILIES, "confidence-bbsd", *CANDIDATES, *BASELINES)


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
    from impact import fgsm

    from retrain.digits import train_holdout
    from retrain.model import train_classifier

    torch.set_num_threads(1)
    train, holdout = train_holdout(seed=seed, holdout=HOLDOUT)
    net = train_classifier(train.images, train.labels, seed=seed)
    images, labels = holdout.images, holdout.labels
    out = [Condition("clean", _logs(net, images, labels))]
    out += [Condition(name, _logs(net, fn(images), labels)) for name, fn in _shifts().items()]
    adv = fgsm(net, images, labels, FGSM_EPS)
    out.append(Condition(f"adversarial FGSM {FGSM_EPS:g}", _logs(net, adv, labels)))
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


def _rare_rows(
    labels: np.ndarray, pool: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """A window of ``pool`` rows whose rare class keeps 5% of its usual share."""
    rare = labels[pool] == RARE_CLASS
    share = rare.mean() * 0.05 / (1 - rare.mean() + rare.mean() * 0.05)
    n_rare = int(rng.binomial(size, share))
    return np.concatenate(
        [
            rng.choice(pool[rare], size=n_rare, replace=False),
            rng.choice(pool[~rare], size=size - n_rare, replace=False),
        ]
    )


def _flags(
    profiles: dict[str, dict[str, object]], ref: LogBatch, window: LogBatch, t: int
) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for name, settings in CANDIDATES.items():
        verdict = detect(profiles[name], window, settings, model="digits")  # type: ignore[arg-type]
        flags[name] = verdict.drifted
        if name == "driftwatch":
            flags.update({r.family: r.drifted for r in verdict.results})
        if name == "dw-bbsd":
            flags["confidence-bbsd"] = any(
                r.drifted for r in verdict.results if r.family == "confidence"
            )
    flags.update(baselines(ref, window, seed=t))
    return flags


def run_trials(
    conditions: list[Condition],
    sizes: tuple[int, ...],
    windows: int,
    clean_windows: int,
    seed: int,
    progress: Callable[[dict[Cell, dict[str, int]], dict[Cell, int], list[float], int], None]
    | None = None,
) -> tuple[dict[Cell, dict[str, int]], dict[Cell, int], list[float]]:
    """Score every window with Driftwatch and the baselines; hit and trial counts per cell.

    Each trial draws a fresh reference, one window per shifted cell and
    ``ceil(clean_windows / windows)`` clean ones, so a run stopped early has every cell."""
    clean = conditions[0].batch
    assert clean.labels is not None
    rng = np.random.default_rng(seed)
    hits: dict[Cell, dict[str, int]] = {}
    trials: dict[Cell, int] = {}
    rare_acc: list[float] = []
    per_trial = -(-clean_windows // max(windows, 1))
    n_trials = max(windows, -(-clean_windows // per_trial))
    for t in range(n_trials):
        order = rng.permutation(len(clean))
        ref_idx, pool = np.sort(order[:N_REF]), order[N_REF:]
        ref = clean.take(ref_idx)
        profiles = {
            name: fit_all(ref, s, "digits", seed=seed + t) for name, s in CANDIDATES.items()
        }
        rare_acc.append(accuracy(clean, _rare_rows(clean.labels, pool, len(pool) // 2, rng)))
        n_clean = min(per_trial, clean_windows - t * per_trial)
        todo = [(conditions[0], 1.0)] * max(n_clean, 0)
        todo += _cells(conditions, sizes) if t < windows else []
        for cond, frac in todo:
            for size in sizes:
                if cond.rare:
                    rows = _rare_rows(clean.labels, pool, size, rng)
                else:
                    rows = rng.choice(pool, size=size, replace=False)
                n_shift = size if cond.rare else round(frac * size)
                window = mix(clean, cond.batch, rows, n_shift)
                flags = _flags(profiles, ref, window, t)  # type: ignore[arg-type]
                cell = hits.setdefault((cond.name, frac, size), dict.fromkeys(KEYS, 0))
                for k in KEYS:
                    cell[k] += int(flags.get(k, False))
                trials[(cond.name, frac, size)] = trials.get((cond.name, frac, size), 0) + 1
        if progress is not None:
            progress(hits, trials, rare_acc, t + 1)
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
    mean = {
        k: [float(np.mean([rate[(n, f, s)][k] for n, f in shifted])) for s in sizes] for k in KEYS
    }
    for k in KEYS:
        lines.append(f"| {k} | " + " | ".join(f"{m * 100:.0f}%" for m in mean[k]) + " |")
    best = [max(mean[b][i] for b in BASELINES) for i in range(len(sizes))]
    for k in CANDIDATES:
        lines.append(
            f"| {k} − best baseline | "
            + " | ".join(f"{(m - b) * 100:+.0f}" for m, b in zip(mean[k], best, strict=True))
            + " |"
        )
    n_clean = [trials[("clean", 1.0, s)] for s in sizes]
    lines += ["", f"False alarms (clean windows; {min(n_clean)} per size):", "", head, rule]
    for k in KEYS:
        lines.append(
            f"| {k} | "
            + " | ".join(f"{rate[('clean', 1.0, s)][k] * 100:.1f}%" for s in sizes)
            + " |"
        )
    clean_acc = accuracy(conditions[0].batch)
    lines += [
        "",
        "Harmful shifts (>= 5 accuracy points lost), driftwatch / dw-bbsd / best baseline per "
        "window size:",
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
            top = max(r[b] for b in BASELINES)
            cells.append(
                f"{r['driftwatch'] * 100:.0f} / {r['dw-bbsd'] * 100:.0f} / {top * 100:.0f}"
            )
        lines.append(f"| {name} | {frac:.0%} | {drop * 100:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(
    windows: int,
    clean_windows: int,
    sizes: tuple[int, ...],
    seed: int,
    log: Callable[[str], None] = print,
    partial: Path | None = None,
) -> str:
    """Run the study; returns the Markdown tables with a header line (and writes them to
    ``partial`` after every trial, so a run stopped early leaves its tables)."""
    t0 = time.perf_counter()
    conditions = build_conditions(seed)
    n_all = len(conditions[0].batch)
    log(f"model trained, logs computed in {time.perf_counter() - t0:.1f}s")

    def report(
        hits: dict[Cell, dict[str, int]], trials: dict[Cell, int], rare: list[float], done: int
    ) -> str:
        header = (
            f"Model trained on {100 - HOLDOUT * 100:.0f}% of digits; {n_all} held-out images "
            f"(clean accuracy {accuracy(conditions[0].batch) * 100:.1f}%); per trial a fresh "
            f"reference of {N_REF} clean images and windows from the other {n_all - N_REF} "
            f"without replacement; {done} trials: {min(done, windows)} windows per shifted cell "
            f"(of {windows} asked), {min(v for k, v in trials.items() if k[0] == 'clean')} clean "
            f"(of {clean_windows}); {len(conditions) - 2} shifts x {len(FRACTIONS)} fractions + "
            f"a knock-out; seed {seed}; {time.perf_counter() - t0:.0f}s in all.\n\n"
        )
        return header + tables(conditions, sizes, hits, trials, rare)

    def progress(
        hits: dict[Cell, dict[str, int]], trials: dict[Cell, int], rare: list[float], done: int
    ) -> None:
        log(f"trial {done} done at {time.perf_counter() - t0:.0f}s")
        if partial is not None:
            partial.write_text(report(hits, trials, rare, done))

    hits, trials, rare_acc = run_trials(conditions, sizes, windows, clean_windows, seed, progress)
    return report(
        hits,
        trials,
        rare_acc,
        max(windows, -(-clean_windows // max(1, -(-clean_windows // max(windows, 1))))),
    )


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
    parser.add_argument("--partial", type=Path, help="write the tables here after every trial")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    table = run(args.windows, args.clean_windows, sizes, args.seed, partial=args.partial)
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
