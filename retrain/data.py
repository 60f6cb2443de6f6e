"""Labelled production images for retraining, read from stored thumbnails (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from monitor.errors import DriftwatchError, InvalidMessage
from monitor.imagestats import decode_image
from monitor.store.retrain_queries import labelled_thumbnails


@dataclass(frozen=True)
class Labelled:
    """Images (N, H, W) uint8, labels (N,), and what was skipped and why."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.labels)


def load_labelled(
    session: Session,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20_000,
) -> Labelled:
    """The newest labelled predictions of ``model`` that carry a thumbnail, oldest first.

    Logs exported for labelling (:mod:`monitor.impact.label_queue`) come first: they are kept
    even when ``limit`` cuts older logs. A label comes from the prediction row or, where the
    join has not filled it yet, from the ``labels`` table. Undecodable thumbnails are counted in ``skipped['bad_image']``; images of a
    shape other than the most common one in ``skipped['other_shape']``.
    """
    rows = labelled_thumbnails(session, model, since=since, until=until, limit=limit)
    images, labels, ids = [], [], []
    skipped = {"bad_image": 0, "other_shape": 0}
    for pid, thumb, own_label, joined_label in rows:
        try:
            images.append(decode_image(thumb))
        except InvalidMessage:
            skipped["bad_image"] += 1
            continue
        labels.append(own_label if own_label is not None else joined_label)
        ids.append(pid)
    if not images:
        return Labelled(
            np.zeros((0, 0, 0), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64), skipped
        )
    shapes = [im.shape for im in images]
    common = max(set(shapes), key=shapes.count)
    keep = [i for i, s in enumerate(shapes) if s == common]
    skipped["other_shape"] = len(images) - len(keep)
    return Labelled(
        images=np.stack([images[i] for i in keep]),
        labels=np.asarray([labels[i] for i in keep], dtype=np.int64),
        ids=np.asarray([ids[i] for i in keep], dtype=np.int64),
        skipped=skipped,
    )


def split_recent(data: Labelled, holdout: float, seed: int) -> tuple[Labelled, Labelled]:
    """A seeded random split into (train, holdout)."""
    if not 0 < holdout < 1:
        raise DriftwatchError(f"holdout fraction must be in (0, 1), got {holdout}")
    order = np.random.default_rng(seed).permutation(len(data))
    cut = round(len(order) * holdout)

    def part(idx: np.ndarray) -> Labelled:
        return Labelled(data.images[idx], data.labels[idx], data.ids[idx], dict(data.skipped))

    return part(order[cut:]), part(order[:cut])
