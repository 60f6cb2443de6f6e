"""Versioned wire schemas: what model servers put on Kafka and what goes to the dead-letter topic.

Every rule a producer can break raises a clear message. Limits that depend on settings (sizes,
tolerances, clock skew, per-model embedding dimension) come through the validation context, see
:class:`Limits`; without a context the defaults apply.

>>> import numpy as np
>>> emb = encode_array(np.arange(4, dtype=np.float32), "float32")
>>> decode_array(emb).tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.errors import InvalidMessage
from monitor.vocabulary import Arm as Arm  # re-exported: the message schema names it

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({SCHEMA_VERSION})
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$"  # request ids: printable, no control chars
STAT_KEY_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"  # keys of ``pixel_stats``
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # no timestamp before, whatever the configured window
FLOAT32_MAX = float(np.finfo(np.float32).max)  # largest magnitude a float32 column holds
EmbeddingDtype = Literal["float16", "float32"]
#: Tags (segments): at most MAX_TAGS per log, keys as below, values up to MAX_TAG_VALUE chars.
TAG_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_TAG_VALUE = 128
MAX_TAGS = 16


@dataclass(frozen=True)
class Limits:
    """Settings-dependent rules, passed as ``context={"limits": Limits(...)}``."""

    max_embedding_dim: int = 4096
    max_classes: int = 10_000
    max_thumbnail_bytes: int = 65_536
    probability_tolerance: float = 1e-3
    max_future_skew: timedelta = timedelta(minutes=5)
    max_past_age: timedelta | None = None  # None: only the 1970 floor
    embedding_dims: dict[str, int] = field(default_factory=dict)
    now: datetime | None = None  # fixed clock for tests; None means the wall clock

    def earliest(self, now: datetime) -> datetime:
        """The oldest timestamp accepted at ``now`` (never before 1970)."""
        if self.max_past_age is None or now - EPOCH <= self.max_past_age:
            return EPOCH
        return now - self.max_past_age


_DEFAULT_LIMITS = Limits()


def _limits(info: ValidationInfo) -> Limits:
    context = info.context or {}
    limits = context.get("limits", _DEFAULT_LIMITS)
    assert isinstance(limits, Limits)
    return limits


class EncodedArray(BaseModel):
    """A 1-d float array as base64 of little-endian float16 or float32 bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: EmbeddingDtype
    dim: int = Field(ge=1)
    data: str

    @model_validator(mode="after")
    def _check_length(self) -> EncodedArray:
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"embedding data is not valid base64: {exc}") from exc
        itemsize = 2 if self.dtype == "float16" else 4
        if len(raw) != self.dim * itemsize:
            raise ValueError(
                f"embedding data has {len(raw)} bytes, "
                f"expected dim*{itemsize}={self.dim * itemsize}"
            )
        return self

    def to_numpy(self) -> np.ndarray:
        """The values as a read-only numpy array of the sent dtype."""
        return np.frombuffer(
            base64.b64decode(self.data), dtype="<f2" if self.dtype == "float16" else "<f4"
        )


def encode_array(values: np.ndarray, dtype: EmbeddingDtype = "float16") -> EncodedArray:
    """Encode a 1-d array compactly for the wire."""
    arr = np.ascontiguousarray(
        np.asarray(values).reshape(-1), dtype="<f2" if dtype == "float16" else "<f4"
    )
    return EncodedArray.model_construct(
        dtype=dtype, dim=int(arr.size), data=base64.b64encode(arr.tobytes()).decode("ascii")
    )


def decode_array(encoded: EncodedArray | list[float]) -> np.ndarray:
    """Decode either wire form of an embedding into a float32 array."""
    if isinstance(encoded, EncodedArray):
        return encoded.to_numpy().astype(np.float32)
    return np.asarray(encoded, dtype=np.float32)


_STAT_KEY = re.compile(STAT_KEY_PATTERN)


def path_safe(name: str) -> bool:
    """Whether ``name`` (already matching :data:`NAME_PATTERN`) has no empty, ``.`` or ``..``
    path segment, so that a registry path built from it stays under its root.

    >>> path_safe("org/digits"), path_safe("a/../../etc"), path_safe("a//b"), path_safe("a/")
    (True, False, False, False)
    """
    return "/" not in name or all(seg not in ("", ".", "..") for seg in name.split("/"))


def _finite(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all():
        raise ValueError(f"{what} contains NaN or infinity")


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unknown schema_version {value}; "
                f"this Driftwatch reads {sorted(SUPPORTED_VERSIONS)}"
            )
        return value

    @field_validator("timestamp", check_fields=False)
    @classmethod
    def _within_window(cls, value: datetime, info: ValidationInfo) -> datetime:
        value = _aware(value)
        limits = _limits(info)
        now = limits.now or datetime.now(UTC)
        # compared as aware datetimes before any conversion: year 1 or 9999 with an offset
        # would overflow astimezone()
        if value - now > limits.max_future_skew:
            raise ValueError(
                f"timestamp {value.isoformat()} is more than "
                f"{limits.max_future_skew.total_seconds():.0f}s in the future"
            )
        if value < limits.earliest(now):
            raise ValueError(
                f"timestamp {value.isoformat()} is before {limits.earliest(now).isoformat()}"
            )
        return value.astimezone(UTC)


def _path_safe(value: str) -> str:
    if not path_safe(value):
        raise ValueError(f"{value!r} has an empty, '.' or '..' path segment")
    return value


class PredictionLog(_Message):
    """One prediction as a model server logs it."""

    model: str = Field(pattern=NAME_PATTERN)
    model_version: str = Field(pattern=NAME_PATTERN)
    request_id: str = Field(pattern=ID_PATTERN)
    timestamp: datetime
    predicted_class: int = Field(ge=0)
    probabilities: list[float] | None = None
    top_k: dict[int, float] | None = Field(
        None, description="class -> probability, when sent instead"
    )
    n_classes: int | None = Field(None, ge=2)
    embedding: EncodedArray | list[float] | None = None
    pixel_stats: dict[str, float] | None = None
    thumbnail: str | None = Field(None, description="base64 PNG or JPEG, size-capped")
    latency_ms: float | None = Field(None, ge=0)
    arm: Arm | None = None
    label: int | None = Field(None, ge=0)
    tags: (
        dict[
            Annotated[str, StringConstraints(pattern=TAG_KEY_PATTERN)],
            Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE)],
        ]
        | None
    ) = Field(None, max_length=MAX_TAGS, description="segments: camera, site, device...")

    _safe_names = field_validator("model", "model_version")(_path_safe)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> PredictionLog:
        limits = _limits(info)
        self._check_probabilities(limits)
        self._check_embedding(limits)
        if self.pixel_stats is not None:
            if len(self.pixel_stats) > 64:
                raise ValueError(f"pixel_stats has {len(self.pixel_stats)} entries, at most 64")
            if not all(math.isfinite(v) for v in self.pixel_stats.values()):
                raise ValueError("pixel_stats contains NaN or infinity")
            if not all(_STAT_KEY.fullmatch(k) for k in self.pixel_stats):
                raise ValueError(f"pixel_stats keys must match {STAT_KEY_PATTERN}")
        # base64 is 4/3 of the bytes; check before decoding anything.
        if self.thumbnail is not None and len(self.thumbnail) * 3 // 4 > limits.max_thumbnail_bytes:
            raise ValueError(
                f"thumbnail is ~{len(self.thumbnail) * 3 // 4} bytes, "
                f"over the {limits.max_thumbnail_bytes}-byte limit"
            )
        if self.label is not None and self.label >= limits.max_classes:
            raise ValueError(f"label {self.label} is not below max_classes {limits.max_classes}")
        if self.latency_ms is not None and not math.isfinite(self.latency_ms):
            raise ValueError("latency_ms is not finite")
        return self

    def _check_probabilities(self, limits: Limits) -> None:
        if self.probabilities is None and self.top_k is None:
            raise ValueError("one of probabilities or top_k is required")
        if self.probabilities is not None:
            # Plain Python on purpose: for ~10 classes it is several times faster than numpy.
            probs = self.probabilities
            n = len(probs)
            if not 2 <= n <= limits.max_classes:
                raise ValueError(f"probabilities has {n} classes, expected 2..{limits.max_classes}")
            if not all(map(math.isfinite, probs)):
                raise ValueError("probabilities contains NaN or infinity")
            if min(probs) < 0:
                raise ValueError("probabilities has a negative entry")
            total = math.fsum(probs)
            if abs(total - 1.0) > limits.probability_tolerance:
                raise ValueError(
                    f"probabilities sum to {total:.6f}, not 1 within {limits.probability_tolerance}"
                )
            if self.predicted_class >= n:
                raise ValueError(f"predicted_class {self.predicted_class} >= number of classes {n}")
        else:
            assert self.top_k is not None
            values = np.asarray(list(self.top_k.values()), dtype=np.float64)
            _finite(values, "top_k")
            if (
                values.size == 0
                or values.min() < 0
                or values.sum() > 1 + limits.probability_tolerance
            ):
                raise ValueError("top_k probabilities must be non-negative and sum to at most 1")
            if self.n_classes is None:
                raise ValueError("n_classes is required with top_k")
            if self.n_classes > limits.max_classes:
                raise ValueError(f"n_classes {self.n_classes} is over {limits.max_classes}")
            if min(self.top_k) < 0:
                raise ValueError("top_k refers to a negative class")
            if max(self.top_k) >= self.n_classes or self.predicted_class >= self.n_classes:
                raise ValueError("top_k or predicted_class refers to a class >= n_classes")

    def _check_embedding(self, limits: Limits) -> None:
        if self.embedding is None:
            return
        dim = (
            self.embedding.dim if isinstance(self.embedding, EncodedArray) else len(self.embedding)
        )
        if not 1 <= dim <= limits.max_embedding_dim:
            raise ValueError(
                f"embedding has {dim} dimensions, expected 1..{limits.max_embedding_dim}"
            )
        expected = limits.embedding_dims.get(self.model)
        if expected is not None and dim != expected:
            raise ValueError(
                f"embedding has {dim} dimensions, model {self.model!r} uses {expected}"
            )
        if isinstance(self.embedding, EncodedArray):
            _finite(self.embedding.to_numpy(), "embedding")
        elif not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in self.embedding):
            raise ValueError("embedding contains NaN, infinity or a value beyond float32")

    def probability_vector(self) -> np.ndarray:
        """The full probability vector (top-k spreads the rest evenly over unsent classes)."""
        if self.probabilities is not None:
            return np.asarray(self.probabilities, dtype=np.float32)
        assert self.top_k is not None and self.n_classes is not None
        probs = np.zeros(self.n_classes, dtype=np.float64)
        for cls, p in self.top_k.items():
            probs[cls] = p
        missing = self.n_classes - len(self.top_k)
        if missing:
            probs[probs == 0] = max(0.0, 1.0 - float(probs.sum())) / missing
        return probs.astype(np.float32)

    def embedding_vector(self) -> np.ndarray | None:
        """The embedding as float32, or None."""
        return None if self.embedding is None else decode_array(self.embedding)


class LabelEvent(_Message):
    """Ground truth for an earlier (or later) prediction, joined on (model, request_id)."""

    model: str = Field(pattern=NAME_PATTERN)
    request_id: str = Field(pattern=ID_PATTERN)
    label: int = Field(ge=0)
    timestamp: datetime

    _safe_name = field_validator("model")(_path_safe)

    @field_validator("label")
    @classmethod
    def _class_index(cls, value: int, info: ValidationInfo) -> int:
        limit = _limits(info).max_classes
        if value >= limit:
            raise ValueError(f"label {value} is not below max_classes {limit}")
        return value


class Rejected(BaseModel):
    """What goes to the dead-letter topic: the original bytes and why they were refused."""

    model_config = ConfigDict(frozen=True)

    reason: str
    error: str
    topic: str
    partition: int
    offset: int
    raw: str = Field(description="base64 of the original message value (maybe truncated)")
    raw_size: int | None = Field(None, description="bytes of the original message value")
    truncated: bool = Field(False, description="raw holds only a prefix; the source has it all")
    key: str | None = None
    rejected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(
        cls,
        exc: InvalidMessage,
        topic: str,
        partition: int,
        offset: int,
        raw: bytes,
        key: bytes | None = None,
    ) -> Rejected:
        """Build the dead-letter record for ``raw`` refused with ``exc``."""
        return cls(
            reason=exc.reason,
            error=exc.message[:2000],
            topic=topic,
            partition=partition,
            offset=offset,
            raw=base64.b64encode(raw).decode("ascii"),
            raw_size=len(raw),
            key=None if key is None else key[:1024].decode("utf-8", "replace"),
        )


def parse_message(raw: bytes, schema: type[_Message], limits: Limits, max_bytes: int) -> Any:
    """Validate ``raw`` JSON into ``schema``, or raise :class:`InvalidMessage` with a reason."""
    from pydantic import ValidationError

    if len(raw) > max_bytes:
        raise InvalidMessage("oversized", f"message is {len(raw)} bytes, limit {max_bytes}")
    try:
        return schema.model_validate_json(raw, context={"limits": limits})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0] if errors else {"type": "", "loc": (), "msg": str(exc)}
        if first["type"] == "json_invalid":
            reason = "bad_json"
        elif first["loc"] and first["loc"][0] == "schema_version":
            reason = "unknown_version"
        else:
            reason = "schema"
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<message>'}: {e['msg']}" for e in errors[:5]
        )
        raise InvalidMessage(reason, detail) from exc
