"""False alarms of the window verdict under no shift, per window size (the calibration test's
setting: synthetic logs, 32-d embeddings, a reference of 10,000, default settings).

``--references R`` fits ``R`` profiles on independent references and scores window ``w``
against profile ``w mod R``: with one (the default, as in the calibration test) the rates are
conditional on that one reference, which at large windows is what they measure (a window of
1,000 sees how far that reference sample is from its population); with many they are the
unconditional false-alarm rates a level-alpha test promises.

Run::

    .venv/bin/python bench/power_calibration.py --windows 200
    .venv/bin/python bench/power_calibration.py --windows 300 --references 30 --sizes 500,1000
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
    parser.add_argument("--references", type=int, default=1, help="independent references")
    parser.add_argument("--seed", type=int, default=0, help="another set of windows")
    args = parser.parse_args()
    settings = DetectorSettings()
    fits = [
        registry.fit_all(synthetic_batch(10_000, seed=10_000 + r, dim=32), settings, "c", seed=r)
        for r in range(args.references)
    ]
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
                fits[w % len(fits)],
                synthetic_batch(n, seed=7_000_000 + 10**8 * args.seed + n * 1000 + w, dim=32),
                settings,
            )
            alarms += v.drifted
            significant += v.significant
            for r in v.results:
                fam[r.family] += r.drifted
        cells = " | ".join(f"{c / args.windows:.1%}" for c in fam.values())
        print(
            f"| {n:,} | {alarms / args.windows:.1%} | {significant / args.windows:.1%} | {cells} |"
        )
    print(
        f"{args.windows} windows per size, {args.references} reference(s), "
        f"{time.perf_counter() - t0:.0f}s"
    )


if __name__ == "__main__":
    main()
