"""ONNX export parity and the INT8 accuracy gate, including models and thresholds that fail."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from retrain.digits import train_holdout
from retrain.export import ParityError, check_parity, export_onnx, run, session
from retrain.model import DigitsNet, predict
from retrain.quantize import FormatChoice, QuantizationError, check_int8, quantize_int8
from retrain.recipes import digits_input, load_state, state_bytes, train_baseline

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def data() -> tuple[DigitsNet, np.ndarray, np.ndarray]:
    _, hold = train_holdout(seed=0)
    return train_baseline(), digits_input(hold.images), hold.labels


def quantization_breaker(net: DigitsNet) -> DigitsNet:
    """The same FP32 function, but one embedding unit spans ~1e5: per-tensor INT8 activations of
    the embedding then have no resolution left for the 63 units the head reads."""
    broken = load_state(DigitsNet(), state_bytes(net))
    with torch.no_grad():
        dense = broken.features[-2]
        dense.weight[0].zero_()
        dense.bias[0] = 1e5
        broken.head.weight[:, 0] = 0.0
    return broken


def test_export_outputs_logits_and_embedding_within_tolerance(data: tuple) -> None:
    net, x, _ = data
    model = export_onnx(net, x[:2])
    graph = onnx.load_from_string(model).graph
    assert [o.name for o in graph.output] == ["logits", "embedding"]
    parity = check_parity(net, model, x[:256], tolerance=1e-4)
    assert parity.ok and parity.max_abs_logits < 1e-4
    logits, emb = run(session(model), x[:7])  # dynamic batch
    _, emb_t = predict(net, (x[:7, 0] * 255).round().astype(np.uint8))
    assert logits.shape == (7, 10) and emb.shape == (7, 64)
    np.testing.assert_allclose(emb, emb_t, atol=1e-4)


def test_parity_fails_with_a_clear_reason_under_an_impossible_tolerance(data: tuple) -> None:
    net, x, _ = data
    with pytest.raises(ParityError, match=r"ONNX parity failed on 64 images: max \|logits diff\|"):
        check_parity(net, export_onnx(net, x[:2]), x[:64], tolerance=1e-12)


def test_int8_is_qdq_smaller_and_within_one_point(data: tuple) -> None:
    net, x, y = data
    fp32 = export_onnx(net, x[:2])
    int8 = quantize_int8(fp32, x[:256])
    ops = {n.op_type for n in onnx.load_from_string(int8).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert len(int8) < len(fp32) / 2.5
    check = check_int8(session(fp32), session(int8), x, y, max_drop=0.01)
    assert (
        check.ok and check.fp32_accuracy > 0.9 and check.int8_accuracy >= check.fp32_accuracy - 0.01
    )


def test_int8_gate_refuses_a_model_that_quantization_breaks(data: tuple) -> None:
    net, x, y = data
    broken = quantization_breaker(net)
    fp32 = export_onnx(broken, x[:2])
    check_parity(broken, fp32, x[:64], tolerance=1e-2)  # FP32 still computes the same function
    assert (
        predict(broken, (x[:, 0] * 255).round().astype(np.uint8))[0].argmax(1) == y
    ).mean() > 0.9
    int8 = quantize_int8(fp32, x[:256])
    with pytest.raises(
        QuantizationError, match=r"INT8 accuracy .* points below FP32 .*allowed: 1\.0"
    ):
        check_int8(session(fp32), session(int8), x, y, max_drop=0.01)


def test_int8_gate_refuses_under_a_tightened_threshold(data: tuple) -> None:
    net, x, y = data
    fp32 = export_onnx(net, x[:2])
    int8 = quantize_int8(fp32, x[:256])
    with pytest.raises(QuantizationError, match=r"allowed: -1\.0"):
        check_int8(session(fp32), session(int8), x, y, max_drop=-0.01)


def test_quantize_needs_calibration_images(data: tuple) -> None:
    net, x, _ = data
    with pytest.raises(QuantizationError, match="no calibration images"):
        quantize_int8(export_onnx(net, x[:2]), x[:0])


def test_format_choice_serves_int8_only_when_it_pays() -> None:
    slow = FormatChoice(fp32_ms=3.0, int8_ms=4.0, min_speedup=1.1, batch=32, threads=1)
    assert slow.chosen == "fp32" and slow.speedup == pytest.approx(0.75)
    assert slow.reason().startswith("serving FP32: INT8 is 0.75x FP32")
    assert "batch of 32, 1 thread(s)" in slow.reason()
    # Faster, but not by the margin: still FP32; past the margin: INT8.
    assert FormatChoice(3.0, 2.9, 1.1, 32, 1).chosen == "fp32"
    assert FormatChoice(3.0, 2.0, 1.1, 32, 1).chosen == "int8"


def test_build_ships_fp32_when_int8_is_not_faster_and_the_gate_says_so(data: tuple) -> None:
    from monitor.settings import RetrainSettings, Settings
    from monitor.store.retrain_tables import ModelVersion
    from retrain.gate import GateReport, ModelScores
    from retrain.pipeline import build_artifacts
    from retrain.quantize import choose_format
    from retrain.rollout import served_artifact

    net, x, y = data
    fp32 = export_onnx(net, x[:2])
    int8 = quantize_int8(fp32, x[:256])
    measured = choose_format(fp32, int8, x, batch=32, threads=1, min_speedup=1.0)
    assert measured.fp32_ms > 0 and measured.int8_ms > 0 and measured.batch == 32
    # A margin INT8 cannot reach on any machine: the build must ship FP32.
    cfg = RetrainSettings(int8_min_speedup=1000.0, serving_batch=32, serving_threads=1)
    _, _, figures = build_artifacts(net, x, x, y, Settings(environment="test", retrain=cfg))
    fmt = figures["format"]
    assert fmt["chosen"] == "fp32" and fmt["min_speedup"] == 1000.0
    assert fmt["reason"].startswith("serving FP32: INT8 is")
    artifacts = {"onnx_fp32": {}, "onnx_int8": {}}
    mv = ModelVersion(model="m", version="v", artifacts=artifacts, metrics=figures)
    assert served_artifact(mv) == "onnx_fp32"
    legacy = ModelVersion(model="m", version="v0", artifacts=artifacts, metrics={})
    assert served_artifact(legacy) == "onnx_int8"
    scores = ModelScores.of(y, np.eye(10)[y])
    report = GateReport(
        {"candidate": scores, "current": scores},
        {"candidate": scores, "current": scores},
        1.0,
        1.0,
        {"candidate": {"p50": 1.0, "p99": 2.0}},
        {"candidate": 1},
        formats=fmt,
    )
    assert f"format: {fmt['reason']}" in report.summary()


def test_int8_that_loses_accuracy_ships_fp32_whatever_its_speed() -> None:
    fast = FormatChoice(fp32_ms=10.0, int8_ms=2.0, min_speedup=1.1, batch=32, threads=1)
    assert fast.chosen == "int8"
    refused = FormatChoice(10.0, 2.0, 1.1, 32, 1, accuracy_refusal="INT8 accuracy 80% is 7 points")
    assert refused.chosen == "fp32"
    assert refused.to_dict()["reason"] == "serving FP32: INT8 accuracy 80% is 7 points"
