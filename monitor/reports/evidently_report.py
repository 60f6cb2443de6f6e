"""An Evidently 0.7 data-drift HTML report of a window against a reference, for people who want
the familiar view. Driftwatch's own detectors decide drift; this report is for reading.

The columns compared are the pixel statistics that vary, the max-softmax confidence, the
prediction entropy, the first principal components of the embeddings (fitted on the reference)
and the predicted class (categorical). Evidently is imported only here, inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.batch import LogBatch
from monitor.errors import DriftwatchError

if TYPE_CHECKING:
    import pandas as pd

#: Embedding principal components shown in the report.
N_COMPONENTS = 5


def _components(ref: np.ndarray, cur: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Project both on the reference's top ``k`` principal directions (rows with NaN dropped
    from the fit, kept as NaN in the output)."""
    ok = np.isfinite(ref).all(axis=1)
    mean = ref[ok].mean(axis=0)
    _, _, vt = np.linalg.svd(ref[ok] - mean, full_matrices=False)
    basis = vt[: min(k, vt.shape[0])].T
    return (ref - mean) @ basis, (cur - mean) @ basis


def frames(ref: LogBatch, cur: LogBatch) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """Reference and current data frames plus their numerical and categorical column names.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.ones(3), size=20).astype(np.float32)
    >>> b = LogBatch(probs=p, predicted=p.argmax(1))
    >>> r, c, num, cat = frames(b, b)
    >>> num, cat, len(r)
    (['confidence', 'entropy'], ['predicted_class'], 20)
    """
    import pandas as pd

    def base(batch: LogBatch) -> dict[str, Any]:
        p = batch.probs.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return {"confidence": p.max(axis=1), "entropy": entropy}

    cols_ref, cols_cur = base(ref), base(cur)
    if ref.pixel is not None and cur.pixel is not None:
        for j, name in enumerate(ref.pixel_names):
            r, c = ref.pixel[:, j], cur.pixel[:, j]
            both = np.concatenate([r, c])
            both = both[np.isfinite(both)]
            if both.size and np.ptp(both) > 0:
                cols_ref[name], cols_cur[name] = r, c
    if ref.embeddings is not None and cur.embeddings is not None:
        pr, pc = _components(
            ref.embeddings.astype(np.float64), cur.embeddings.astype(np.float64), N_COMPONENTS
        )
        for j in range(pr.shape[1]):
            cols_ref[f"embedding_pc{j + 1}"], cols_cur[f"embedding_pc{j + 1}"] = pr[:, j], pc[:, j]
    numerical = list(cols_ref)
    cols_ref["predicted_class"] = ref.predicted.astype(str)
    cols_cur["predicted_class"] = cur.predicted.astype(str)
    return pd.DataFrame(cols_ref), pd.DataFrame(cols_cur), numerical, ["predicted_class"]


def write_report(ref: LogBatch, cur: LogBatch, path: Path | str) -> dict[str, float]:
    """Write the HTML report to ``path``; returns Evidently's drift p-value or score per column
    and ``drifted_share``, the share of columns it considers drifted."""
    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError as exc:
        raise DriftwatchError(
            "the Evidently report needs the 'reports' extra: pip install 'driftwatch[reports]'"
        ) from exc

    ref_frame, cur_frame, numerical, categorical = frames(ref, cur)
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur_frame, data_definition=definition),
        Dataset.from_pandas(ref_frame, data_definition=definition),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    summary: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config, value = metric["config"], metric["value"]
        if "column" in config:
            summary[str(config["column"])] = float(value)
        elif isinstance(value, dict) and "share" in value:
            summary["drifted_share"] = float(value["share"])
    return summary
