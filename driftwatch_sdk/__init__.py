"""Driftwatch's light SDK for model servers: log predictions (numpy arrays or torch tensors)
and labels to Kafka, never blocking or raising into the serving path.

Depends on numpy, kafka-python and Pillow only; nothing of the Driftwatch server.

>>> from driftwatch_sdk import encode_prediction
>>> encode_prediction("digits", "v1", "r1", [0.1, 0.9], timestamp=0.0)[:40]
b'{"schema_version":1,"model":"digits","mo'
"""

from __future__ import annotations

from driftwatch_sdk.encode import (
    SCHEMA_VERSION,
    check_tags,
    encode_embedding,
    encode_label,
    encode_prediction,
    thumbnail_png,
    to_numpy,
)
from driftwatch_sdk.environment import env_tags, platform_arm, platform_revision
from driftwatch_sdk.logger import LabelLogger, PredictionLogger

__version__ = "0.1.0"
#: The JSON Schema of a prediction log, generated from the server's model (package data).
SCHEMA_FILE = "prediction_log.schema.json"

__all__ = [
    "SCHEMA_FILE",
    "SCHEMA_VERSION",
    "LabelLogger",
    "PredictionLogger",
    "check_tags",
    "encode_embedding",
    "encode_label",
    "encode_prediction",
    "env_tags",
    "platform_arm",
    "platform_revision",
    "thumbnail_png",
    "to_numpy",
]
