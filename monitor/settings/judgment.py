"""How windows are judged: detector families, accuracy impact, the paging policy."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from monitor.settings.base import _Section
from monitor.vocabulary import Family


class FamilySettings(_Section):
    """Kind, significance level and effect-size floor of one detector family.

    ``None`` means "the default": the family's default kind, the kind's own effect floor (in
    the kind's unit, declared by its family module) and the family's share of
    :attr:`DetectorSettings.alpha`. A per-model override sets only the fields it names.
    """

    enabled: bool = True
    method: str | None = None
    alpha: float | None = Field(None, gt=0, lt=1)
    effect_floor: float | None = Field(None, ge=0)
    floor_min_rows: int = Field(
        2000, ge=0, description="Windows this large must reach the floor to alarm."
    )


class DetectorSettings(_Section):
    """One false-alarm budget and per-family settings, with per-model overrides
    (``overrides[model][family]``, merged field by field over the family's settings).

    Kinds, their default floors and units are declared by the family modules
    (``monitor.detectors``); ``monitor.detectors.registry.family_settings`` fills them in.
    """

    alpha: float = Field(
        0.05, gt=0, lt=1, description="Family-wise false-alarm rate of a window's verdict."
    )
    embedding: FamilySettings = FamilySettings()
    pixel: FamilySettings = FamilySettings()
    confidence: FamilySettings = FamilySettings()
    classes: FamilySettings = FamilySettings()
    overrides: dict[str, dict[Family, FamilySettings]] = Field(default_factory=dict)

    def for_model(self, model: str, family: str) -> FamilySettings:
        """The settings of ``family`` for ``model``: the override's fields over the family's.

        >>> s = DetectorSettings(pixel=FamilySettings(effect_floor=0.3),
        ...                      overrides={"m": {"pixel": FamilySettings(alpha=0.001)}})
        >>> s.for_model("m", "pixel").effect_floor, s.for_model("m", "pixel").alpha
        (0.3, 0.001)
        """
        base: FamilySettings = getattr(self, family, None) or FamilySettings()
        override = self.overrides.get(model, {}).get(family)  # type: ignore[call-overload]
        if override is None:
            return base
        return base.model_copy(update={f: getattr(override, f) for f in override.model_fields_set})


class ImpactSettings(_Section):
    """Whether drift hurts: the label-free accuracy estimate, and how severity and retraining
    use it (see ``docs/operations.md``, "Severity by impact"). Drops are in accuracy points."""

    enabled: bool = Field(True, description="Page only on drift that costs estimated accuracy.")
    level: float = Field(0.95, gt=0, lt=1, description="Confidence level of every interval.")
    page_min_drop_points: float = Field(
        3.0, ge=0, description="A page needs the drop's lower bound (or point) at least this."
    )
    critical_drop_points: float = Field(10.0, ge=0, description="Drop that makes it critical.")
    drop_bound: Literal["lower", "point"] = Field(
        "lower", description="Compare the interval's lower bound (cautious) or the point estimate."
    )
    min_realized_labels: int = Field(
        100, ge=1, description="Labelled logs in a window before its realized accuracy counts."
    )
    disagreement_points: float = Field(
        5.0, ge=0, description="Realized vs estimated gap that flags a failed estimate."
    )
    retrain_requires: Literal["none", "estimated", "realized", "either"] = Field(
        "either", description="Which drop a retrain needs (besides a paging alert)."
    )
    retrain_min_drop_points: float = Field(3.0, ge=0)
    min_calibration_labels: int = Field(
        50, ge=1, description="Labelled reference logs needed to fit temperature scaling."
    )
    worst_images: int = Field(24, ge=1, le=500, description="Worst images kept per window view.")
    worst_images_url: str = Field(
        "http://127.0.0.1:8000/api/v1/windows/{window_id}/outliers/page",
        description="Link to a window's worst-images grid in alerts ({window_id} is filled in).",
    )


class PolicySettings(_Section):
    """How drift results become decisions (see ``monitor/policy.py``)."""

    windows_to_warn: int = Field(1, ge=1)
    windows_to_alert: int = Field(2, ge=1)
    windows_to_resolve: int = Field(3, ge=1)
    cooldown_seconds: float = Field(3600.0, ge=0)
    alert_effect_multiple: float = Field(
        2.0, ge=1.0, description="Alert severity needs effect >= floor * this."
    )
    retrain_families: list[Family] = ["embedding", "pixel", "confidence", "classes"]
    retrain_max_per_day: int = Field(1, ge=0)
    retrain_min_severity: Literal["warning", "critical"] = "warning"
    impact: ImpactSettings = ImpactSettings()
