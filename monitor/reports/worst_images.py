"""The worst images of a window beside the reference's typical ones, and accuracy over time.

:func:`gather_worst` reads the store (the window's most unusual logs by outlier score, with
their thumbnails, predicted class and confidence; the reference's most typical logs, scored by
the same outlier model); :func:`grid_html`, :func:`page_html` and :func:`accuracy_svg` are pure.
Thumbnails are inlined as ``data:`` URIs, so the page stays one self-contained file.

>>> tile = Tile(1, "req-1", None, 7, 0.61, 0.55, 12.5, None)
>>> "no thumbnail" in grid_html([tile], "worst")
True
"""

from __future__ import annotations

import base64
import html
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.errors import DriftwatchError, NotFound
from monitor.impact.stage import load_impact
from monitor.settings import Settings
from monitor.stats.outliers import score_outliers
from monitor.store.alerts_repo import latest_page
from monitor.store.impact_repo import estimates, logs_with_thumbnails, window_estimate, worst_logs
from monitor.store.impact_tables import WindowEstimateRow
from monitor.store.tables import ReferenceProfile, Window

TILE_PX = 72


@dataclass(frozen=True)
class Tile:
    """One image of the grid and what the model made of it."""

    prediction_id: int
    request_id: str
    thumbnail: bytes | None
    predicted_class: int
    confidence: float
    calibrated_confidence: float | None
    outlier_score: float | None
    label: int | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["thumbnail"] = None if self.thumbnail is None else data_uri(self.thumbnail)
        return out


@dataclass(frozen=True)
class WorstImages:
    """A window's worst images, the reference's typical ones and the window's estimate."""

    window_id: int
    model: str
    version: str
    arm: str
    start: datetime
    end: datetime
    n: int
    worst: list[Tile]
    typical: list[Tile] = field(default_factory=list)
    estimate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_id": self.window_id,
            "model": self.model,
            "version": self.version,
            "arm": self.arm,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n": self.n,
            "estimate": self.estimate,
            "worst": [t.to_dict() for t in self.worst],
            "typical": [t.to_dict() for t in self.typical],
        }


def data_uri(image: bytes) -> str:
    """``data:`` URI of PNG or JPEG bytes."""
    mime = "image/jpeg" if image[:3] == b"\xff\xd8\xff" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def estimate_dict(row: WindowEstimateRow | None) -> dict[str, Any] | None:
    """The stored estimate as plain JSON (None when the window has none)."""
    if row is None:
        return None
    keys = [
        "n",
        "level",
        "estimated_accuracy",
        "estimated_low",
        "estimated_high",
        "reference_accuracy",
        "reference_realized",
        "n_labelled",
        "realized_accuracy",
        "realized_low",
        "realized_high",
        "outlier_share",
        "outlier_threshold",
        "temperature",
    ]
    return {k: getattr(row, k) for k in keys}


# ---------------------------------------------------------------- gathering (I/O)


def typical_reference(session: Session, profile_id: int, n: int) -> list[Tile]:
    """The ``n`` most typical reference logs (lowest outlier score) that have a thumbnail, for a
    profile fitted on a store range; [] for other sources or without an outlier model."""
    profile = session.get(ReferenceProfile, profile_id)
    impact = load_impact(session, profile_id)
    source = {} if profile is None else (profile.source or {})
    if profile is None or impact is None or source.get("type") != "store":
        return []
    start, end = source.get("start"), source.get("end")
    found = logs_with_thumbnails(
        session,
        profile.model,
        profile.model_version,
        None if start is None else datetime.fromisoformat(start),
        None if end is None else datetime.fromisoformat(end),
        arm=source.get("arm"),
        # an open-ended range meant "what was stored when the profile was fitted"
        ingested_before=profile.created_at if end is None else None,
    )
    if found is None:
        return []
    ids, extra, batch = found
    scores = score_outliers(impact.outliers, batch)
    calibrated = impact.calibrated(batch.probs).max(axis=1)
    order = np.argsort(scores) if scores is not None else np.argsort(-calibrated)
    return [
        Tile(
            int(ids[i]),
            str(extra[i][0]),
            extra[i][2],
            int(batch.predicted[i]),
            float(extra[i][1]),
            float(calibrated[i]),
            None if scores is None else float(scores[i]),
            None if batch.labels is None or batch.labels[i] < 0 else int(batch.labels[i]),
        )
        for i in order[:n]
    ]


def gather_worst(
    session: Session, settings: Settings, window_id: int, n: int | None = None
) -> WorstImages:
    """The worst ``n`` (default ``policy.impact.worst_images``) images of ``window_id``."""
    window = session.get(Window, window_id)
    if window is None:
        raise NotFound(f"window {window_id} does not exist")
    n = n or settings.policy.impact.worst_images
    row = window_estimate(session, window_id)
    worst = [
        Tile(r[0], r[1], r[7], r[4], r[5], r[9], r[10], r[6])
        for r in worst_logs(session, window_id, n)
    ]
    typical: list[Tile] = []
    if row is not None and row.profile_id is not None:
        try:
            typical = typical_reference(session, row.profile_id, n)
        except DriftwatchError:
            typical = []
    return WorstImages(
        window.id,
        window.model,
        window.model_version,
        window.arm,
        window.start_ts,
        window.end_ts,
        window.n,
        worst,
        typical,
        estimate_dict(row),
    )


def alerting_window(session: Session, model: str) -> int | None:
    """The window of the model's latest paged alert, else its latest estimated window."""
    alert = latest_page(session, model)
    if alert is not None and alert.evidence.get("window_id") is not None:
        return int(alert.evidence["window_id"])
    rows = [r for r in estimates(session, model, limit=50) if r.arm in ("all", "stable")]
    return rows[-1].window_id if rows else None


# ---------------------------------------------------------------- HTML and SVG (pure)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _caption(t: Tile) -> str:
    conf = t.calibrated_confidence if t.calibrated_confidence is not None else t.confidence
    score = "" if t.outlier_score is None else f"score {t.outlier_score:.1f} · "
    label = "" if t.label is None else f" · label {t.label}"
    return f"{score}pred {t.predicted_class} · conf {conf:.0%}{label}"


def grid_html(tiles: list[Tile], title: str) -> str:
    """A titled grid of thumbnails with captions."""
    cells = []
    for t in tiles:
        img = (
            f'<img class="thumb" src="{data_uri(t.thumbnail)}" width="{TILE_PX}" '
            f'height="{TILE_PX}" alt="request {_esc(t.request_id)}">'
            if t.thumbnail is not None
            else f'<div class="thumb none" style="width:{TILE_PX}px;height:{TILE_PX}px">'
            "no thumbnail</div>"
        )
        cells.append(
            f'<figure class="tile" title="request {_esc(t.request_id)}">{img}'
            f"<figcaption>{_esc(_caption(t))}</figcaption></figure>"
        )
    body = "".join(cells) or '<p class="muted">no images</p>'
    return (
        f'<section class="images"><h3>{_esc(title)}</h3><div class="tiles">{body}</div></section>'
    )


GRID_CSS = (
    ".tiles{display:flex;flex-wrap:wrap;gap:8px}.tile{margin:0;width:96px;font-size:10px;"
    "text-align:center;background:#fff;border:1px solid #ddd;padding:4px}"
    ".thumb{image-rendering:pixelated;display:block;margin:0 auto 2px;background:#000}"
    ".none{color:#fff;font-size:9px;line-height:72px}.pair{display:flex;gap:24px;flex-wrap:wrap}"
    ".images{flex:1;min-width:320px}"
)


def estimate_line(est: dict[str, Any] | None) -> str:
    """ "estimated 87.4% (85.0-89.8%) vs reference 95.0%; realized 78.0% on 500 labels"."""
    if est is None:
        return "no accuracy estimate for this window"
    line = (
        f"estimated accuracy {est['estimated_accuracy']:.1%} "
        f"({est['estimated_low']:.1%}–{est['estimated_high']:.1%}) vs reference "
        f"{est['reference_accuracy']:.1%}"
    )
    if est.get("realized_accuracy") is not None:
        line += f"; realized {est['realized_accuracy']:.1%} on {est['n_labelled']} labels"
    if est.get("outlier_share") is not None:
        line += f"; unusual images {est['outlier_share']:.1%}"
    return line


def worst_section(data: WorstImages) -> str:
    """The grid pair (worst of the window, typical of the reference) with the estimate."""
    return (
        f'<div id="worst-images"><p>window {data.window_id} ({_esc(data.version)}/'
        f"{_esc(data.arm)}, {data.n} logs, {data.start:%Y-%m-%d %H:%M}–{data.end:%H:%M} UTC): "
        f'{_esc(estimate_line(data.estimate))}</p><div class="pair">'
        + grid_html(data.worst, f"Most unusual images of window {data.window_id}")
        + grid_html(data.typical, "Typical reference images")
        + "</div></div>"
    )


def page_html(data: WorstImages) -> str:
    """A self-contained page of one window's worst images."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'
        f"<title>Worst images: {_esc(data.model)} window {data.window_id}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#f7f7f9}"
        f".muted{{color:#777}}{GRID_CSS}</style></head><body>"
        f"<h1>Worst images: {_esc(data.model)} {_esc(data.version)}</h1>"
        f"{worst_section(data)}</body></html>"
    )


def accuracy_svg(rows: list[WindowEstimateRow], width: int = 520, height: int = 230) -> str:
    """Estimated accuracy (line and interval band) and realized accuracy (dots) per window."""
    pad, top = 40, 44
    rows = [r for r in rows if r.arm in ("all", "stable")]
    values = [
        v
        for r in rows
        for v in (r.estimated_low, r.estimated_high, r.realized_accuracy)
        if v is not None
    ]
    lo = max(0.0, min([*values, 1.0]) - 0.05)
    n = len(rows)

    def x(i: int) -> float:
        return pad + (width - pad - 20) * (i / max(n - 1, 1))

    def y(v: float) -> float:
        return height - pad - (height - pad - top) * ((v - lo) / max(1.0 - lo, 1e-9))

    band = " ".join(f"{x(i):.1f},{y(r.estimated_high):.1f}" for i, r in enumerate(rows))
    band += " " + " ".join(
        f"{x(i):.1f},{y(r.estimated_low):.1f}" for i, r in reversed(list(enumerate(rows)))
    )
    line = " ".join(f"{x(i):.1f},{y(r.estimated_accuracy):.1f}" for i, r in enumerate(rows))
    dots = "".join(
        f'<circle cx="{x(i):.1f}" cy="{y(r.realized_accuracy):.1f}" r="3" fill="#d62728">'
        f"<title>window {r.window_id}: realized {r.realized_accuracy:.1%} "
        f"({r.n_labelled} labels)</title></circle>"
        for i, r in enumerate(rows)
        if r.realized_accuracy is not None
    )
    title = "Accuracy: estimated (band: interval) vs realized"
    return (
        f'<svg class="plot" role="img" aria-label="{title}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>'
        f'<rect width="{width}" height="{height}" fill="#fff" stroke="#ddd"/>'
        f'<text x="10" y="15" font-size="12" font-weight="600">{title}</text>'
        f'<rect x="{pad}" y="22" width="10" height="10" fill="#1f77b4"/>'
        f'<text x="{pad + 14}" y="31" font-size="11">estimated</text>'
        f'<rect x="{pad + 120}" y="22" width="10" height="10" fill="#d62728"/>'
        f'<text x="{pad + 134}" y="31" font-size="11">realized</text>'
        + (f'<polygon points="{band}" fill="#1f77b4" fill-opacity="0.15"/>' if n else "")
        + (
            f'<polyline class="estimate" fill="none" stroke="#1f77b4" stroke-width="2" points="{line}"/>'
            if n
            else ""
        )
        + dots
        + (
            f'<text x="{pad}" y="{height - pad + 14}" font-size="10">{rows[0].window_end:%H:%M}'
            f'</text><text x="{width - 10}" y="{height - pad + 14}" font-size="10" '
            f'text-anchor="end">{rows[-1].window_end:%H:%M}</text>'
            if n
            else ""
        )
        + f'<text x="{pad - 4}" y="{top + 4}" font-size="10" text-anchor="end">100%</text>'
        f'<text x="{pad - 4}" y="{height - pad}" font-size="10" text-anchor="end">{lo:.0%}</text>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - 10}" y2="{height - pad}" stroke="#333"/>'
        f'<line x1="{pad}" y1="{top}" x2="{pad}" y2="{height - pad}" stroke="#333"/></svg>'
    )
