"""The msgspec fast lane never accepts what the pydantic schema refuses, and builds the same row."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ingest.fastpath import fast_rows
from ingest.sdk import encode_prediction
from monitor.errors import InvalidMessage
from monitor.imagestats import STAT_NAMES
from monitor.schemas import Limits, PredictionLog, parse_message
from monitor.store.ingest_repo import prediction_row

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
LIMITS = Limits(now=NOW, embedding_dims={"strict": 8}, max_classes=50)
MAX_BYTES = 4000

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.floats(-2, 2), max_size=3),
    st.just({"dtype": "float32", "dim": 2, "data": "AAAAAAAAAAA="}),
    st.just({"dtype": "float16", "dim": 2, "data": "AAA="}),
    st.just({"dtype": "float16", "dim": 1, "data": "AHw="}),  # +inf in float16
    st.just("2026-11-22T12:00:00"),
    st.just("2030-01-01T00:00:00Z"),
    st.just(1_700_000_000),
    st.just("strict"),
    st.just("canary"),
    st.just("bad name!"),
    st.just(" x" * 3000),
)
fields = st.sampled_from(
    [
        "schema_version",
        "model",
        "model_version",
        "request_id",
        "timestamp",
        "predicted_class",
        "probabilities",
        "embedding",
        "pixel_stats",
        "latency_ms",
        "arm",
        "label",
        "top_k",
        "n_classes",
        "thumbnail",
        "unknown",
    ]
)


def _base(seed: int, dim: int, dtype: Any, model: str) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(int(rng.integers(2, 12))))
    raw = encode_prediction(
        model,
        "v1",
        f"r{seed}",
        probs,
        embedding=rng.normal(size=dim).astype(np.float32),
        embedding_dtype=dtype,
        pixel_stats=dict(zip(STAT_NAMES, rng.uniform(size=13), strict=True)),
        latency_ms=float(rng.uniform(0, 50)),
        arm="canary",
        label=int(rng.integers(0, 2)),
        timestamp=NOW - timedelta(seconds=int(rng.integers(0, 10**6))),
    )
    msg: dict[str, Any] = json.loads(raw)
    return msg


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    dim=st.sampled_from([4, 8]),
    dtype=st.sampled_from(["float16", "float32"]),
    model=st.sampled_from(["digits", "strict"]),
    edits=st.lists(st.tuples(fields, st.booleans(), odd_values), max_size=3),
)
def test_fast_lane_agrees_with_the_schema(
    seed: int, dim: int, dtype: Any, model: str, edits: list[tuple[str, bool, Any]]
) -> None:
    msg = _base(seed, dim, dtype, model)
    for name, delete, value in edits:
        if delete:
            msg.pop(name, None)
        else:
            msg[name] = value
    raw = json.dumps(msg, allow_nan=True).encode()
    rows, slow = fast_rows([raw], LIMITS, MAX_BYTES)
    try:
        log: PredictionLog | None = parse_message(raw, PredictionLog, LIMITS, MAX_BYTES)
    except InvalidMessage:
        log = None
    event("fast" if rows else "schema rejects" if log is None else "slow lane accepts")
    if log is None:
        assert rows == [] and slow == [0], msg
        return
    if not rows:
        return  # the slow lane judges it: always allowed
    assert rows[0] == prediction_row(log)


def test_every_sdk_message_takes_the_fast_lane() -> None:
    values = [json.dumps(_base(s, 8, "float16", "digits")).encode() for s in range(50)]
    rows, slow = fast_rows(values, LIMITS, MAX_BYTES)
    assert len(rows) == 50 and slow == []
