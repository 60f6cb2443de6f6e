"""The label queue: which logs of a model version are most worth labelling next.

Uncertainty sampling (the least confident predictions after calibration, where a label most
often corrects the model) mixed with the most unusual inputs (the highest outlier scores, where
the reference has nothing like them): half each by default, most urgent first, each log at most
once. Exported logs are recorded in ``label_queue``, so the next export picks new ones and
retraining reads their labels first when they come back (:func:`retrain.data.load_labelled`).
"""

from __future__ import annotations

import base64
import csv
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from monitor.errors import DriftwatchError
from monitor.store.impact_repo import label_candidates, queue_for_labelling

Reason = Literal["uncertain", "unusual"]
FIELDS = [
    "rank",
    "request_id",
    "prediction_id",
    "model",
    "model_version",
    "window_id",
    "ts",
    "reason",
    "predicted_class",
    "confidence",
    "calibrated_confidence",
    "outlier_score",
    "thumbnail",
]


@dataclass(frozen=True)
class QueueItem:
    """One log to label, why it was picked, and its thumbnail (a ``data:`` URI) when sent."""

    rank: int
    request_id: str
    prediction_id: int
    model: str
    model_version: str
    window_id: int
    ts: str
    reason: Reason
    predicted_class: int
    confidence: float
    calibrated_confidence: float
    outlier_score: float | None
    thumbnail: str | None


def _uri(image: bytes | None) -> str | None:
    if image is None:
        return None
    mime = "image/jpeg" if image[:3] == b"\xff\xd8\xff" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def build_label_queue(
    session: Session,
    model: str,
    version: str,
    n: int,
    *,
    unusual_share: float = 0.5,
    now: datetime | None = None,
) -> list[QueueItem]:
    """Pick up to ``n`` unlabelled, not yet queued logs of ``model``/``version``, alternate
    least confident and most unusual, and record them in the queue (caller commits)."""
    if n < 1 or not 0 <= unusual_share <= 1:
        raise DriftwatchError(f"need n >= 1 and 0 <= unusual_share <= 1, got {n}, {unusual_share}")
    n_unusual = round(n * unusual_share)
    uncertain = label_candidates(session, model, version, "uncertain", n)
    unusual = [
        r for r in label_candidates(session, model, version, "unusual", n) if r[10] is not None
    ]
    top_unusual = unusual[:n_unusual]
    seen = {r[0] for r in top_unusual}
    top_uncertain = [r for r in uncertain if r[0] not in seen][: n - len(top_unusual)]
    seen |= {r[0] for r in top_uncertain}
    short = n - len(top_unusual) - len(top_uncertain)  # too few uncertain: more unusual ones
    top_unusual += [r for r in unusual[n_unusual:] if r[0] not in seen][: max(short, 0)]
    first: list[tuple[Any, Reason]] = [(r, "uncertain") for r in top_uncertain]
    second: list[tuple[Any, Reason]] = [(r, "unusual") for r in top_unusual]
    picked: list[tuple[Any, Reason]] = [
        p for pair in zip_longest(first, second) for p in pair if p is not None
    ]
    now = now or datetime.now(UTC)
    items = [
        QueueItem(
            rank=i,
            request_id=row[1],
            prediction_id=int(row[0]),
            model=model,
            model_version=row[2],
            window_id=int(row[8]),
            ts=row[3].isoformat(),
            reason=reason,
            predicted_class=int(row[4]),
            confidence=float(row[5]),
            calibrated_confidence=float(row[9]),
            outlier_score=None if row[10] is None else float(row[10]),
            thumbnail=_uri(row[7]),
        )
        for i, (row, reason) in enumerate(picked, 1)
    ]
    queue_for_labelling(
        session,
        [
            {
                "model": model,
                "request_id": it.request_id,
                "prediction_id": it.prediction_id,
                "model_version": it.model_version,
                "reason": it.reason,
                "priority": float(len(items) - it.rank + 1),
                "queued_at": now,
            }
            for it in items
        ],
    )
    return items


def write_queue(items: list[QueueItem], path: Path, fmt: Literal["jsonl", "csv"]) -> None:
    """Write ``items`` as JSON lines or CSV (thumbnails as ``data:`` URIs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for it in items:
                fh.write(json.dumps(asdict(it)) + "\n")
            return
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for it in items:
            writer.writerow(asdict(it))
