"""ONNX export of a classifier with its embedding, and the parity check against torch.

The exported graph has one input ``image`` (N, C, H, W) float32 in [0, 1] with a dynamic batch
axis, and two outputs: ``logits`` (N, classes) and ``embedding`` (N, D), the penultimate layer
the drift detectors read.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monitor.errors import DriftwatchError

INPUT = "image"
OUTPUTS = ("logits", "embedding")


class ParityError(DriftwatchError):
    """ONNX Runtime's output differs from torch's by more than the tolerance."""


class WithEmbedding(nn.Module):
    """Wraps a model with ``embed`` and ``head`` so one call gives (logits, embedding)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.net.embed(x)  # type: ignore[operator]
        return self.net.head(emb), emb  # type: ignore[operator]


def export_onnx(net: nn.Module, sample: np.ndarray, opset: int = 17) -> bytes:
    """The ONNX bytes of ``net`` (with ``embed``/``head``) traced on ``sample`` (N, C, H, W)."""
    net.eval()
    wrapped = WithEmbedding(net).eval()
    buf = io.BytesIO()
    x = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated but exact, fast and dependency-free here.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                wrapped,
                (x,),
                buf,  # type: ignore[arg-type]  # a BytesIO works; the stub says path
                input_names=[INPUT],
                output_names=list(OUTPUTS),
                dynamic_axes={
                    INPUT: {0: "batch"},
                    OUTPUTS[0]: {0: "batch"},
                    OUTPUTS[1]: {0: "batch"},
                },
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:
        raise DriftwatchError(f"ONNX export failed: {exc}") from exc
    return buf.getvalue()


def session(model: bytes | Path | str, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session over model bytes or a file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def run(sess: Any, x: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(logits, embedding) of ``x`` (N, C, H, W) through an ONNX Runtime session, in batches."""
    logits, emb = [], []
    for start in range(0, len(x), batch):
        lo, em = sess.run(
            list(OUTPUTS), {INPUT: np.ascontiguousarray(x[start : start + batch], dtype=np.float32)}
        )
        logits.append(lo)
        emb.append(em)
    return np.concatenate(logits), np.concatenate(emb)


@dataclass(frozen=True)
class Parity:
    """The largest absolute differences of ORT FP32 vs torch on the calibration batch."""

    max_abs_logits: float
    max_abs_embedding: float
    tolerance: float
    n: int

    @property
    def ok(self) -> bool:
        return max(self.max_abs_logits, self.max_abs_embedding) <= self.tolerance


@torch.no_grad()
def check_parity(net: nn.Module, onnx_model: bytes, x: np.ndarray, tolerance: float) -> Parity:
    """Compare torch and ONNX Runtime on ``x``; raise :class:`ParityError` beyond ``tolerance``."""
    net.eval()
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    emb_t = net.embed(t)  # type: ignore[operator]
    logits_t = net.head(emb_t)  # type: ignore[operator]
    logits_o, emb_o = run(session(onnx_model), x)
    parity = Parity(
        max_abs_logits=float(np.abs(logits_o - logits_t.numpy()).max()),
        max_abs_embedding=float(np.abs(emb_o - emb_t.numpy()).max()),
        tolerance=tolerance,
        n=len(x),
    )
    if not parity.ok:
        raise ParityError(
            f"ONNX parity failed on {parity.n} images: max |logits diff| "
            f"{parity.max_abs_logits:.2e}, max |embedding diff| {parity.max_abs_embedding:.2e} "
            f"> tolerance {tolerance:.1e}"
        )
    return parity
