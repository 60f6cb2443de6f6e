"""The words Driftwatch's records use, once, as ``Literal`` types: states, arms, families.

Settings, message schemas, the policy, the tables' column annotations and the API's response
models import them from here, so a new state is one edit and a typo is a type error.
"""

from __future__ import annotations

from typing import Literal, get_args

#: Detector families, in paging order.
Family = Literal["embedding", "pixel", "confidence", "classes"]
FAMILIES: tuple[Family, ...] = get_args(Family)

#: The arm a prediction was served by; windows also use "all" for a model without a canary.
Arm = Literal["stable", "canary"]
WindowArm = Literal["all", "stable", "canary"]

#: A window's life: closed (waiting), evaluated, no_profile (waiting for one), failed.
WindowState = Literal["closed", "evaluated", "no_profile", "failed"]

#: The policy's state per model version and family, and an alert's severity and status.
DriftState = Literal["ok", "warn", "alert", "resolved"]
Severity = Literal["warning", "critical"]
AlertStatus = Literal["firing", "resolved"]

#: Retraining: a job, a registered model version, a canary rollout.
JobState = Literal["queued", "running", "succeeded", "failed"]
VersionState = Literal["candidate", "canary", "promoted", "rolled_back", "failed", "retired"]
RolloutState = Literal["running", "promoted", "rolled_back"]
