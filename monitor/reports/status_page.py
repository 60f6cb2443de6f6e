"""The built-in status page: one self-contained HTML page per model, plots as inline SVG.

For installs without Grafana. The page tells the same story as the On-call and Canary
dashboards: drift effect size per family over time with its warn and alert thresholds, reference
vs current class distribution and confidence histogram, the pixel statistics that moved, and the
canary arms side by side; estimated vs realized accuracy over time, and the alerting window's
worst images next to the reference's typical ones (:mod:`monitor.reports.worst_images`). No JavaScript, no external CSS or fonts: the file opens anywhere.

:func:`gather` reads the store (I/O); :func:`render` is a pure function of :class:`StatusData`.

>>> from datetime import UTC, datetime
>>> t = datetime(2026, 11, 22, tzinfo=UTC)
>>> page = render(StatusData("digits", t, {"pixel": FamilyHistory([t], [0.3], 0.1, 0.2, [True])}))
>>> page.count("<svg"), "pixel" in page
(1, True)
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.detectors.registry import effect_floor
from monitor.errors import DriftwatchError, NotFound
from monitor.profiles import active_profile, reference_batch
from monitor.reports.worst_images import (
    GRID_CSS,
    WorstImages,
    accuracy_svg,
    alerting_window,
    gather_worst,
    worst_section,
)
from monitor.settings import FAMILIES, Settings
from monitor.store.drift_queries import newest_results
from monitor.store.impact_repo import estimates
from monitor.store.impact_tables import WindowEstimateRow
from monitor.store.logs import load_window
from monitor.store.tables import Window
from monitor.store.windows_repo import latest_arm_window

CONF_EDGES = np.linspace(0.0, 1.0, 11)
MINUS = "\u2212"
COLOURS = {"reference": "#7f8c9a", "current": "#1f77b4", "stable": "#2ca02c", "canary": "#d62728"}


@dataclass(frozen=True)
class FamilyHistory:
    """Effect size per evaluated window of one family, with the thresholds drawn over it."""

    times: list[datetime]
    effects: list[float]
    warn: float
    alert: float
    drifted: list[bool]


@dataclass(frozen=True)
class Distribution:
    """Class shares and confidence histogram (shares per ``CONF_EDGES`` bin) of a set of logs."""

    n: int
    class_shares: list[float]
    confidence: list[float]
    accuracy: float | None = None
    latency_p50_ms: float | None = None
    version: str = ""


@dataclass(frozen=True)
class StatusData:
    model: str
    generated_at: datetime
    families: dict[str, FamilyHistory]
    reference: Distribution | None = None
    current: Distribution | None = None
    moved: list[tuple[str, str, float, float]] = field(default_factory=list)
    arms: dict[str, Distribution] = field(default_factory=dict)
    accuracy: list[WindowEstimateRow] = field(default_factory=list)
    worst: WorstImages | None = None


def distribution(batch: LogBatch, version: str = "") -> Distribution:
    """Summarise ``batch``: class shares, confidence histogram, labelled accuracy, p50 latency.

    >>> from monitor.detectors.simulate import synthetic_batch
    >>> d = distribution(synthetic_batch(100, seed=0))
    >>> d.n, round(sum(d.class_shares), 6), round(sum(d.confidence), 6)
    (100, 1.0, 1.0)
    """
    n = len(batch)
    classes = np.bincount(batch.predicted, minlength=batch.n_classes) / max(n, 1)
    conf = np.histogram(batch.confidence, bins=CONF_EDGES)[0] / max(n, 1)
    accuracy = latency = None
    if batch.labels is not None and (batch.labels >= 0).any():
        known = batch.labels >= 0
        accuracy = float((batch.labels[known] == batch.predicted[known]).mean())
    if batch.latency_ms is not None and np.isfinite(batch.latency_ms).any():
        latency = float(np.nanmedian(batch.latency_ms))
    return Distribution(n, classes.tolist(), conf.tolist(), accuracy, latency, version)


# ---------------------------------------------------------------- gathering (I/O)


def gather(session: Session, settings: Settings, model: str, limit: int = 200) -> StatusData:
    """Read the status of ``model`` from the store (newest ``limit`` results per family)."""

    rows = newest_results(session, model, limit * len(FAMILIES))[::-1]
    if not rows:
        raise NotFound(f"no drift results for model {model!r}")
    families: dict[str, FamilyHistory] = {}
    for family in FAMILIES:
        mine = [r for r in rows if r.family == family and r.arm in ("all", "stable")]
        if not mine:
            continue
        floor = effect_floor(settings.detectors, model, family)
        families[family] = FamilyHistory(
            [r.window_end for r in mine],
            [r.effect_size for r in mine],
            floor,
            floor * settings.policy.alert_effect_multiple,
            [r.drifted for r in mine],
        )
    latest = rows[-1]
    moved = [
        (f"{r.family}: {f['name']}", _change_text(f), float(f["ref_value"]), float(f["cur_value"]))
        for r in rows
        if r.window_id == latest.window_id and r.family == "pixel"
        for f in r.details
        if f.get("drifted")
    ]
    current = reference = None
    window = session.get(Window, latest.window_id)
    if window is not None:
        current = distribution(load_window(session, window), window.model_version)
        profile = active_profile(session, model, window.model_version)
        if profile is not None:
            try:
                reference = distribution(reference_batch(session, profile), profile.model_version)
            except DriftwatchError:
                reference = None
    arms = {}
    for arm in ("stable", "canary"):
        arm_window = latest_arm_window(session, model, arm)
        if arm_window is not None:
            arms[arm] = distribution(load_window(session, arm_window), arm_window.model_version)
    accuracy = estimates(session, model, limit=limit)
    worst_id = alerting_window(session, model)
    worst = None if worst_id is None else gather_worst(session, settings, worst_id)
    return StatusData(
        model, latest.created_at, families, reference, current, moved, arms, accuracy, worst
    )


def _change_text(feature: dict[str, object]) -> str:
    ref, cur = float(str(feature["ref_value"])), float(str(feature["cur_value"]))
    if feature.get("relative", True) and ref:
        change = cur / ref - 1.0
        return f"{'+' if change >= 0 else MINUS}{abs(change) * 100:.0f}%"
    return f"{cur - ref:+.3g}"


# ---------------------------------------------------------------- SVG (pure)

W, H, PAD, TOP = 520, 230, 40, 44


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _frame(title: str, body: str, legend: list[tuple[str, str]]) -> str:
    keys = "".join(
        f'<rect x="{PAD + i * 120}" y="22" width="10" height="10" fill="{c}"/>'
        f'<text x="{PAD + i * 120 + 14}" y="31" font-size="11">{_esc(n)}</text>'
        for i, (n, c) in enumerate(legend)
    )
    return (
        f'<svg class="plot" role="img" aria-label="{_esc(title)}" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_esc(title)}</title>"
        f'<rect width="{W}" height="{H}" fill="#fff" stroke="#ddd"/>{keys}'
        f'<text x="10" y="15" font-size="12" font-weight="600">'
        f"{_esc(title)}</text>{body}"
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#333"/>'
        f'<line x1="{PAD}" y1="{TOP}" x2="{PAD}" y2="{H - PAD}" stroke="#333"/></svg>'
    )


def _ytick(label: str, y: float) -> str:
    return f'<text x="{PAD - 4}" y="{y:.1f}" font-size="10" text-anchor="end">{label}</text>'


def line_chart(h: FamilyHistory, title: str) -> str:
    """Effect size over windows, drifted windows marked, dashed warn/alert threshold lines."""
    top = max([*h.effects, h.alert * 1.2, 1e-9])
    n = len(h.effects)
    x = [PAD + (W - PAD - 20) * (i / max(n - 1, 1)) for i in range(n)]

    def y(v: float) -> float:
        return H - PAD - (H - PAD - TOP) * (v / top)

    pts = " ".join(f"{a:.1f},{y(v):.1f}" for a, v in zip(x, h.effects, strict=True))
    body = [
        f'<polyline fill="none" stroke="{COLOURS["current"]}" stroke-width="2" points="{pts}"/>'
    ]
    body += [
        f'<circle cx="{a:.1f}" cy="{y(v):.1f}" r="3" fill="{"#d62728" if d else "#1f77b4"}"/>'
        for a, v, d in zip(x, h.effects, h.drifted, strict=True)
    ]
    for name, value, colour in (("warn", h.warn, "#ff7f0e"), ("alert", h.alert, "#d62728")):
        body.append(
            f'<line class="threshold" x1="{PAD}" x2="{W - 10}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" stroke="{colour}" stroke-dasharray="6 4"/>'
            f'<text x="{W - 12}" y="{y(value) + (11 if name == "warn" else -3):.1f}" '
            f'font-size="10" '
            f'text-anchor="end" fill="{colour}">{name} {value:.3g}</text>'
        )
    body.append(_ytick(f"{top:.2g}", TOP + 4) + _ytick("0", H - PAD))
    if h.times:
        body.append(
            f'<text x="{PAD}" y="{H - PAD + 14}" font-size="10">'
            f'{h.times[0]:%H:%M}</text><text x="{W - 10}" y="{H - PAD + 14}" '
            f'font-size="10" text-anchor="end">{h.times[-1]:%H:%M}</text>'
        )
    return _frame(
        title, "".join(body), [("effect size", COLOURS["current"]), ("drifted window", "#d62728")]
    )


def bar_chart(title: str, labels: list[str], series: dict[str, list[float]]) -> str:
    """Grouped bars: one group per label, one bar per named series (e.g. reference/current)."""
    top = max([v for vals in series.values() for v in vals] + [1e-9])
    group = (W - PAD - 20) / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    body = []
    for s, (name, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            height = (H - PAD - TOP) * v / top
            body.append(
                f'<rect x="{PAD + i * group + s * bar + group * 0.1:.1f}" '
                f'y="{H - PAD - height:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{COLOURS.get(name, "#888")}"><title>{_esc(name)} '
                f"{_esc(labels[i])}: {v:.3f}</title></rect>"
            )
    body += [
        f'<text x="{PAD + (i + 0.5) * group:.1f}" y="{H - PAD + 14}" font-size="10" '
        f'text-anchor="middle">{_esc(label)}</text>'
        for i, label in enumerate(labels)
    ]
    body.append(_ytick(f"{top:.2f}", TOP + 4))
    return _frame(title, "".join(body), [(n, COLOURS.get(n, "#888")) for n in series])


# ---------------------------------------------------------------- page (pure)

_CSS = (
    """body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#f7f7f9}
h1{margin:0 0 4px}h2{margin:24px 0 8px;font-size:18px}.grid{display:flex;flex-wrap:wrap;gap:12px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:4px 8px}
.ok{color:#2ca02c}.drift{color:#d62728;font-weight:600}.muted{color:#777}"""
    + GRID_CSS
)


def _dist_pair(title: str, a: tuple[str, Distribution], b: tuple[str, Distribution]) -> str:
    n_classes = max(len(a[1].class_shares), len(b[1].class_shares))
    pad = [*[0.0] * n_classes]

    def shares(d: Distribution) -> list[float]:
        return (d.class_shares + pad)[:n_classes]

    conf_labels = [f"{CONF_EDGES[i]:.1f}" for i in range(len(CONF_EDGES) - 1)]
    return bar_chart(
        f"{title}: class distribution",
        [str(c) for c in range(n_classes)],
        {a[0]: shares(a[1]), b[0]: shares(b[1])},
    ) + bar_chart(
        f"{title}: confidence histogram",
        conf_labels,
        {a[0]: a[1].confidence, b[0]: b[1].confidence},
    )


def render(data: StatusData) -> str:
    """The complete HTML page for ``data``."""
    parts = [
        f"<h1>Driftwatch status: {_esc(data.model)}</h1>"
        f'<p class="muted">generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC</p>',
        '<h2>Drift statistics over time</h2><div class="grid">',
    ]
    rows = []
    for family, h in data.families.items():
        parts.append(line_chart(h, f"{family} effect size"))
        state = "drift" if h.drifted and h.drifted[-1] else "ok"
        rows.append(
            f"<tr><td>{_esc(family)}</td><td>{h.effects[-1]:.4g}</td>"
            f'<td>{h.warn:.3g} / {h.alert:.3g}</td><td class="{state}">{state}</td></tr>'
        )
    parts.append(
        "</div><table><tr><th>family</th><th>latest effect</th>"
        "<th>warn / alert</th><th>state</th></tr>" + "".join(rows) + "</table>"
    )
    if data.accuracy or data.worst is not None:
        parts.append("<h2>Is it harmful? Accuracy and the worst images</h2>")
        if data.accuracy:
            parts.append(f'<div class="grid">{accuracy_svg(data.accuracy)}</div>')
        if data.worst is not None:
            parts.append(worst_section(data.worst))
    if data.reference and data.current:
        parts.append(
            '<h2>Reference vs current</h2><div class="grid">'
            + _dist_pair(
                "Reference vs current", ("reference", data.reference), ("current", data.current)
            )
            + "</div>"
        )
    if data.moved:
        parts.append(
            "<h2>Pixel statistics that moved</h2>"
            + bar_chart(
                "Pixel statistics: reference vs current",
                [m[0].split(": ")[-1] for m in data.moved],
                {"reference": [m[2] for m in data.moved], "current": [m[3] for m in data.moved]},
            )
            + "<table><tr><th>statistic</th><th>change</th></tr>"
            + "".join(
                f'<tr><td>{_esc(m[0])}</td><td class="drift">{_esc(m[1])}</td></tr>'
                for m in data.moved
            )
            + "</table>"
        )
    if "stable" in data.arms and "canary" in data.arms:
        s, c = data.arms["stable"], data.arms["canary"]
        parts.append(
            '<h2>Canary arms side by side</h2><div class="grid">'
            + _dist_pair("Stable vs canary", ("stable", s), ("canary", c))
            + "</div>"
        )
        parts.append(
            "<table><tr><th>arm</th><th>version</th><th>logs</th><th>accuracy</th>"
            "<th>p50 latency</th></tr>"
            + "".join(
                f"<tr><td>{arm}</td><td>{_esc(d.version)}</td><td>{d.n}</td>"
                f"<td>{_fmt(d.accuracy, '.1%')}</td>"
                f"<td>{_fmt(d.latency_p50_ms, '.1f')} ms</td></tr>"
                for arm, d in (("stable", s), ("canary", c))
            )
            + "</table>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'
        f"<title>Driftwatch: {_esc(data.model)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def status_html(session: Session, settings: Settings, model: str) -> str:
    """Gather and render in one call (what the API route and the CLI use)."""
    return render(gather(session, settings, model))
