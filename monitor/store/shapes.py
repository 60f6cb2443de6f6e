"""The shape of each model's logs (class count, embedding dimension), pinned at first sight.

Detectors compare a window with a reference profile column by column, so every log of a model
must have the same number of classes and embedding dimension. Ingest pins them in
``model_shapes`` when a model's first log is stored (the embedding dimension when its first
embedding is) and dead-letters logs that differ (``shape_mismatch``); an operator who changes
a model's head deletes its row (or registers the model under a new name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base, UTCDateTime, utcnow

#: (number of classes, embedding dimension or None)
Shape = tuple[int, int | None]


class ModelShape(Base):
    """The pinned shape of one model's logs."""

    __tablename__ = "model_shapes"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    n_classes: Mapped[int] = mapped_column(Integer)
    embedding_dim: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def row_shape(row: dict[str, Any]) -> Shape:
    """The shape of one ``predictions`` row.

    >>> row_shape({"n_classes": 10, "embedding": b"\\0" * 8, "embedding_dtype": "float16"})
    (10, 4)
    """
    emb = row["embedding"]
    if emb is None:
        return int(row["n_classes"]), None
    return int(row["n_classes"]), len(emb) // (2 if row["embedding_dtype"] == "float16" else 4)


def mismatch(model: str, pinned: Shape, shape: Shape) -> str | None:
    """Why a log of ``shape`` does not fit ``model``'s ``pinned`` shape, or None if it does.

    >>> mismatch("m", (10, 16), (10, None)) is None
    True
    >>> mismatch("m", (10, 16), (3, 16))
    "model 'm' logs 10 classes (pinned), this log has 3"
    """
    if shape[0] != pinned[0]:
        return f"model {model!r} logs {pinned[0]} classes (pinned), this log has {shape[0]}"
    if None not in (shape[1], pinned[1]) and shape[1] != pinned[1]:
        return f"model {model!r} has {pinned[1]}-d embeddings (pinned), this log {shape[1]}-d"
    return None
