"""One JSON Schema for the wire: the checked-in file is what the server's pydantic model
generates, what the SDK produces is valid against both, and they agree on tags."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import driftwatch_sdk
from driftwatch_sdk import check_tags, encode_label, encode_prediction
from monitor.schemas import LabelEvent, PredictionLog

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = Path(driftwatch_sdk.__file__).with_name(driftwatch_sdk.SCHEMA_FILE)
SCHEMA = json.loads(SCHEMA_PATH.read_text())
# jsonschema_rs: ECMA-262 regex semantics as JSON Schema asks (Python's ``re`` lets ``$``
# match before a trailing newline, which neither the server nor the SDK accepts).
VALIDATOR = jsonschema_rs.Draft202012Validator(SCHEMA, validate_formats=True)
LABEL_VALIDATOR = jsonschema_rs.Draft202012Validator(
    {**SCHEMA["$defs"]["LabelEvent"], "$defs": SCHEMA["$defs"]}, validate_formats=True
)


def test_the_file_is_what_the_server_model_generates() -> None:
    sys.path.insert(0, str(ROOT / "sdk"))
    try:
        from generate_schema import render
    finally:
        sys.path.pop(0)
    assert SCHEMA_PATH.read_text() == render(), "run: PYTHONPATH=. python sdk/generate_schema.py"
    assert set(SCHEMA["properties"]) == set(PredictionLog.model_fields)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def _both(raw: bytes) -> tuple[bool, bool]:
    """(valid for the JSON Schema, valid for the server's model)."""
    doc = json.loads(raw)
    try:
        PredictionLog.model_validate_json(raw)
        server = True
    except ValidationError:
        server = False
    return VALIDATOR.is_valid(doc), server


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"embedding": np.arange(8, dtype=np.float32), "arm": "stable", "label": 1},
        {"embedding": torch.ones(4, requires_grad=True), "embedding_dtype": "float32"},
        {"thumbnail": b"\x89PNG....", "latency_ms": 3.5, "pixel_stats": {"brightness": 0.4}},
        {"tags": {"camera": "dock-3", "site": "lyon", "device": 7}},
    ],
)
def test_what_the_sdk_sends_is_valid_on_both_sides(options: dict[str, Any]) -> None:
    raw = encode_prediction("digits", "v1", "r-1", torch.tensor([0.2, 0.8]), **options)
    VALIDATOR.validate(json.loads(raw))
    PredictionLog.model_validate_json(raw)
    label = encode_label("digits", "r-1", 3)
    LABEL_VALIDATOR.validate(json.loads(label))
    LabelEvent.model_validate_json(label)


@pytest.mark.parametrize(
    "change",
    [
        {"arm": "blue"},
        {"tags": {"bad key": "x"}},
        {"tags": {"k": "x" * 129}},
        {"tags": {f"k{i}": "v" for i in range(17)}},
        {"tags": {"k": 1}},
        {"surprise": 1},
        {"schema_version": "one"},
        {"timestamp": "yesterday"},
    ],
)
def test_both_sides_refuse_the_same_broken_messages(change: dict[str, Any]) -> None:
    doc = {**json.loads(encode_prediction("digits", "v1", "r", [0.5, 0.5])), **change}
    assert _both(json.dumps(doc).encode()) == (False, False)


_KEYS = st.text(st.sampled_from("ab_.:-Z9 /é\n"), min_size=0, max_size=70)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_KEYS, st.text(max_size=140), max_size=18))
def test_sdk_schema_and_server_agree_on_tags(tags: dict[str, str]) -> None:
    try:
        sdk_ok = check_tags(tags) is not None or not tags
    except ValueError:
        sdk_ok = False
    doc = {**json.loads(encode_prediction("digits", "v1", "r", [0.5, 0.5])), "tags": tags}
    schema_ok, server_ok = _both(json.dumps(doc).encode())
    assert sdk_ok == schema_ok == server_ok, (sdk_ok, schema_ok, server_ok)
