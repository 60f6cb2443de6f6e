"""Wire encoding of prediction logs and labels, with no dependency beyond numpy and Pillow.

Arrays may be numpy arrays, sequences or torch tensors (on any device: a tensor is detached and
copied to the CPU first; torch itself is never imported here). The bytes follow
``prediction_log.schema.json`` next to this module, which the server's schema generates.

>>> import json
>>> raw = encode_prediction("digits", "v1", "req-1", [0.25, 0.75], tags={"camera": "dock-3"},
...                         timestamp=0.0)
>>> msg = json.loads(raw)
>>> msg["predicted_class"], msg["tags"], msg["timestamp"]
(1, {'camera': 'dock-3'}, '1970-01-01T00:00:00+00:00')
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, Union

import numpy as np

from driftwatch_sdk.imagestats import encode_png

SCHEMA_VERSION = 1
Arm = Literal["stable", "canary"]
EmbeddingDtype = Literal["float16", "float32"]
#: What a tag key may look like, how long a value may be and how many tags one log carries.
TAG_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_TAG_VALUE = 128
MAX_TAGS = 16
ArrayLike = Any  # numpy array, sequence of floats or a torch tensor
Timestamp = Union[datetime, float, str, None]

_TAG_KEY = re.compile(TAG_KEY_PATTERN)


def to_numpy(values: ArrayLike, dtype: Any = None) -> np.ndarray:
    """``values`` as a numpy array; a torch tensor is detached and moved to the CPU first.

    >>> to_numpy([1, 2], np.float32).dtype
    dtype('float32')
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def iso_timestamp(timestamp: Timestamp) -> str:
    """ISO 8601 text of ``timestamp`` (seconds since the epoch, datetime or text; None: now)."""
    if isinstance(timestamp, str):
        return timestamp
    if timestamp is None:
        return datetime.now(timezone.utc).isoformat()
    if isinstance(timestamp, datetime):
        aware = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
        return aware.isoformat()
    return datetime.fromtimestamp(float(timestamp), timezone.utc).isoformat()


def check_tags(tags: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The tags as ``str -> str``, or ``ValueError`` naming the first rule broken.

    >>> check_tags({"site": "lyon", "device": 7})
    {'site': 'lyon', 'device': '7'}
    >>> check_tags({"bad key": "x"})
    Traceback (most recent call last):
    ValueError: tag key 'bad key' does not match ^[A-Za-z0-9_.:-]{1,64}$
    """
    if not tags:
        return None
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags, at most {MAX_TAGS}")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
            raise ValueError(f"tag key {key!r} does not match {TAG_KEY_PATTERN}")
        text = str(value)
        if len(text) > MAX_TAG_VALUE:
            raise ValueError(f"tag {key!r} is {len(text)} characters, at most {MAX_TAG_VALUE}")
        out[key] = text
    return out


def encode_embedding(values: ArrayLike, dtype: EmbeddingDtype = "float16") -> dict[str, Any]:
    """The compact wire form of a 1-d embedding: base64 of little-endian float16/float32."""
    arr = np.ascontiguousarray(
        to_numpy(values).reshape(-1), dtype="<f2" if dtype == "float16" else "<f4"
    )
    return {"dtype": dtype, "dim": int(arr.size), "data": base64.b64encode(arr.tobytes()).decode()}


def thumbnail_png(image: ArrayLike, max_bytes: int) -> tuple[bytes | None, int]:
    """PNG bytes of ``image`` (uint8, (H, W) or (H, W, 3)) no larger than ``max_bytes``, and
    how many times it was halved to fit; ``(None, halvings)`` when it cannot fit.

    >>> img = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    >>> png, halved = thumbnail_png(img, 1_000)
    >>> len(png) <= 1_000, halved
    (True, 2)
    >>> thumbnail_png(img, 10)[0] is None
    True
    """
    from PIL import Image

    arr = to_numpy(image, np.uint8)
    halved = 0
    while True:
        png = encode_png(arr)
        if len(png) <= max_bytes:
            return png, halved
        h, w = arr.shape[:2]
        if min(h, w) // 2 < 8:
            return None, halved
        img = Image.fromarray(arr).resize((w // 2, h // 2), Image.Resampling.BOX)
        arr, halved = np.asarray(img), halved + 1


def encode_prediction(
    model: str,
    model_version: str,
    request_id: str | None,
    probs: ArrayLike | Sequence[float],
    *,
    embedding: ArrayLike | None = None,
    embedding_dtype: EmbeddingDtype = "float16",
    pixel_stats: Mapping[str, float] | None = None,
    predicted_class: int | None = None,
    latency_ms: float | None = None,
    arm: Arm | None = None,
    label: int | None = None,
    timestamp: Timestamp = None,
    thumbnail: bytes | None = None,
    tags: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON bytes of one prediction log (compact embedding; ``thumbnail`` is PNG or JPEG
    bytes, sent as base64; ``tags`` are segments such as camera, site or device)."""
    p = to_numpy(probs, np.float64).reshape(-1)
    msg: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "model_version": model_version,
        "request_id": request_id or uuid.uuid4().hex,
        "timestamp": iso_timestamp(timestamp),
        "predicted_class": int(np.argmax(p)) if predicted_class is None else int(predicted_class),
        "probabilities": p.tolist(),
    }
    if embedding is not None:
        msg["embedding"] = encode_embedding(embedding, embedding_dtype)
    if pixel_stats is not None:
        msg["pixel_stats"] = {k: float(v) for k, v in pixel_stats.items()}
    if latency_ms is not None:
        msg["latency_ms"] = float(latency_ms)
    if arm is not None:
        msg["arm"] = arm
    if label is not None:
        msg["label"] = int(label)
    if thumbnail is not None:
        msg["thumbnail"] = base64.b64encode(thumbnail).decode()
    checked = check_tags(tags)
    if checked:
        msg["tags"] = checked
    return json.dumps(msg, separators=(",", ":")).encode()


def encode_label(model: str, request_id: str, label: int, timestamp: Timestamp = None) -> bytes:
    """The JSON bytes of one label event (the true class of a logged prediction)."""
    msg = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "request_id": request_id,
        "label": int(label),
        "timestamp": iso_timestamp(timestamp),
    }
    return json.dumps(msg, separators=(",", ":")).encode()
