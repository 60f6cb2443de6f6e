"""Detection speed: all four families on one window vs Evidently's comparable drift metrics.

Same synthetic data for both (``monitor.detectors.simulate``): a reference of ``--rows`` logs
and a window of ``--rows`` logs (128-d embeddings, 10 classes, 13 pixel statistics, a 18%
darker window). Ours: ``registry.score_all`` over the four families with default settings
against a profile fitted beforehand (median of ``--repeats``), plus the profile fit for a
``--fit-rows`` reference. Evidently 0.7.23 (legacy ``Report``): ``DataDriftTable`` over the
pixel statistics (per-column drift with its default tests), ``ColumnDriftMetric`` on the
predicted class (categorical) and ``EmbeddingsDriftMetric`` with its default method (a domain
classifier, plus its t-SNE view), each run once. Evidently's embedding drift is measured on
``--evidently-embedding-rows`` rows per side, since it is slow; the ratio is then a lower bound.

``--choose-embedding`` instead runs the embedding-test comparison on real digits embeddings
(``retrain/``) written up in ``docs/detection.md`` ("Choosing the embedding test").

Run::

    .venv/bin/python bench/detect.py
    .venv/bin/python bench/detect.py --choose-embedding
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from monitor import detect
from monitor.batch import LogBatch
from monitor.detectors import registry
from monitor.detectors.simulate import synthetic_batch
from monitor.settings import DetectorSettings


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls, and the last result."""
    wall, _, out = timed_cpu(fn, repeats)
    return wall, out


def timed_cpu(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, float, Any]:
    """Median wall time and median process CPU time of ``repeats`` calls, and the last result
    (CPU time is what a call costs with the cores to itself; on a loaded host wall time is not)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def evidently_frame(batch: LogBatch) -> Any:
    import pandas as pd

    assert batch.pixel is not None and batch.embeddings is not None
    cols = pd.DataFrame(batch.pixel, columns=list(batch.pixel_names))
    cols["predicted"] = batch.predicted
    emb = pd.DataFrame(
        batch.embeddings, columns=[f"e{i}" for i in range(batch.embeddings.shape[1])]
    )
    return pd.concat([cols, emb], axis=1)


def evidently_times(ref: LogBatch, cur: LogBatch, emb_rows: int) -> dict[str, float]:
    """Seconds for each of Evidently's comparable metrics (one run each)."""
    from evidently.legacy.metrics import ColumnDriftMetric, DataDriftTable, EmbeddingsDriftMetric
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report

    warnings.simplefilter("ignore")
    assert ref.embeddings is not None
    names = list(ref.pixel_names)
    emb_cols = [f"e{i}" for i in range(ref.embeddings.shape[1])]
    mapping = ColumnMapping(
        numerical_features=names, categorical_features=["predicted"], embeddings={"emb": emb_cols}
    )
    ref_df, cur_df = evidently_frame(ref), evidently_frame(cur)

    def run(metric: Any, r: Any, c: Any) -> float:
        report = Report(metrics=[metric])
        t0 = time.perf_counter()
        report.run(reference_data=r, current_data=c, column_mapping=mapping)
        report.as_dict()
        return time.perf_counter() - t0

    def drift_method_only() -> float:
        from evidently.legacy.metrics.data_drift.embedding_drift_methods import model

        r, c = ref_df.iloc[:emb_rows][emb_cols], cur_df.iloc[:emb_rows][emb_cols]
        t0 = time.perf_counter()
        model(bootstrap=len(r) < 1000)(c, r)
        return time.perf_counter() - t0

    return {
        "pixel columns (DataDriftTable)": run(DataDriftTable(columns=names), ref_df, cur_df),
        "class column (ColumnDriftMetric)": run(ColumnDriftMetric("predicted"), ref_df, cur_df),
        f"embeddings (EmbeddingsDriftMetric, {emb_rows} rows)": run(
            EmbeddingsDriftMetric("emb"), ref_df.iloc[:emb_rows], cur_df.iloc[:emb_rows]
        ),
        "method only": drift_method_only(),
    }


def speed(args: argparse.Namespace) -> None:
    settings = DetectorSettings()
    ref = synthetic_batch(args.rows, seed=0)
    cur = synthetic_batch(args.rows, seed=1, brightness=-0.18)
    profiles = registry.fit_all(ref, settings, "bench")
    detect(profiles, cur, settings, model="bench")  # warm-up: lazy imports
    ours, ours_cpu, verdict = timed_cpu(
        lambda: detect(profiles, cur, settings, model="bench"), args.repeats
    )
    results = verdict.results
    per_family = {
        r.family: timed(
            lambda r=r: registry.FAMILIES[r.family].score(  # type: ignore[misc]
                profiles[r.family], cur, registry.family_settings(settings, "bench", r.family)
            ),
            args.repeats,
        )[0]
        for r in results
    }
    big = synthetic_batch(args.fit_rows, seed=2)
    fit_s, _ = timed(lambda: registry.fit_all(big, settings, "bench"), 1)
    print(
        f"ours: monitor.detect (verdict p={verdict.p_value:.3g}, drifted={verdict.drifted}), "
        f"window {args.rows:,} vs reference {args.rows:,}: {ours * 1000:.0f} ms "
        f"(median of {args.repeats}), CPU {ours_cpu * 1000:.0f} ms; "
        f"embedding test: {results[0].method}"
    )
    for fam, sec in per_family.items():
        print(f"  {fam:<11} {sec * 1000:7.1f} ms")
    for r in results:
        top = ", ".join(f.describe() for f in r.top_features(2) if f.drifted) or "-"
        print(
            f"  {r.family:<11} drifted={r.drifted!s:<5} p={r.p_value:.3g} "
            f"effect={r.effect_size:.3g}  {top}"
        )
    print(f"ours: profile fit, {args.fit_rows:,}-log reference: {fit_s:.2f} s")
    if args.no_evidently:
        return
    ev = evidently_times(ref, cur, args.evidently_embedding_rows)
    method_only = ev.pop("method only")
    total = sum(ev.values())
    print("evidently 0.7.23:")
    for name, sec in ev.items():
        print(f"  {name:<52} {sec:8.2f} s")
    print(f"  {'  of which the drift method alone (no t-SNE view)':<52} {method_only:8.2f} s")
    print(f"  total{'':<47} {total:8.2f} s")
    print(f"ratio evidently / ours: {total / ours:.0f}x")
    no_emb = total - list(ev.values())[-1]
    ours_no_emb = per_family["pixel"] + per_family["classes"]
    print(f"ratio without embeddings (pixel + classes only): {no_emb / ours_no_emb:.0f}x")
    with_method = no_emb + method_only
    print(f"ratio counting only Evidently's embedding drift method: {with_method / ours:.0f}x")


def _digits_embeddings(seed: int = 0) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, float]]]:
    """Reference embeddings and, per condition, pool embeddings with the model's accuracy."""
    import torch

    from retrain.digits import SHIFTS, make_class_rare, train_holdout
    from retrain.model import predict, train_classifier

    torch.set_num_threads(2)
    train, holdout = train_holdout(seed=seed, holdout=0.6)
    net = train_classifier(train.images, train.labels, seed=seed)
    order = np.random.default_rng(seed).permutation(len(holdout.labels))
    ref_idx, pool_idx = np.sort(order[::2]), np.sort(order[1::2])
    _, ref_emb = predict(net, holdout.images[ref_idx])
    images, labels = holdout.images[pool_idx], holdout.labels[pool_idx]
    conditions = {"clean": (images, labels)}
    conditions |= {name: (shift(images), labels) for name, shift in SHIFTS.items()}
    rare = make_class_rare(labels, 3, keep=0.05, seed=seed)
    conditions["class 3 rare"] = (images[rare], labels[rare])
    pools = {}
    for name, (imgs, labs) in conditions.items():
        probs, emb = predict(net, imgs)
        pools[name] = (emb, float((probs.argmax(axis=1) == labs).mean()))
    return ref_emb, pools


def _classifier_test(ref: np.ndarray, cur: np.ndarray, seed: int) -> tuple[float, float]:
    """Domain classifier: 5-fold logistic regression, out-of-fold AUC, Mann-Whitney p-value."""
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    scores = cross_val_predict(clf, x, y, cv=folds, method="decision_function")
    res = mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater")
    return float(res.statistic / (len(ref) * len(cur))), float(res.pvalue)


def choose_embedding(n_windows: int, alpha: float = 0.01, seed: int = 0) -> None:
    """Detection rate at ``alpha`` of MMD, PCA+KS and a domain classifier on digits embeddings."""
    from monitor.batch import LogBatch
    from monitor.detectors import embedding
    from monitor.settings import FamilySettings

    warnings.simplefilter("ignore")
    ref_emb, pools = _digits_embeddings(seed)
    ref = LogBatch(
        probs=np.ones((len(ref_emb), 1)),
        predicted=np.zeros(len(ref_emb), np.int64),
        embeddings=ref_emb,
    )
    cfgs = {k: FamilySettings(method=k, alpha=alpha, effect_floor=0.0) for k in embedding.KINDS}
    profiles = {k: embedding.fit(ref, cfg, seed=seed) for k, cfg in cfgs.items()}
    sizes = (50, 100, 200, 400)
    rng = np.random.default_rng(seed)
    clean_acc = pools["clean"][1]
    print(
        f"reference {len(ref_emb)} held-out digits, 64-d; pools of {len(pools['clean'][0])}; "
        f"{n_windows} windows per cell drawn without replacement; alpha={alpha}"
    )
    print("| condition | accuracy Δ | window | mmd | pca_ks | classifier | mmd² median |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    seconds = dict.fromkeys(("mmd", "pca_ks", "classifier"), 0.0)
    for name, (emb, acc) in pools.items():
        for size in sizes:
            if size > len(emb):
                continue
            hits = dict.fromkeys(seconds, 0)
            effects = []
            for _ in range(n_windows):
                win = emb[rng.choice(len(emb), size=size, replace=False)]
                cur = LogBatch(
                    probs=np.ones((size, 1)), predicted=np.zeros(size, np.int64), embeddings=win
                )
                for kind in embedding.KINDS:
                    short = kind.split(".")[1]
                    t0 = time.perf_counter()
                    r = embedding.score(profiles[kind], cur, cfgs[kind])
                    seconds[short] += time.perf_counter() - t0
                    hits[short] += int(r.p_value is not None and r.p_value < alpha)
                    if short == "mmd":
                        effects.append(r.effect_size)
                t0 = time.perf_counter()
                _, p = _classifier_test(profiles["embedding.mmd"].sample, win, seed)
                seconds["classifier"] += time.perf_counter() - t0
                hits["classifier"] += int(p < alpha)
            cells = " | ".join(f"{hits[k] / n_windows * 100:.0f}%" for k in seconds)
            print(
                f"| {name} | {(acc - clean_acc) * 100:+.1f} | {size} | {cells} | "
                f"{np.median(effects):.4f} |",
                flush=True,
            )
    calls = n_windows * sum(1 for e, _ in pools.values() for s in sizes if s <= len(e))
    print(
        "mean seconds per test: "
        + ", ".join(f"{k} {v / calls * 1000:.1f} ms" for k, v in seconds.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--fit-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--evidently-embedding-rows", type=int, default=10_000)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--choose-embedding", action="store_true")
    parser.add_argument("--windows", type=int, default=50)
    args = parser.parse_args()
    if args.choose_embedding:
        choose_embedding(args.windows)
    else:
        speed(args)


if __name__ == "__main__":
    main()
