"""Driftwatch: drift monitoring for image classification models.

The library call is :func:`detect` (:mod:`monitor.detection`): a reference and a current window
as arrays in, per-family results and one calibrated verdict out.
"""

from monitor.detection import Verdict, detect

__all__ = ["Verdict", "detect"]
