"""Conflicting duplicates: the same (model, request id) logged again with another prediction.

An exact repeat (a producer retry, a replayed batch) is a harmless duplicate; a repeat whose
version, class, probabilities or embedding differ is a conflict, which ingest dead-letters
(``conflicting_duplicate``) instead of silently keeping the first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.tables import Prediction

_CONTENT = itemgetter("model_version", "predicted_class", "probs", "embedding")


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two rows of one request id carry the same prediction (version, class,
    probabilities, embedding); the timestamp of a re-sent log and a later label may differ."""
    return bool(_CONTENT(a) == _CONTENT(b))


def conflict(row: dict[str, Any]) -> str:
    return (
        f"request id {row['request_id']!r} of model {row['model']!r} was logged before "
        "with other content"
    )


def stored_content(
    session: Session, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """What :func:`same` compares, of the stored logs with ``keys``."""
    cols: list[Any] = [Prediction.model, Prediction.request_id, Prediction.model_version]
    cols += [Prediction.predicted_class, Prediction.probs, Prediction.embedding]
    by_model: dict[str, list[str]] = {}
    for model, request_id in keys:
        by_model.setdefault(model, []).append(request_id)
    out = {}
    for model, ids in by_model.items():
        for start in range(0, len(ids), 10_000):
            chunk = ids[start : start + 10_000]
            stmt = select(*cols).where(Prediction.model == model, Prediction.request_id.in_(chunk))
            for row in session.execute(stmt).mappings():
                out[(row["model"], row["request_id"])] = dict(row)
    return out
