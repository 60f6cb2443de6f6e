"""What the impact stage keeps about a reference: calibration, its accuracy, an outlier model.

Fitted once with the reference profile (:func:`fit_impact`), stored as bytes
(:meth:`ImpactProfile.to_bytes`, an ``.npz`` with a JSON header; no pickle).

>>> from monitor.detectors.simulate import synthetic_batch
>>> ref = synthetic_batch(400, dim=8, seed=1)
>>> prof = fit_impact(ref)
>>> prof.n_labelled, prof.ece_after is not None
(400, True)
>>> back = ImpactProfile.from_bytes(prof.to_bytes())
>>> back.reference.value == prof.reference.value, back.outliers.source
(True, 'embedding')
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitor.batch import LogBatch
from monitor.impact.estimate import Interval, estimate_accuracy, realized_accuracy
from monitor.impact.temperature import apply_temperature, ece, fit_temperature
from monitor.stats.outliers import OutlierModel, fit_outliers

SCHEMA_VERSION = 1
_ARRAYS = ("columns", "mean", "scale", "whiten")


@dataclass(frozen=True)
class ImpactProfile:
    """Calibration and baseline accuracy of a reference, and its outlier model.

    ``reference`` is the CBPE estimate of the reference itself (calibrated confidence), the
    baseline a window's estimate is compared with; ``reference_realized`` its labelled accuracy.
    ``ece_before``/``ece_after`` are None without labels (then ``temperature`` is 1).
    """

    temperature: float
    n_labelled: int
    ece_before: float | None
    ece_after: float | None
    reference: Interval
    reference_realized: Interval | None
    outliers: OutlierModel | None
    schema_version: int = SCHEMA_VERSION

    def calibrated(self, probs: np.ndarray) -> np.ndarray:
        """``probs`` after this profile's temperature."""
        return apply_temperature(probs, self.temperature)

    def to_bytes(self) -> bytes:
        head: dict[str, Any] = {
            "temperature": self.temperature,
            "n_labelled": self.n_labelled,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "reference": self.reference.to_dict(),
            "reference_realized": None
            if self.reference_realized is None
            else self.reference_realized.to_dict(),
            "schema_version": self.schema_version,
            "outliers": None,
        }
        arrays: dict[str, Any] = {}
        if self.outliers is not None:
            o = asdict(self.outliers)
            head["outliers"] = {k: v for k, v in o.items() if k not in _ARRAYS}
            arrays = {k: np.asarray(o[k]) for k in _ARRAYS}
        buf = io.BytesIO()
        np.savez(buf, head=np.frombuffer(json.dumps(head).encode(), np.uint8), **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ImpactProfile:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            head = json.loads(npz["head"].tobytes().decode())
            outliers = None
            if head["outliers"] is not None:
                outliers = OutlierModel(**head["outliers"], **{k: npz[k] for k in _ARRAYS})
        realized = head["reference_realized"]
        return cls(
            temperature=float(head["temperature"]),
            n_labelled=int(head["n_labelled"]),
            ece_before=head["ece_before"],
            ece_after=head["ece_after"],
            reference=Interval(**head["reference"]),
            reference_realized=None if realized is None else Interval(**realized),
            outliers=outliers,
            schema_version=int(head["schema_version"]),
        )


def fit_impact(
    batch: LogBatch, *, min_labelled: int = 50, level: float = 0.95, seed: int = 0
) -> ImpactProfile:
    """Fit temperature scaling on the labelled rows of ``batch`` (when at least
    ``min_labelled``), the reference's own estimate, and the outlier model."""
    labels = batch.labels if batch.labels is not None else np.full(len(batch), -1)
    known = labels >= 0
    n_labelled = int(known.sum())
    temperature, before, after, realized = 1.0, None, None, None
    if n_labelled:
        realized = realized_accuracy(batch.predicted, labels, level)
        before = ece(batch.probs[known], labels[known])
    if n_labelled >= min_labelled:
        temperature = fit_temperature(batch.probs[known], labels[known])
        after = ece(apply_temperature(batch.probs[known], temperature), labels[known])
    calibrated = apply_temperature(batch.probs, temperature)
    return ImpactProfile(
        temperature=temperature,
        n_labelled=n_labelled,
        ece_before=before,
        ece_after=after,
        reference=estimate_accuracy(calibrated.max(axis=1), level),
        reference_realized=realized,
        outliers=fit_outliers(batch, seed=seed),
    )
