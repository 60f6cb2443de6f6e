"""Requests needed to detect a canary 2 accuracy points worse: shadow (paired) vs a 10% split.

Models: the digits baseline (stable) and the same network with Gaussian noise on its head
weights, the noise scale bisected until the candidate is ``--drop`` accuracy points worse on the
digits holdout (the candidate is a real, worse model; its errors overlap the stable's as a
near-neighbour model's do). Requests are drawn with replacement from the holdout, labelled.

- shadow: both models score the same ``n`` requests; one-sided exact McNemar
  (:func:`retrain.shadow.mcnemar_exact`) at ``--alpha``.
- split: each of ``n`` requests goes to the canary with probability 0.1; one-sided pooled
  two-proportion z-test at ``--alpha`` (the strongest simple test for independent arms).

Power is the share of ``--reps`` simulated rollouts that detect the worse canary; the answer is
the smallest ``n`` of the grid with power >= 0.8.

Run: ``python bench/canary_power.py [--reps 400] [--drop 0.02] [--alpha 0.05]``
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from scipy.stats import binom, norm

from retrain.digits import train_holdout
from retrain.model import predict
from retrain.recipes import train_baseline

GRID = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200]


def worse_model(net: torch.nn.Module, images: np.ndarray, labels: np.ndarray, drop: float) -> tuple:
    """(stable correctness, candidate correctness) on the holdout, candidate ~``drop`` worse."""
    base_ok = predict(net, images)[0].argmax(1) == labels

    def noisy_ok(sigma: float) -> np.ndarray:
        cand = copy.deepcopy(net)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            w = cand.head.weight
            w += sigma * w.abs().mean() * torch.randn(w.shape, generator=gen)
        return np.asarray(predict(cand, images)[0].argmax(1) == labels)

    lo, hi = 0.0, 2.0
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if base_ok.mean() - noisy_ok(mid).mean() < drop else (lo, mid)
    return base_ok, noisy_ok(hi)  # the smallest noise found that costs at least ``drop``


def power(
    s_ok: np.ndarray, c_ok: np.ndarray, n: int, reps: int, alpha: float, rng: np.random.Generator
) -> tuple[float, float]:
    idx = rng.integers(0, len(s_ok), (reps, n))
    b = (s_ok[idx] & ~c_ok[idx]).sum(1)
    c = (~s_ok[idx] & c_ok[idx]).sum(1)
    shadow = binom.sf(b - 1, b + c, 0.5) < alpha
    to_canary = rng.random((reps, n)) < 0.1
    idx2 = rng.integers(0, len(s_ok), (reps, n))
    nc = to_canary.sum(1)
    ns = n - nc
    kc = (c_ok[idx2] & to_canary).sum(1)
    ks = (s_ok[idx2] & ~to_canary).sum(1)
    pooled = (kc + ks) / n
    se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(nc, 1) + 1 / np.maximum(ns, 1)))
    z = np.where(
        se > 0, (ks / np.maximum(ns, 1) - kc / np.maximum(nc, 1)) / np.where(se > 0, se, 1), 0
    )
    split = norm.sf(z) < alpha
    return float(shadow.mean()), float(split.mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--drop", type=float, default=0.02)
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, hold = train_holdout(seed=0)
    s_ok, c_ok = worse_model(train_baseline(), hold.images, hold.labels, args.drop)
    print(
        f"holdout n={len(s_ok)}: stable {s_ok.mean():.2%}, candidate {c_ok.mean():.2%} "
        f"(drop {100 * (s_ok.mean() - c_ok.mean()):.1f} pts); discordant "
        f"{(s_ok != c_ok).mean():.2%} of requests"
    )
    rng = np.random.default_rng(0)
    need: dict[str, int | None] = {"shadow": None, "split": None}
    print(f"{'requests':>9} {'shadow power':>13} {'10% split power':>16}")
    for n in GRID:
        ps, pp = power(s_ok, c_ok, n, args.reps, args.alpha, rng)
        print(f"{n:>9} {ps:>13.2f} {pp:>16.2f}")
        for name, p in (("shadow", ps), ("split", pp)):
            if need[name] is None and p >= 0.8:
                need[name] = n
        if need["split"] is not None:
            break
    print(
        f"requests for 80% power at alpha {args.alpha}: shadow {need['shadow']}, "
        f"10% split {need['split']} (grid {GRID[0]}..{GRID[-1]}, {args.reps} reps)"
    )


if __name__ == "__main__":
    main()
