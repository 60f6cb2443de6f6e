"""Estimated vs realized accuracy on real images (scikit-learn digits), windows of 500.

Trains the small CNN of ``retrain/model.py`` on 40% of the digits images and computes its
probabilities and embeddings once for every held-out image, clean and after each shift of
:data:`retrain.digits.SHIFTS` (the covariate shifts), plus two streams where label-free estimation
is known to fail: FGSM adversarial inputs (the model is confidently wrong) and a concept shift
(the images look the same, two classes swap meaning). Per trial the held-out images are split
afresh: 500 clean labelled ones are the reference (temperature scaling is fitted on them, as the
reference profile does), and a window of 500 is drawn from the *other* images without
replacement, clean or shifted. Each window's CBPE estimate (mean calibrated confidence, with its
Poisson-binomial 95% interval) is compared with its realized accuracy; the baseline is the same
estimate on uncalibrated confidences (the ten-line alternative).

Run::

    .venv/bin/python bench/impact.py             # ~1 minute on 2 shared cores
    .venv/bin/python bench/impact.py --trials 20
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import numpy as np

from monitor.impact.estimate import accuracy_drop, estimate_accuracy
from monitor.impact.temperature import apply_temperature, ece, fit_temperature

if TYPE_CHECKING:
    from retrain.model import DigitsNet

HOLDOUT = 0.6
N_REF = 500
WINDOW = 500
COVARIATE = ("brightness", "noise", "blur", "rotation", "camera")
TARGET_MAE, TARGET_COVERAGE = 3.0, 0.90
PAGE_DROP = 3.0  # policy.impact.page_min_drop_points: the drop's lower bound must reach it


def fgsm(net: DigitsNet, images: np.ndarray, labels: np.ndarray, eps: float) -> np.ndarray:
    """Fast-gradient-sign images (Goodfellow et al. 2015) at ``eps`` (share of 255)."""
    import torch

    from retrain.model import to_tensor

    x = to_tensor(images).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(net(x), torch.from_numpy(labels))
    loss.backward()  # type: ignore[no-untyped-call]
    assert x.grad is not None
    adv = (x + eps * x.grad.sign()).clamp(0, 1).detach().numpy()[:, 0]
    out: np.ndarray = np.rint(adv * 255).astype(np.uint8)
    return out


def streams(seed: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """{stream: (probs, labels)} over the held-out images, and the clean probabilities."""
    import torch

    from retrain.digits import SHIFTS, train_holdout
    from retrain.model import predict, train_classifier

    torch.set_num_threads(2)
    train, hold = train_holdout(seed=seed, holdout=HOLDOUT)
    net = train_classifier(train.images, train.labels, epochs=10, seed=seed)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    clean = predict(net, hold.images)[0]
    out["clean"] = (clean, hold.labels)
    for name in COVARIATE:
        out[name] = (predict(net, SHIFTS[name](hold.images))[0], hold.labels)
    out["adversarial (FGSM 0.1)"] = (
        predict(net, fgsm(net, hold.images, hold.labels, 0.1))[0],
        hold.labels,
    )
    swapped = hold.labels.copy()  # concept shift: 3s are now called 8s and back
    swapped[hold.labels == 3], swapped[hold.labels == 8] = 8, 3
    out["concept (3 <-> 8)"] = (clean, swapped)
    return out, clean


def run(trials: int, seed: int) -> dict[str, dict[str, float]]:
    data, clean = streams(seed)
    _, hold_labels = data["clean"]
    rng = np.random.default_rng(seed)
    rows: dict[str, list[tuple[float, ...]]] = {k: [] for k in data}
    eces = []
    for _ in range(trials):
        order = rng.permutation(len(hold_labels))
        ref, pool = order[:N_REF], order[N_REF:]
        t = fit_temperature(clean[ref], hold_labels[ref])
        ref_acc = float((clean[ref].argmax(axis=1) == hold_labels[ref]).mean())
        cal_se = float(np.sqrt(ref_acc * (1 - ref_acc) / N_REF))
        ref_est = estimate_accuracy(apply_temperature(clean[ref], t).max(axis=1))
        eces.append(
            (
                ece(clean[ref], hold_labels[ref]),
                ece(apply_temperature(clean[ref], t), hold_labels[ref]),
                t,
            )
        )
        for name, (probs, labels) in data.items():
            idx = rng.choice(pool, WINDOW, replace=False)
            cal = apply_temperature(probs[idx], t).max(axis=1)
            est = estimate_accuracy(cal, calibration_se=cal_se)
            raw = float(probs[idx].max(axis=1).mean())
            real = float((probs[idx].argmax(axis=1) == labels[idx]).mean())
            drop = accuracy_drop(ref_est, est)
            rows[name].append(
                (est.value, raw, real, est.covers(real), est.high - est.low,
                 drop.value, drop.low * 100 >= PAGE_DROP, ref_acc - real)
            )  # fmt: skip
    summary = {}
    for name, vals in rows.items():
        a = np.array(vals, dtype=np.float64)
        summary[name] = {
            "realized": a[:, 2].mean() * 100,
            "estimated": a[:, 0].mean() * 100,
            "mae": np.abs(a[:, 0] - a[:, 2]).mean() * 100,
            "mae_raw": np.abs(a[:, 1] - a[:, 2]).mean() * 100,
            "coverage": a[:, 3].mean(),
            "width": a[:, 4].mean() * 100,
            "est_drop": a[:, 5].mean() * 100,
            "real_drop": a[:, 7].mean() * 100,
            "pages": a[:, 6].mean(),
        }
    e = np.array(eces)
    summary["_ece"] = {
        "before": e[:, 0].mean() * 100,
        "after": e[:, 1].mean() * 100,
        "t": e[:, 2].mean(),
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    s = run(args.trials, args.seed)
    e = s.pop("_ece")
    print(
        f"reference ECE (n={N_REF}, 15 bins): {e['before']:.2f}% before, {e['after']:.2f}% after "
        f"temperature scaling (mean T={e['t']:.2f}), {args.trials} trials"
    )
    print(f"\nwindows of {WINDOW}, {args.trials} per stream; figures in accuracy points")
    print(
        "| stream | realized | estimated | MAE calibrated | MAE raw confidence | 95% interval "
        "covers | interval width | realized drop | estimated drop | pages (drop low >= 3) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in s.items():
        print(
            f"| {name} | {r['realized']:.1f} | {r['estimated']:.1f} | {r['mae']:.2f} | "
            f"{r['mae_raw']:.2f} | {r['coverage']:.0%} | {r['width']:.1f} | "
            f"{r['real_drop']:.1f} | {r['est_drop']:.1f} | {r['pages']:.0%} |"
        )
    cov = [s[n] for n in COVARIATE]
    mae = float(np.mean([r["mae"] for r in cov]))
    coverage = float(np.mean([r["coverage"] for r in cov]))
    print(
        f"\ncovariate shifts: MAE {mae:.2f} points (target <= {TARGET_MAE}), coverage "
        f"{coverage:.0%} (target >= {TARGET_COVERAGE:.0%}); worst: "
        + ", ".join(
            f"{n} MAE {s[n]['mae']:.2f}, coverage {s[n]['coverage']:.0%}" for n in COVARIATE
        )
    )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
