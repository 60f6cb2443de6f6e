"""Wire schemas: every rule a producer can break has a clear error, and everything the SDK can
produce validates and round-trips (hypothesis)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ingest.sdk import encode_label, encode_prediction
from monitor.errors import InvalidMessage
from monitor.imagestats import STAT_NAMES
from monitor.schemas import (
    EncodedArray,
    LabelEvent,
    Limits,
    PredictionLog,
    Rejected,
    decode_array,
    encode_array,
    parse_message,
)

LIMITS = Limits()


def _msg(**changes: Any) -> bytes:
    msg = json.loads(
        encode_prediction("digits", "v1", "r1", [0.25, 0.75], embedding=np.ones(4, np.float32))
    )
    msg.update(changes)
    return json.dumps(msg).encode()


def _reject(raw: bytes, limits: Limits = LIMITS, max_bytes: int = 100_000) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        parse_message(raw, PredictionLog, limits, max_bytes)
    return info.value


@pytest.mark.parametrize(
    ("raw", "reason", "words"),
    [
        (b"{oops", "bad_json", "JSON"),
        (_msg(probabilities=[0.5, 0.6]), "schema", "sum to 1.1"),
        (_msg(probabilities=[math.nan, 1.0]), "schema", "NaN"),
        (_msg(probabilities=[-0.5, 1.5]), "schema", "negative"),
        (_msg(predicted_class=5), "schema", "predicted_class 5"),
        (_msg(predicted_class="five"), "schema", "predicted_class"),
        (_msg(embedding=[1.0, math.inf]), "schema", "infinity"),
        (
            _msg(embedding={"dtype": "float32", "dim": 3, "data": "AAAA"}),
            "schema",
            "expected dim*4",
        ),
        (_msg(schema_version=2), "unknown_version", "unknown schema_version 2"),
        (_msg(timestamp="2999-01-01T00:00:00Z"), "schema", "in the future"),
        (_msg(pixel_stats={"brightness": math.nan}), "schema", "pixel_stats"),
        (_msg(extra_field=1), "schema", "extra_field"),
        (_msg(probabilities=None), "schema", "one of probabilities or top_k"),
    ],
)
def test_each_broken_rule_has_a_clear_reason(raw: bytes, reason: str, words: str) -> None:
    exc = _reject(raw)
    assert exc.reason == reason
    assert words in exc.message


def test_limits_from_settings_apply() -> None:
    assert _reject(_msg(), max_bytes=100).reason == "oversized"
    exc = _reject(_msg(), Limits(embedding_dims={"digits": 8}))
    assert "model 'digits' uses 8" in exc.message
    big = _msg(thumbnail="A" * 2000)
    assert "over the 1000-byte limit" in _reject(big, Limits(max_thumbnail_bytes=1000)).message
    fixed = Limits(now=datetime(2020, 1, 1, tzinfo=UTC), max_future_skew=timedelta(seconds=1))
    assert "in the future" in _reject(_msg(), fixed).message


def test_top_k_spreads_the_rest(make_log: Callable[..., PredictionLog]) -> None:
    base = make_log().model_dump(exclude={"probabilities"})
    log = PredictionLog.model_validate(
        {**base, "top_k": {3: 0.7, 1: 0.2}, "n_classes": 5, "predicted_class": 3}
    )
    np.testing.assert_allclose(
        log.probability_vector(), [0.1 / 3, 0.2, 0.1 / 3, 0.7, 0.1 / 3], rtol=1e-6
    )


def test_rejected_keeps_the_original_bytes() -> None:
    exc = InvalidMessage("bad_json", "nope")
    rej = Rejected.of(exc, "t", 2, 41, b"\xff\x00raw", b"key")
    back = Rejected.model_validate_json(rej.model_dump_json())
    assert (back.reason, back.topic, back.partition, back.offset, back.key) == (
        "bad_json",
        "t",
        2,
        41,
        "key",
    )
    import base64

    assert base64.b64decode(back.raw) == b"\xff\x00raw"


finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


def ids(max_size: int) -> st.SearchStrategy[str]:
    """Request ids: printable text (no control characters, no lone surrogates)."""
    return st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=max_size)


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    model=names,
    version=names,
    request_id=ids(40),
    logits=arrays(np.float64, st.integers(2, 40), elements=st.floats(-20, 20)),
    emb=st.none() | arrays(np.float32, st.integers(1, 300), elements=finite),
    dtype=st.sampled_from(["float16", "float32"]),
    stats=st.none() | arrays(np.float64, len(STAT_NAMES), elements=st.floats(0, 1e4)),
    latency=st.none() | st.floats(0, 1e6),
    arm=st.none() | st.sampled_from(["stable", "canary"]),
    label=st.none() | st.integers(0, 1000),
    ts=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
def test_anything_the_sdk_produces_validates_and_round_trips(
    model: str,
    version: str,
    request_id: str,
    logits: np.ndarray,
    emb: np.ndarray | None,
    dtype: Any,
    stats: np.ndarray | None,
    latency: float | None,
    arm: Any,
    label: int | None,
    ts: datetime,
) -> None:
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    pixel = None if stats is None else dict(zip(STAT_NAMES, stats.tolist(), strict=True))
    raw = encode_prediction(
        model,
        version,
        request_id,
        probs,
        embedding=emb,
        embedding_dtype=dtype,
        pixel_stats=pixel,
        latency_ms=latency,
        arm=arm,
        label=label,
        timestamp=ts,
    )
    limits = Limits(now=datetime(2030, 1, 2, tzinfo=UTC))
    log: PredictionLog = parse_message(raw, PredictionLog, limits, 1_000_000)
    assert (log.model, log.model_version, log.request_id) == (model, version, request_id)
    assert (
        log.timestamp == ts and log.arm == arm and log.label == label and log.latency_ms == latency
    )
    assert log.predicted_class == int(np.argmax(probs))
    np.testing.assert_array_equal(log.probability_vector(), probs.astype(np.float32))
    assert log.pixel_stats == pixel
    got = log.embedding_vector()
    if emb is None:
        assert got is None
    elif dtype == "float32":
        np.testing.assert_array_equal(got, emb)
    else:
        assert got is not None
        np.testing.assert_array_equal(got, emb.astype(np.float16).astype(np.float32))
    # and a dump of the parsed log is the same message again
    again = PredictionLog.model_validate_json(log.model_dump_json(), context={"limits": limits})
    assert again == log


@given(model=names, request_id=ids(128), label=st.integers(0, 9999))
def test_labels_round_trip(model: str, request_id: str, label: int) -> None:
    event: LabelEvent = parse_message(
        encode_label(model, request_id, label), LabelEvent, LIMITS, 4096
    )
    assert (event.model, event.request_id, event.label) == (model, request_id, label)


@given(arrays(np.float32, st.integers(1, 64), elements=finite))
def test_encoded_arrays_round_trip(values: np.ndarray) -> None:
    enc = EncodedArray.model_validate_json(encode_array(values, "float32").model_dump_json())
    np.testing.assert_array_equal(decode_array(enc), values)
