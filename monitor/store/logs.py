"""Read prediction logs into a :class:`~monitor.batch.LogBatch`: from the store or from a file.

Store rows carry arrays as little-endian bytes (``probs`` float32, ``embedding`` float16 or
float32 as ``embedding_dtype`` says); they are decoded for the whole batch at once with
``np.frombuffer`` over the joined bytes, never one row at a time. Pixel statistics (a JSON
mapping) are read as JSON text and decoded for the whole batch in one ``msgspec`` call; they
become the columns of :data:`~monitor.imagestats.STAT_NAMES`, NaN where missing.
Unknown labels are ``-1``, unknown latencies NaN, missing embeddings rows of NaN.

Reference files (:func:`read_reference_file`) may be Parquet, NPZ or JSONL of prediction logs.

>>> import numpy as np
>>> probs = np.array([[0.9, 0.1], [0.2, 0.8]], dtype="<f4")
>>> batch = rows_to_batch([
...     _Row(1, 0, 2, probs[0].tobytes(), None, None, {"brightness": 0.5}, None, None),
...     _Row(2, 1, 2, probs[1].tobytes(), None, None, None, 3.0, 1),
... ])
>>> batch.predicted.tolist(), batch.labels.tolist(), float(batch.pixel[0, 0])
([0, 1], [-1, 1], 0.5)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.errors import DriftwatchError, InvalidMessage
from monitor.imagestats import STAT_NAMES
from monitor.schemas import Limits, PredictionLog, parse_message
from monitor.store.arms import logs_of_stream_arm
from monitor.store.tables import Prediction, Window


class ReferenceFileError(DriftwatchError):
    """A reference file cannot be read or does not hold prediction logs."""


class _Row(NamedTuple):
    id: int
    predicted_class: int
    n_classes: int
    probs: bytes
    embedding: bytes | None
    embedding_dtype: str | None
    pixel_stats: dict[str, float] | str | None  # a mapping, or its JSON text
    latency_ms: float | None
    label: int | None


_COLUMNS = (
    Prediction.id,
    Prediction.predicted_class,
    Prediction.n_classes,
    Prediction.probs,
    Prediction.embedding,
    Prediction.embedding_dtype,
    # JSON text, not the driver's per-row json.loads: the batch is decoded in one call
    cast(Prediction.pixel_stats, Text).label("pixel_stats"),
    Prediction.latency_ms,
    Prediction.label,
)
# One field per canonical statistic (NaN when absent); other names in the mapping are ignored.
_Stats = msgspec.defstruct("_Stats", [(name, float, float("nan")) for name in STAT_NAMES])
_STATS_LIST = msgspec.json.Decoder(list[_Stats | None])  # type: ignore[valid-type]
_NO_STATS = (float("nan"),) * len(STAT_NAMES)


def _decode_embeddings(
    emb: Sequence[bytes | None], dtypes: Sequence[str | None]
) -> np.ndarray | None:
    present = np.fromiter((e is not None for e in emb), bool, len(emb))
    if not present.any():
        return None
    is16 = np.fromiter((d == "float16" for d in dtypes), bool, len(dtypes)) & present
    sizes = {
        len(e) // (2 if d == "float16" else 4)
        for e, d in zip(emb, dtypes, strict=True)
        if e is not None
    }
    if len(sizes) != 1:
        raise DriftwatchError(f"logs mix embedding dimensions {sorted(sizes)}")
    dim = sizes.pop()
    if present.all() and (is16.all() or not is16.any()):  # the common case: one join
        raw = b"".join(emb)  # type: ignore[arg-type]  # all present
        return np.frombuffer(raw, "<f2" if is16[0] else "<f4").reshape(-1, dim).astype(np.float32)
    out = np.full((len(emb), dim), np.nan, dtype=np.float32)
    for mask, dtype in ((is16, "<f2"), (present & ~is16, "<f4")):
        if mask.any():
            raw = b"".join(e for e, m in zip(emb, mask, strict=True) if m and e is not None)
            out[mask] = np.frombuffer(raw, dtype=dtype).reshape(-1, dim)
    return out


def _pixel_columns(stats: Sequence[dict[str, float] | str | None]) -> np.ndarray | None:
    """(N, len(STAT_NAMES)) float64 of mappings or their JSON text; NaN where missing."""
    if all(s is None for s in stats):
        return None
    if not any(isinstance(s, str) for s in stats):  # mappings
        return np.array(
            [_NO_STATS if s is None else tuple(map(s.get, STAT_NAMES)) for s in stats],  # type: ignore[union-attr]
            dtype=np.float64,  # None -> NaN
        )
    text = ",".join(
        "null" if s is None else s if isinstance(s, str) else msgspec.json.encode(s).decode()
        for s in stats
    )
    try:
        parsed = _STATS_LIST.decode("[" + text + "]")
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise DriftwatchError(f"stored pixel statistics are not a JSON mapping: {exc}") from exc
    return np.array(
        [_NO_STATS if s is None else msgspec.structs.astuple(s) for s in parsed], dtype=np.float64
    )


def _floats(values: Sequence[float | int | None]) -> np.ndarray:
    """float64 array with NaN for None."""
    return np.array(values, dtype=np.float64)


def rows_to_batch(rows: Sequence[Any], meta: dict[str, str] | None = None) -> LogBatch:
    """Decode store rows (with the fields of :data:`_COLUMNS`, in that order) into one
    :class:`LogBatch`, column by column."""
    if not rows:
        raise DriftwatchError("no prediction logs to decode")
    _ids, predicted, n_classes, probs, emb, dtypes, stats, latency, labels = zip(*rows, strict=True)
    classes = set(n_classes)
    if len(classes) != 1:
        raise DriftwatchError(f"logs mix numbers of classes {sorted(classes)}")
    n, n_cls = len(rows), classes.pop()
    label_arr = _floats(labels)
    return LogBatch(
        probs=np.frombuffer(b"".join(probs), dtype="<f4").reshape(n, n_cls).astype(np.float32),
        predicted=np.array(predicted, dtype=np.int64),
        embeddings=_decode_embeddings(emb, dtypes),
        pixel=_pixel_columns(stats),
        labels=np.where(np.isnan(label_arr), -1, label_arr).astype(np.int64),
        latency_ms=_floats(latency),
        meta=dict(meta or {}),
    )


def _arm_filter(arm: str | None) -> Any:
    if arm is None:
        return None
    return logs_of_stream_arm(arm)


def window_query(window: Window) -> Select[Any]:
    """The statement that reads ``window``'s logs, oldest first."""
    return (
        select(*_COLUMNS)
        .where(
            Prediction.model == window.model,
            Prediction.model_version == window.model_version,
            Prediction.id.between(window.first_id, window.last_id),
            _arm_filter(window.arm),
        )
        .order_by(Prediction.id)
    )


def window_rows(session: Session, window: Window) -> list[Any]:
    """The store rows of ``window`` (fields of :data:`_COLUMNS`, by name), in id order."""
    session.flush()  # what the ORM's autoflush would do; Core rows skip per-row ORM loading
    rows = session.connection().execute(window_query(window)).all()
    if not rows:
        raise DriftwatchError(f"window {window.id} has no logs left in the store (retention?)")
    return list(rows)


def window_meta(window: Window) -> dict[str, str]:
    """The ``LogBatch.meta`` of ``window``."""
    return {
        "model": window.model,
        "model_version": window.model_version,
        "arm": window.arm,
        "window_id": str(window.id),
    }


def load_window(session: Session, window: Window) -> LogBatch:
    """The logs of ``window`` (ids ``first_id..last_id`` of its model, version and arm)."""
    return rows_to_batch(window_rows(session, window), window_meta(window))


def load_range(
    session: Session,
    model: str,
    version: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    arm: str | None = None,
    limit: int | None = None,
    tags: Mapping[str, str] | None = None,
) -> LogBatch:
    """Logs of ``model``/``version`` (any version when None) with ``start <= ts < end`` (any arm
    unless ``arm`` is given; ``"all"`` means logs without an arm) carrying every ``tags`` key
    with that value (a segment such as one camera). ``limit`` keeps the newest ``limit`` logs."""
    stmt = select(*_COLUMNS).where(Prediction.model == model)
    if version is not None:
        stmt = stmt.where(Prediction.model_version == version)
    if start is not None:
        stmt = stmt.where(Prediction.ts >= start)
    if end is not None:
        stmt = stmt.where(Prediction.ts < end)
    if arm is not None:
        stmt = stmt.where(_arm_filter(arm))
    for key, value in (tags or {}).items():
        stmt = stmt.where(Prediction.tags[key].as_string() == value)
    stmt = stmt.order_by(Prediction.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    session.flush()
    rows = session.connection().execute(stmt).all()[::-1]
    if not rows:
        raise DriftwatchError(
            f"no logs of {model} {version} between {start} and {end}"
            + ("" if arm is None else f" on arm {arm}")
            + ("" if not tags else f" tagged {dict(tags)}")
        )
    return rows_to_batch(rows, {"model": model, "model_version": version or ""})


def first_log_time(session: Session, model: str, arm: str, since: datetime) -> datetime | None:
    """When the first log of ``model`` on ``arm`` at or after ``since`` was made, or None."""
    stmt = select(func.min(Prediction.ts)).where(
        Prediction.model == model, Prediction.ts >= since, _arm_filter(arm)
    )
    return session.scalar(stmt)


# ---------------------------------------------------------------- reference files


def _batch_from_columns(
    probs: np.ndarray,
    predicted: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    pixel: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    latency_ms: np.ndarray | None = None,
    source: str = "",
) -> LogBatch:
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ReferenceFileError(f"{source}: probs must be (N, C>=2), got shape {probs.shape}")
    if not np.isfinite(probs).all():
        raise ReferenceFileError(f"{source}: probs contains NaN or infinity")
    pred = probs.argmax(axis=1) if predicted is None else np.asarray(predicted, dtype=np.int64)
    try:
        return LogBatch(
            probs=probs,
            predicted=pred.astype(np.int64),
            embeddings=None if embeddings is None else np.asarray(embeddings, dtype=np.float32),
            pixel=None if pixel is None else np.asarray(pixel, dtype=np.float64),
            labels=None if labels is None else np.asarray(labels, dtype=np.int64),
            latency_ms=None if latency_ms is None else np.asarray(latency_ms, dtype=np.float64),
            meta={"source": source},
        )
    except ValueError as exc:
        raise ReferenceFileError(f"{source}: {exc}") from exc


def _read_npz(path: Path) -> LogBatch:
    """Arrays ``probs`` (required), ``predicted``, ``embeddings``, ``labels``, ``latency_ms`` and
    either ``pixel`` (N, 13 in STAT_NAMES order) or one array per statistic name."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if "probs" not in arrays:
        raise ReferenceFileError(f"{path}: NPZ needs a 'probs' array, has {sorted(arrays)}")
    pixel = arrays.get("pixel")
    if pixel is None and any(name in arrays for name in STAT_NAMES):
        n = len(arrays["probs"])
        pixel = np.column_stack([arrays.get(name, np.full(n, np.nan)) for name in STAT_NAMES])
    return _batch_from_columns(
        arrays["probs"],
        arrays.get("predicted"),
        arrays.get("embeddings"),
        pixel,
        arrays.get("labels"),
        arrays.get("latency_ms"),
        str(path),
    )


def _logs_to_batch(logs: Iterable[Any], source: str) -> LogBatch:
    probs, predicted, emb, stats, labels, latency = [], [], [], [], [], []
    for log in logs:
        probs.append(log.probability_vector())
        predicted.append(log.predicted_class)
        emb.append(log.embedding_vector())
        stats.append(log.pixel_stats)
        labels.append(-1 if log.label is None else log.label)
        latency.append(np.nan if log.latency_ms is None else log.latency_ms)
    if not probs:
        raise ReferenceFileError(f"{source}: no prediction logs")
    if len({p.size for p in probs}) != 1:
        raise ReferenceFileError(f"{source}: logs mix numbers of classes")
    embeddings = None
    if any(e is not None for e in emb):
        dims = {e.size for e in emb if e is not None}
        if len(dims) != 1:
            raise ReferenceFileError(f"{source}: logs mix embedding dimensions {sorted(dims)}")
        dim = dims.pop()
        embeddings = np.stack([np.full(dim, np.nan, np.float32) if e is None else e for e in emb])
    return _batch_from_columns(
        np.stack(probs),
        np.asarray(predicted),
        embeddings,
        _pixel_columns(stats),
        np.asarray(labels),
        np.asarray(latency),
        source,
    )


def _read_jsonl(path: Path) -> LogBatch:
    """One :class:`~monitor.schemas.PredictionLog` JSON object per line."""

    logs = []
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                logs.append(parse_message(line, PredictionLog, Limits(), max_bytes=1 << 24))
            except InvalidMessage as exc:
                raise ReferenceFileError(f"{path}:{lineno}: {exc}") from exc
    return _logs_to_batch(logs, str(path))


def _read_parquet(path: Path) -> LogBatch:
    """Rows shaped like prediction logs: ``probabilities`` (list), ``predicted_class``,
    ``embedding`` (list), ``label``, ``latency_ms``, and pixel statistics either as a
    ``pixel_stats`` mapping/JSON column or as columns named like :data:`STAT_NAMES`."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ReferenceFileError(f"{path}: cannot read Parquet: {exc}") from exc
    if "probabilities" not in frame:
        raise ReferenceFileError(f"{path}: needs a 'probabilities' column, has {list(frame)}")
    n = len(frame)
    probs = np.stack([np.asarray(p, dtype=np.float32) for p in frame["probabilities"]])
    emb = None
    if "embedding" in frame and frame["embedding"].notna().any():
        emb = np.stack([np.asarray(e, dtype=np.float32) for e in frame["embedding"]])
    pixel = None
    if "pixel_stats" in frame:
        raw = [json.loads(s) if isinstance(s, str) else s for s in frame["pixel_stats"]]
        pixel = _pixel_columns([None if s is None else dict(s) for s in raw])
    elif any(name in frame for name in STAT_NAMES):
        pixel = frame.reindex(columns=list(STAT_NAMES)).to_numpy(np.float64, na_value=np.nan)
    labels = frame["label"].fillna(-1).to_numpy() if "label" in frame else None
    latency = frame["latency_ms"].to_numpy(np.float64) if "latency_ms" in frame else None
    predicted = frame["predicted_class"].to_numpy() if "predicted_class" in frame else None
    if n == 0:
        raise ReferenceFileError(f"{path}: no rows")
    return _batch_from_columns(probs, predicted, emb, pixel, labels, latency, str(path))


def read_reference_file(path: Path | str) -> LogBatch:
    """A reference set from ``.parquet``, ``.npz`` or ``.jsonl``/``.ndjson`` prediction logs."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceFileError(f"reference file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    raise ReferenceFileError(f"{path}: unknown reference format {suffix!r} (parquet, npz, jsonl)")
