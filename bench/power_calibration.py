"""False alarms of the window verdict under no shift, per window size (the calibration test's
setting: synthetic logs, 32-d embeddings, a reference of 10,000, default settings).

Run::

    .venv/bin/python bench/power_calibration.py --windows 200
"""

from __future__ import annotations

import argparse
import time

from monitor import detect
from monitor.detectors import registry
from monitor.detectors.simulate import synthetic_batch
from monitor.settings import DetectorSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--sizes", default="10,20,50,100,200,500,1000,10000")
    args = parser.parse_args()
    settings = DetectorSettings()
    profiles = registry.fit_all(synthetic_batch(10_000, seed=10_000, dim=32), settings, "c")
    print(
        "| window | any-family alarms | significant (p < 0.05) | "
        + " | ".join(registry.FAMILIES)
        + " |"
    )
    print("| ---: | ---: | ---: |" + " ---: |" * len(registry.FAMILIES))
    t0 = time.perf_counter()
    for n in (int(s) for s in args.sizes.split(",")):
        alarms = significant = 0
        fam = dict.fromkeys(registry.FAMILIES, 0)
        for w in range(args.windows):
            v = detect(
                profiles, synthetic_batch(n, seed=7_000_000 + n * 1000 + w, dim=32), settings
            )
            alarms += v.drifted
            significant += v.significant
            for r in v.results:
                fam[r.family] += r.drifted
        cells = " | ".join(f"{c / args.windows:.1%}" for c in fam.values())
        print(
            f"| {n:,} | {alarms / args.windows:.1%} | {significant / args.windows:.1%} | {cells} |"
        )
    print(f"{args.windows} windows per size, {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
