"""The server-side face of the SDK: :mod:`driftwatch_sdk` configured from
:class:`~monitor.settings.KafkaSettings` (model servers use ``driftwatch_sdk`` directly).

>>> raw = encode_prediction("digits", "v1", "req-1", [0.25, 0.75], timestamp=0.0)
>>> from monitor.schemas import PredictionLog
>>> PredictionLog.model_validate_json(raw).predicted_class
1
"""

from __future__ import annotations

from typing import Any

import driftwatch_sdk
from driftwatch_sdk import encode_label, encode_prediction, thumbnail_png
from ingest.kafka_config import client_config
from monitor.settings import KafkaSettings

__all__ = ["LabelLogger", "PredictionLogger", "encode_label", "encode_prediction", "thumbnail_png"]


def _kafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    client = client_config(kafka)
    return {
        "bootstrap_servers": client.pop("bootstrap_servers"),
        "predictions_topic": kafka.predictions_topic,
        "labels_topic": kafka.labels_topic,
        "client_config": client,
    }


class PredictionLogger(driftwatch_sdk.PredictionLogger):
    """:class:`driftwatch_sdk.PredictionLogger` for the broker ``kafka`` describes."""

    def __init__(self, kafka: KafkaSettings, model: str, model_version: str, **kwargs: Any):
        self.kafka = kafka
        super().__init__(model, model_version, **_kafka_options(kafka), **kwargs)


class LabelLogger(PredictionLogger):
    """A logger used only for labels (``log_label``), e.g. in a feedback service."""

    def __init__(self, kafka: KafkaSettings, model: str, **kwargs: Any) -> None:
        super().__init__(kafka, model, "labels", **kwargs)
