"""Write ``driftwatch_sdk/prediction_log.schema.json`` from the server's pydantic models
(:class:`monitor.schemas.PredictionLog`, with :class:`~monitor.schemas.LabelEvent` under
``$defs``). ``tests/test_sdk_schema.py`` fails when the file is stale: run
``PYTHONPATH=. python sdk/generate_schema.py``.

The JSON Schema carries every per-field rule; the cross-field ones (probabilities sum to 1,
``predicted_class`` below the number of classes, size limits from settings) are checked by the
server only and documented in docs/sdk.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.schemas import LabelEvent, PredictionLog

PATH = Path(__file__).resolve().parent.parent / "driftwatch_sdk" / "prediction_log.schema.json"


def _closed(node: Any) -> Any:
    """pydantic writes constrained dict keys as ``patternProperties``; the model refuses other
    keys, so the schema says so too (``additionalProperties: false``)."""
    if isinstance(node, dict):
        out = {k: _closed(v) for k, v in node.items()}
        if "patternProperties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a prediction log, label event under ``$defs``."""
    doc = _closed(PredictionLog.model_json_schema())
    label = _closed(LabelEvent.model_json_schema())
    doc["$defs"] = {**doc.get("$defs", {}), "LabelEvent": label}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://driftwatch.dev/schemas/prediction_log.schema.json",
        **doc,
    }


def render() -> str:
    """The file's text."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    PATH.write_text(render())
    print(PATH)
