"""Static INT8 quantization with ONNX Runtime (QDQ, per-channel weights), its accuracy gate, and
the choice of the served format (INT8 only when it is faster at the serving batch size)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import DriftwatchError
from retrain.export import INPUT, OUTPUTS, run


class QuantizationError(DriftwatchError):
    """Quantization failed, or the INT8 model lost too much accuracy."""


def quantize_int8(onnx_model: bytes, calibration: np.ndarray, batch: int = 32) -> bytes:
    """INT8 ONNX bytes of ``onnx_model``, calibrated (MinMax) on ``calibration`` (N, C, H, W).

    QDQ format with signed INT8 per-channel weights and unsigned INT8 activations (U8S8), the
    combination ONNX Runtime runs fastest on x86 (VNNI); S8S8 measured 2.6x slower here.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = iter(
                [
                    {INPUT: np.ascontiguousarray(calibration[i : i + batch], dtype=np.float32)}
                    for i in range(0, len(calibration), batch)
                ]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    if len(calibration) == 0:
        raise QuantizationError("no calibration images: INT8 needs recent production images")
    with tempfile.TemporaryDirectory(prefix="dw-quant-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(onnx_model)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:
            raise QuantizationError(f"INT8 quantization failed: {exc}") from exc
        return out.read_bytes()


@dataclass(frozen=True)
class Int8Check:
    """FP32 vs INT8 accuracy on the held-out set and whether the drop is allowed."""

    fp32_accuracy: float
    int8_accuracy: float
    max_drop: float
    n: int

    @property
    def drop(self) -> float:
        return self.fp32_accuracy - self.int8_accuracy

    @property
    def ok(self) -> bool:
        return self.drop <= self.max_drop + 1e-12

    def reason(self) -> str:
        return (
            f"INT8 accuracy {self.int8_accuracy:.2%} is {self.drop * 100:.1f} points below FP32 "
            f"{self.fp32_accuracy:.2%} on {self.n} held-out images (allowed: "
            f"{self.max_drop * 100:.1f})"
        )


def measure_int8(
    fp32_session: Any, int8_session: Any, x: np.ndarray, y: np.ndarray, max_drop: float
) -> Int8Check:
    """Accuracy of both sessions on held-out ``(x, y)`` and whether INT8's drop is allowed."""

    fp32 = float((run(fp32_session, x)[0].argmax(1) == y).mean())
    int8 = float((run(int8_session, x)[0].argmax(1) == y).mean())
    return Int8Check(fp32_accuracy=fp32, int8_accuracy=int8, max_drop=max_drop, n=len(y))


def check_int8(
    fp32_session: Any, int8_session: Any, x: np.ndarray, y: np.ndarray, max_drop: float
) -> Int8Check:
    """:func:`measure_int8`, raising if INT8 drops more than allowed."""

    check = measure_int8(fp32_session, int8_session, x, y, max_drop)
    if not check.ok:
        raise QuantizationError(check.reason())
    return check


@dataclass(frozen=True)
class FormatChoice:
    """Which ONNX artifact to serve, from both formats' latency at the serving batch size on
    the target's threads: INT8 only when it is at least ``min_speedup`` times faster."""

    fp32_ms: float
    int8_ms: float
    min_speedup: float
    batch: int
    threads: int
    accuracy_refusal: str = ""  # why INT8 may not serve whatever its speed (accuracy lost)

    @property
    def speedup(self) -> float:
        """FP32 time over INT8 time (above 1: INT8 is faster)."""
        return self.fp32_ms / self.int8_ms if self.int8_ms > 0 else float("inf")

    @property
    def chosen(self) -> str:
        if self.accuracy_refusal:
            return "fp32"
        return "int8" if self.speedup >= self.min_speedup else "fp32"

    def reason(self) -> str:
        if self.accuracy_refusal:
            return f"serving FP32: {self.accuracy_refusal}"
        verb = "serving INT8" if self.chosen == "int8" else "serving FP32"
        return (
            f"{verb}: INT8 is {self.speedup:.2f}x FP32 ({self.int8_ms:.2f} vs {self.fp32_ms:.2f} "
            f"ms per batch of {self.batch}, {self.threads} thread(s)); INT8 needs "
            f"{self.min_speedup:.2f}x"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "speedup": self.speedup,
            "fp32_ms": self.fp32_ms,
            "int8_ms": self.int8_ms,
            "min_speedup": self.min_speedup,
            "batch": self.batch,
            "threads": self.threads,
            "reason": self.reason(),
        }


def paired_batch_ms(
    fp32_session: Any, int8_session: Any, x: np.ndarray, batch: int, repeats: int = 30
) -> tuple[float, float]:
    """Median milliseconds per batch of both sessions, timed alternately on the same batch
    (so a noisy neighbour slows both, not one)."""
    import time

    xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])), dtype=np.float32)
    times: dict[int, list[float]] = {0: [], 1: []}
    for sess in (fp32_session, int8_session):  # warm-up
        sess.run(list(OUTPUTS), {INPUT: xb})
    for i in range(2 * repeats):
        k = i % 2
        t0 = time.perf_counter()
        (fp32_session, int8_session)[k].run(list(OUTPUTS), {INPUT: xb})
        times[k].append((time.perf_counter() - t0) * 1000)
    return float(np.median(times[0])), float(np.median(times[1]))


def choose_format(
    fp32: bytes,
    int8: bytes,
    x: np.ndarray,
    batch: int,
    threads: int,
    min_speedup: float,
    accuracy_refusal: str = "",
) -> FormatChoice:
    """Time both models at ``batch`` on ``threads`` intra-op threads and choose; an
    ``accuracy_refusal`` (INT8 lost too much accuracy) ships FP32 whatever the speed."""
    from retrain.export import session

    f_ms, i_ms = paired_batch_ms(session(fp32, threads), session(int8, threads), x, batch)
    return FormatChoice(f_ms, i_ms, min_speedup, batch, threads, accuracy_refusal)
