"""The fast lane of validation: decode a whole batch of prediction logs with msgspec and check
their numbers with numpy, producing ``predictions`` rows directly.

It only ever *accepts*: a message it cannot vouch for (any schema rule broken, top-k logs,
thumbnails, unusual but legal encodings such as numbers in strings) goes to the pydantic
schema in :mod:`monitor.schemas`, which stays the one definition of what is valid and words
the error. ``tests/test_ingest_fastpath.py`` checks that both lanes agree.

>>> from ingest.sdk import encode_prediction
>>> from monitor.schemas import Limits
>>> rows, slow = fast_rows([encode_prediction("m", "v1", "r1", [0.25, 0.75]), b"{"], Limits())
>>> [r["predicted_class"] for r in rows], slow
([1], [1])
"""

from __future__ import annotations

import binascii
import math
import re
import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import numpy as np

from monitor.schemas import (
    ID_PATTERN,
    MAX_TAG_VALUE,
    MAX_TAGS,
    NAME_PATTERN,
    STAT_KEY_PATTERN,
    SUPPORTED_VERSIONS,
    TAG_KEY_PATTERN,
    Limits,
    path_safe,
)


class _Embedding(msgspec.Struct, forbid_unknown_fields=True):
    dtype: Literal["float16", "float32"]
    dim: int
    data: str


class _Log(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    model_version: str
    request_id: str
    timestamp: datetime
    predicted_class: int
    probabilities: list[float]
    schema_version: int = 1
    embedding: _Embedding | None = None
    pixel_stats: dict[str, float] | None = None
    latency_ms: float | None = None
    arm: Literal["stable", "canary"] | None = None
    tags: dict[str, str] | None = None
    label: int | None = None


_DECODER = msgspec.json.Decoder(_Log)
_NAME = re.compile(NAME_PATTERN)
_ID = re.compile(ID_PATTERN)
_STAT_KEY = re.compile(STAT_KEY_PATTERN)
_TAG_KEY = re.compile(TAG_KEY_PATTERN)
_ITEMSIZE = {"float16": 2, "float32": 4}
_BIG_ENDIAN = sys.byteorder == "big"


def _embedding(log: _Log, limits: Limits) -> bytes | Literal[False] | None:
    """The embedding's bytes (None without one), or False when the slow lane must judge it."""
    emb = log.embedding
    if emb is None:
        return None
    expected = limits.embedding_dims.get(log.model)
    if not 1 <= emb.dim <= limits.max_embedding_dim or expected not in (None, emb.dim):
        return False
    try:
        data = binascii.a2b_base64(emb.data, strict_mode=True)
    except binascii.Error:
        return False
    return data if len(data) == emb.dim * _ITEMSIZE[emb.dtype] else False


def _tags_ok(tags: dict[str, str]) -> bool:
    return len(tags) <= MAX_TAGS and all(
        _TAG_KEY.fullmatch(k) and len(v) <= MAX_TAG_VALUE for k, v in tags.items()
    )


def _plain(log: _Log, limits: Limits, now: datetime) -> bool:
    """Whether every scalar rule holds for ``log`` (the slow lane words what does not)."""
    if log.schema_version not in SUPPORTED_VERSIONS:
        return False
    if not (_NAME.fullmatch(log.model) and _NAME.fullmatch(log.model_version)):
        return False
    if not (path_safe(log.model) and path_safe(log.model_version)):
        return False
    if not _ID.fullmatch(log.request_id) or log.predicted_class < 0:
        return False
    probs = log.probabilities
    n = len(probs)
    if not 2 <= n <= limits.max_classes or log.predicted_class >= n:
        return False
    if not all(map(math.isfinite, probs)) or min(probs) < 0:
        return False
    if abs(math.fsum(probs) - 1.0) > limits.probability_tolerance:
        return False
    ts = log.timestamp if log.timestamp.tzinfo else log.timestamp.replace(tzinfo=UTC)
    if ts - now > limits.max_future_skew or ts < limits.earliest(now):
        return False
    stats = log.pixel_stats
    if stats is not None and (
        len(stats) > 64
        or not all(map(math.isfinite, stats.values()))
        or not all(map(_STAT_KEY.fullmatch, stats))
    ):
        return False
    if log.latency_ms is not None and not (math.isfinite(log.latency_ms) and log.latency_ms >= 0):
        return False
    if log.tags is not None and not _tags_ok(log.tags):
        return False
    return log.label is None or 0 <= log.label < limits.max_classes


def _row(log: _Log, limits: Limits, now: datetime) -> dict[str, Any] | None:
    """The row of one decoded log, or None when any rule needs the slow lane to judge it."""
    if not _plain(log, limits, now):
        return None
    emb_bytes = _embedding(log, limits)
    if emb_bytes is False:
        return None
    probs, stats, emb = log.probabilities, log.pixel_stats, log.embedding
    n = len(probs)
    ts = log.timestamp if log.timestamp.tzinfo else log.timestamp.replace(tzinfo=UTC)
    packed = array("f", probs)
    if _BIG_ENDIAN:
        packed.byteswap()
    return {
        "model": log.model,
        "model_version": log.model_version,
        "request_id": log.request_id,
        "ts": ts,
        "predicted_class": log.predicted_class,
        "n_classes": n,
        "confidence": max(packed),
        "probs": packed.tobytes(),
        "embedding": emb_bytes,
        "embedding_dtype": None if emb is None else emb.dtype,
        "pixel_stats": None if stats is None else msgspec.json.encode(stats).decode(),
        "thumbnail": None,
        "latency_ms": log.latency_ms,
        "arm": log.arm,
        "tags": msgspec.json.encode(log.tags).decode() if log.tags else None,
        "label": log.label,
    }


def _finite_embeddings(rows: list[dict[str, Any]]) -> list[bool]:
    """Whether each row's embedding is free of NaN and infinity, checked per (dtype, dim)."""
    ok = [True] * len(rows)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, row in enumerate(rows):
        if row["embedding"] is not None:
            key = (row["embedding_dtype"], len(row["embedding"]))
            groups.setdefault(key, []).append(i)
    for (dtype, _nbytes), idx in groups.items():
        flat = np.frombuffer(
            b"".join(rows[i]["embedding"] for i in idx), "<f2" if dtype == "float16" else "<f4"
        )
        good = np.isfinite(flat.reshape(len(idx), -1)).all(axis=1)
        for i, g in zip(idx, good.tolist(), strict=True):
            ok[i] = g
    return ok


def fast_rows(
    values: Sequence[bytes], limits: Limits, max_bytes: int = 1 << 20
) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of the messages the fast lane accepts (in order), and the indices of ``values``
    it left for the slow lane."""
    now = limits.now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    index: list[int] = []  # of each row in ``values``
    slow: list[int] = []
    for i, raw in enumerate(values):
        try:
            row = None if len(raw) > max_bytes else _row(_DECODER.decode(raw), limits, now)
        except (msgspec.ValidationError, msgspec.DecodeError, OverflowError, ValueError):
            row = None
        if row is None:
            slow.append(i)
        else:
            index.append(i)
            rows.append(row)
    finite = _finite_embeddings(rows)
    if not all(finite):
        slow = sorted(slow + [i for i, f in zip(index, finite, strict=True) if not f])
        rows = [r for r, f in zip(rows, finite, strict=True) if f]
    return rows, slow
