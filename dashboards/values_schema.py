"""The chart's ``values.schema.json``: ``config`` is the JSON Schema of
:class:`monitor.settings.Settings` (extra keys forbidden), every other section follows the
shape of ``values.yaml``, so a typo in values fails ``helm lint`` and ``helm template``.

Regenerate with ``python -m dashboards.values_schema helm/driftwatch`` (tests/test_helm_chart.py
fails when the checked-in file differs).

>>> _infer(3)
{'type': ['integer', 'null']}
>>> _infer({"a": True})["properties"]
{'a': {'type': 'boolean'}}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from monitor.settings import Settings

#: Values keys whose objects are Kubernetes types or free maps, passed through verbatim.
FREE_FORM = frozenset(
    {
        "resources", "podSecurityContext", "securityContext", "affinity", "nodeSelector",
        "annotations", "labels", "podLabels", "podAnnotations", "startupProbe",
        "livenessProbe", "readinessProbe", "detectors", "recipe_params",
    }
)  # fmt: skip


def _infer(value: Any, key: str = "") -> dict[str, Any]:
    """A schema for a values node from its default."""
    if isinstance(value, dict):
        if key in FREE_FORM or not value:
            return {"type": "object"}
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: _infer(v, k) for k, v in value.items()},
        }
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": ["integer", "null"]}  # null turns a port off
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    return {}


def values_schema(values: dict[str, Any]) -> dict[str, Any]:
    """The schema of a chart's values, ``config`` from the settings model."""
    schema = _infer(values)
    settings = Settings.model_json_schema()
    defs = settings.pop("$defs", {})
    settings.pop("title", None)
    schema["properties"]["config"] = settings
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Driftwatch chart values",
        **schema,
        "$defs": defs,
    }


def render(chart: Path) -> str:
    values = yaml.safe_load((chart / "values.yaml").read_text())
    return json.dumps(values_schema(values), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover
    chart = Path(sys.argv[1])
    (chart / "values.schema.json").write_text(render(chart))
