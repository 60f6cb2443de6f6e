"""Prometheus metric objects built from :mod:`monitor.metrics_spec`, created on first use.

>>> m = metric("driftwatch_windows_evaluated_total")
>>> m.labels(model="digits", version="v1", arm="all").inc()
"""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from monitor.metrics_spec import BY_NAME

_TYPES: dict[str, Any] = {"gauge": Gauge, "counter": Counter, "histogram": Histogram}


@cache
def _build(name: str, registry: CollectorRegistry) -> Any:
    spec = BY_NAME[name]
    # prometheus_client appends _total to counters itself.
    base = name.removesuffix("_total") if spec.type == "counter" else name
    return _TYPES[spec.type](base, spec.help, spec.labels, registry=registry)


def metric(name: str, registry: CollectorRegistry = REGISTRY) -> Any:
    """The metric object for ``name`` (must be declared in ``METRICS_SPEC``)."""
    if name not in BY_NAME:
        raise KeyError(f"{name} is not declared in monitor/metrics_spec.py")
    return _build(name, registry)
