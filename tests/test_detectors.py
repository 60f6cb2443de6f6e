"""One conformance suite over every registered detector kind.

Seeded determinism, row-order invariance, profile round-trip (bytes -> equal scores), no NaN on
degenerate input, symmetry where it holds, the decision rule, and that each kind catches the
shift it exists for and names what moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.message import AlertMessage as Message
from monitor.batch import LogBatch
from monitor.detectors import registry
from monitor.detectors.base import (
    FamilySpec,
    KindSpec,
    MissingInputError,
    ProfileBase,
    ProfileError,
    decide,
    outlier_feature,
)
from monitor.detectors.simulate import synthetic_batch
from monitor.errors import DriftwatchError
from monitor.results import DriftResult
from monitor.settings import DetectorSettings, FamilySettings
from monitor.stats import ks_columns

KINDS = registry.KINDS
DIM = 24
RARE7 = np.where(np.arange(10) == 7, 0.15, 1.0)
SHIFTS: dict[str, dict[str, Any]] = {
    "embedding": {"embedding_shift": 1.0},
    "pixel": {"brightness": -0.3},
    "confidence": {"temperature": 2.5},
    "classes": {"class_weights": RARE7},
}


def cfg_for(kind: str) -> FamilySettings:
    """The kind at alpha 0.01 with its declared floor."""
    spec = registry.FAMILIES[registry.family_of(kind)].SPEC
    settled: FamilySettings = spec.settle(FamilySettings(method=kind, alpha=0.01))
    return settled


def batch(n: int, seed: int, **shift: Any) -> LogBatch:
    return synthetic_batch(n, seed=seed, dim=DIM, **shift)


_PROFILES: dict[tuple[str, int], Any] = {}


def profile_for(kind: str, seed: int = 0) -> Any:
    key = (kind, seed)
    if key not in _PROFILES:
        module = registry.FAMILIES[registry.family_of(kind)]
        _PROFILES[key] = module.fit(batch(3000, seed=100 + seed), cfg_for(kind), seed=seed)
    return _PROFILES[key]


def score(kind: str, profile: Any, cur: LogBatch) -> DriftResult:
    return registry.FAMILIES[registry.family_of(kind)].score(profile, cur, cfg_for(kind))  # type: ignore[no-any-return]


def assert_same(a: DriftResult, b: DriftResult) -> None:
    assert a.drifted == b.drifted
    da, db = a.to_dict(), b.to_dict()
    for key in ("statistic", "p_value", "effect_size"):
        assert da[key] == pytest.approx(db[key], rel=1e-9, abs=1e-12), key
    assert [f["name"] for f in da["features"]] == [f["name"] for f in db["features"]]
    for fa, fb in zip(da["features"], db["features"], strict=True):
        assert fa["drifted"] == fb["drifted"]
        assert fa["effect_size"] == pytest.approx(fb["effect_size"], rel=1e-9, abs=1e-12)


def assert_valid(result: DriftResult, cfg: FamilySettings, n_cur: int) -> None:
    assert result.n_cur == n_cur and result.alpha == cfg.alpha
    assert result.threshold == cfg.effect_floor == registry.kind_specs()[result.kind].floor
    for value in (result.statistic, result.effect_size):
        assert math.isfinite(value)
    assert result.p_value is None or 0.0 <= result.p_value <= 1.0
    if result.drifted:  # honest decision: significant, and large in a large window
        assert result.p_value is None or result.p_value < cfg.alpha
        if n_cur >= cfg.floor_min_rows:
            assert result.effect_size >= result.threshold
    for f in result.features:
        assert math.isfinite(f.statistic) and math.isfinite(f.effect_size)
        assert f.p_value is None or 0.0 <= f.p_value <= 1.0
        assert f.describe().startswith(f.name)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_registered_with_its_profile_type(kind: str) -> None:
    profile = profile_for(kind)
    assert profile.kind == kind
    assert isinstance(profile, registry.PROFILE_TYPES[kind])
    assert profile.schema_version == registry.PROFILE_TYPES[kind].SCHEMA_VERSION
    assert registry.kind_specs()[kind].profile is type(profile)


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_determinism(kind: str) -> None:
    module = registry.FAMILIES[registry.family_of(kind)]
    ref = batch(3000, seed=100)
    a, b = module.fit(ref, cfg_for(kind), seed=3), module.fit(ref, cfg_for(kind), seed=3)
    assert a.to_bytes() == b.to_bytes()
    cur = batch(700, seed=5)
    assert_same(score(kind, a, cur), score(kind, b, cur))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=8, deadline=None)
@given(
    data_seed=st.integers(0, 10_000), perm_seed=st.integers(0, 10_000), n=st.sampled_from([30, 600])
)
def test_row_order_invariance(kind: str, data_seed: int, perm_seed: int, n: int) -> None:
    family = registry.family_of(kind)
    cur = batch(n, seed=data_seed, **(SHIFTS[family] if data_seed % 2 else {}))
    perm = np.random.default_rng(perm_seed).permutation(n)
    profile = profile_for(kind)
    assert_same(score(kind, profile, cur), score(kind, profile, cur.take(perm)))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=5, deadline=None)
@given(data_seed=st.integers(0, 10_000))
def test_profile_round_trip_gives_equal_scores(kind: str, data_seed: int) -> None:
    profile = profile_for(kind)
    payload = profile.to_bytes()
    assert payload[:2] == b"PK"  # an .npz (zip) archive, never a pickle
    loaded = registry.load_profile(kind, profile.schema_version, payload)
    assert type(loaded) is type(profile) and loaded.to_bytes() == payload
    cur = batch(400, seed=data_seed)
    assert_same(score(kind, profile, cur), score(kind, loaded, cur))


@pytest.mark.parametrize("kind", KINDS)
def test_catches_its_shift_and_names_what_moved(kind: str) -> None:
    family = registry.family_of(kind)
    profile = profile_for(kind)
    cfg = cfg_for(kind)
    shifted = score(kind, profile, batch(1000, seed=7, **SHIFTS[family]))
    clean = score(kind, profile, batch(1000, seed=10))
    assert_valid(shifted, cfg, 1000)
    assert_valid(clean, cfg, 1000)
    assert shifted.drifted and not clean.drifted
    assert shifted.family == family and shifted.kind == kind
    top = shifted.top_features(1)[0]
    expected = {"pixel": "brightness", "classes": "class 7"}.get(family)
    if expected:
        assert top.name == expected and top.drifted
    if family == "pixel":
        assert top.describe().startswith("brightness −")
    if family == "classes":
        assert top.describe().startswith("class 7: ") and top.cur_value < top.ref_value
    if family == "confidence":
        assert {f.name for f in shifted.features if f.drifted} & {"max softmax", "entropy"}


def _degenerate_batches() -> list[tuple[str, LogBatch]]:
    n = 50
    one_hot = np.zeros((n, 10), dtype=np.float32)
    one_hot[:, 3] = 1.0
    base = synthetic_batch(n, seed=1, dim=DIM)
    const_pix = np.ones_like(base.pixel)
    const_emb = np.zeros_like(base.embeddings)
    empty = base.take(np.zeros(n, dtype=bool))
    single = LogBatch(probs=one_hot, predicted=np.full(n, 3), embeddings=const_emb, pixel=const_pix)
    nan_pix = base.pixel.copy()
    nan_pix[:, :4] = np.nan
    with_nan = LogBatch(
        probs=base.probs, predicted=base.predicted, embeddings=base.embeddings, pixel=nan_pix
    )
    new_class = LogBatch(
        probs=np.eye(12, dtype=np.float32)[np.full(n, 11)],
        predicted=np.full(n, 11),
        embeddings=base.embeddings,
        pixel=base.pixel,
    )
    return [
        ("single-class-constant", single),
        ("empty", empty),
        ("one-row", base.take(np.arange(1))),
        ("nan-columns", with_nan),
        ("unseen-class", new_class),
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("label", "cur"), _degenerate_batches(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_degenerate_windows_give_finite_results(kind: str, label: str, cur: LogBatch) -> None:
    result = score(kind, profile_for(kind), cur)
    assert_valid(result, cfg_for(kind), len(cur))
    if label == "unseen-class" and registry.family_of(kind) == "classes":
        assert result.drifted
        assert any(f.name == "class 11" and f.ref_value == 0 for f in result.features)


@pytest.mark.parametrize("kind", KINDS)
def test_degenerate_references_give_finite_profiles(kind: str) -> None:
    module = registry.FAMILIES[registry.family_of(kind)]
    single = _degenerate_batches()[0][1]
    profile = module.fit(single, cfg_for(kind))
    reloaded = registry.load_profile(kind, profile.schema_version, profile.to_bytes())
    result = score(kind, reloaded, batch(200, seed=9))
    assert_valid(result, cfg_for(kind), 200)


@pytest.mark.parametrize("kind", ["classes.chi2", "classes.psi", "classes.js", "pixel.ks"])
def test_statistic_is_symmetric_in_reference_and_window(kind: str) -> None:
    a, b = batch(800, seed=11), batch(600, seed=12, brightness=-0.1, class_weights=RARE7)
    module = registry.FAMILIES[registry.family_of(kind)]
    ab = module.score(module.fit(a, cfg_for(kind)), b, cfg_for(kind))
    ba = module.score(module.fit(b, cfg_for(kind)), a, cfg_for(kind))
    assert ab.statistic == pytest.approx(ba.statistic)
    if kind.startswith("classes"):
        assert ab.effect_size == pytest.approx(ba.effect_size)
        assert ab.p_value == pytest.approx(ba.p_value)


def test_registry_skips_families_whose_inputs_are_missing() -> None:
    settings_ = DetectorSettings()
    no_emb = synthetic_batch(500, seed=1, embeddings=False, pixel=False)
    profiles = registry.fit_all(no_emb, settings_, "m")
    assert sorted(profiles) == ["classes", "confidence"]
    full = registry.fit_all(batch(500, seed=1), settings_, "m")
    results = registry.score_all(full, no_emb, settings_, "m")
    assert [r.family for r in results] == ["confidence", "classes"]
    with pytest.raises(MissingInputError):
        registry.FAMILIES["embedding"].score(full["embedding"], no_emb, FamilySettings())


def test_registry_respects_disabled_families_and_model_overrides() -> None:
    off = FamilySettings(enabled=False)
    strict = FamilySettings(method="classes.psi", alpha=0.001, effect_floor=0.5)
    settings_ = DetectorSettings(overrides={"cam": {"pixel": off, "classes": strict}})
    profiles = registry.fit_all(batch(500, seed=1), settings_, "cam")
    assert "pixel" not in profiles and profiles["classes"].kind == "classes.psi"
    results = {
        r.family: r for r in registry.score_all(profiles, batch(300, seed=2), settings_, "cam")
    }
    assert results["classes"].alpha == 0.001 and results["classes"].threshold == 0.5
    assert "pixel" in registry.fit_all(batch(500, seed=1), settings_, "other")


def test_class_effect_is_corrected_for_a_small_references_noise() -> None:
    """A clean window against a reference of 360: the plug-in w is near the 0.1 floor by chance
    alone (about 0.06 here); the corrected effect is far below it, the floor the configured one."""
    from monitor.stats import cohens_w

    cfg = cfg_for("classes.chi2")
    module = registry.FAMILIES["classes"]
    small = module.fit(batch(360, seed=1), cfg)
    raw, adjusted = [], []
    for seed in range(2, 42):
        cur = batch(1000, seed=seed)
        res = module.score(small, cur, cfg)
        assert res.threshold == cfg.effect_floor
        counts = module.counts_of(cur, 10)
        raw.append(float(cohens_w(small.counts / 360, counts / 1000)))
        adjusted.append(res.effect_size)
    assert np.mean(raw) > 0.05 and np.mean(adjusted) < np.mean(raw) / 2
    rare = module.score(small, batch(1000, seed=99, class_weights=RARE7), cfg)
    assert rare.drifted and rare.effect_size > cfg.effect_floor


def test_low_confidence_rate_uses_an_exact_test_for_small_windows() -> None:
    """0 of 360 reference predictions under 0.5, 1 of 10 in the window: z says p ~ 6e-9,
    Fisher's exact test says 0.027; the rate feature reports the exact one (Holm over 3)."""
    probs = np.array([[0.9, 0.06, 0.04]] * 360)
    ref = LogBatch(probs=probs, predicted=np.zeros(360, dtype=np.int64))
    cur_probs = np.array([[0.9, 0.06, 0.04]] * 9 + [[0.45, 0.35, 0.2]])
    cur = LogBatch(probs=cur_probs, predicted=cur_probs.argmax(axis=1))
    cfg = cfg_for("confidence.ks")
    module = registry.FAMILIES["confidence"]
    res = module.score(module.fit(ref, cfg), cur, cfg)
    rate = next(f for f in res.features if f.name.startswith("low confidence"))
    assert rate.p_value is not None and 0.027 <= rate.p_value <= 3 * 0.0271
    assert rate.describe() == "low confidence (<0.5): 0.0% → 10.0%"


def test_principal_components_describe_in_standard_deviations() -> None:
    profile = profile_for("embedding.pca_ks")
    res = score("embedding.pca_ks", profile, batch(1000, seed=7, embedding_shift=1.0))
    top = res.top_features(1)[0]
    assert top.unit == "sd" and top.describe().startswith(f"{top.name}: ")
    assert top.describe().endswith(" sd") and "%" not in top.describe()


def test_pixel_columns_are_matched_by_name() -> None:
    profile = profile_for("pixel.ks")
    cur = batch(500, seed=3, brightness=-0.3)
    order = np.arange(len(cur.pixel_names))[::-1]
    reordered = LogBatch(
        probs=cur.probs,
        predicted=cur.predicted,
        pixel=cur.pixel[:, order[:5]],
        pixel_names=tuple(cur.pixel_names[i] for i in order[:5]),
    )
    result = score("pixel.ks", profile, reordered)
    assert {f.name for f in result.features} == set(reordered.pixel_names)
    full = score("pixel.ks", profile, cur)
    by_name = {f.name: f for f in full.features}
    for f in result.features:
        assert f.statistic == pytest.approx(by_name[f.name].statistic)


def test_load_profile_rejects_bad_input() -> None:
    profile = profile_for("classes.chi2")
    payload = profile.to_bytes()
    with pytest.raises(ProfileError, match="unknown detector kind"):
        registry.load_profile("classes.nope", 1, payload)
    with pytest.raises(ProfileError, match="schema_version"):
        registry.load_profile("classes.chi2", 99, payload)
    with pytest.raises(ProfileError, match="cannot read"):
        registry.load_profile("classes.chi2", 1, b"not an npz")
    with pytest.raises(ProfileError, match=r"not classes\.psi"):
        registry.load_profile("classes.psi", 1, payload)
    with pytest.raises(DriftwatchError):
        registry.load_profile("pixel.ks", 1, payload)


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown pixel method"):
        registry.FAMILIES["pixel"].fit(batch(100, seed=1), FamilySettings(method="pixel.magic"))


def test_embedding_dimension_mismatch_is_missing_input() -> None:
    with pytest.raises(MissingInputError, match="dimensions"):
        score("embedding.mmd", profile_for("embedding.mmd"), synthetic_batch(100, seed=1, dim=8))


def test_mmd_torch_path_matches_numpy() -> None:
    from monitor.detectors import embedding

    cfg = cfg_for("embedding.mmd")
    cur = batch(400, seed=4, embedding_shift=0.3)
    a = embedding.score(profile_for("embedding.mmd"), cur, cfg)
    b = embedding.score(profile_for("embedding.mmd"), cur, cfg, device="cpu")
    assert a.p_value == b.p_value and a.statistic == pytest.approx(b.statistic, rel=1e-4)


def test_score_all_forwards_the_device_to_the_embedding_test() -> None:
    settings_ = DetectorSettings()
    profiles = registry.fit_all(batch(1500, seed=1), settings_, "m")
    cur = batch(600, seed=2, embedding_shift=0.2)
    plain = registry.score_all(profiles, cur, settings_, "m")
    torch_cpu = registry.score_all(profiles, cur, settings_, "m", device="cpu")
    for a, b in zip(plain, torch_cpu, strict=True):
        assert (a.family, a.drifted, a.p_value) == (b.family, b.drifted, b.p_value)


def test_repeated_rows_count_once_in_the_embedding_test() -> None:
    """A window resampled with replacement scores like its distinct rows (no "clumpy" alarm)."""
    profile = profile_for("embedding.mmd")
    pool = batch(300, seed=21)
    repeated = pool.take(np.random.default_rng(0).integers(0, 300, size=3000))
    distinct = repeated.take(np.unique(repeated.embeddings, axis=0, return_index=True)[1])
    a, b = score("embedding.mmd", profile, repeated), score("embedding.mmd", profile, distinct)
    assert (a.p_value, a.statistic) == (b.p_value, pytest.approx(b.statistic))
    assert not a.drifted


def test_an_override_that_only_tightens_alpha_keeps_the_kinds_floor() -> None:
    """The trap: an override naming alpha alone used to replace the whole family's settings,
    so the embedding floor became the generic 0.1 (50x the MMD^2 default)."""
    detectors = DetectorSettings(overrides={"digits": {"embedding": FamilySettings(alpha=0.001)}})
    merged = detectors.for_model("digits", "embedding")
    assert merged.alpha == 0.001 and merged.effect_floor is None
    cfg = registry.family_settings(detectors, "digits", "embedding")
    assert (cfg.method, cfg.alpha, cfg.effect_floor) == ("embedding.mmd", 0.001, 0.002)
    # A method override alone takes that kind's floor; a family-level floor survives an override.
    js = DetectorSettings(overrides={"m": {"confidence": FamilySettings(method="confidence.js")}})
    assert registry.family_settings(js, "m", "confidence").effect_floor == 0.05
    tuned = DetectorSettings(
        pixel=FamilySettings(effect_floor=0.3),
        overrides={"m": {"pixel": FamilySettings(alpha=0.002)}},
    )
    assert registry.family_settings(tuned, "m", "pixel").effect_floor == 0.3
    assert registry.family_settings(tuned, "m", "pixel").alpha == 0.002


def test_unset_alphas_share_the_family_wise_budget() -> None:
    detectors = DetectorSettings(alpha=0.08)
    assert [registry.family_settings(detectors, "m", f).alpha for f in registry.FAMILIES] == [
        0.02
    ] * 4
    one_off = DetectorSettings(
        alpha=0.08, overrides={"m": {"pixel": FamilySettings(enabled=False)}}
    )
    assert registry.family_settings(one_off, "m", "classes").alpha == pytest.approx(0.08 / 3)


@dataclass(frozen=True, eq=False)
class LatencyProfile(ProfileBase):
    sample: np.ndarray


def _fit_latency(ref: LogBatch, cfg: FamilySettings, *, seed: int = 0) -> LatencyProfile:
    assert ref.latency_ms is not None
    return LatencyProfile(kind="latency.ks", n_ref=len(ref), sample=np.sort(ref.latency_ms))


def _score_latency(profile: LatencyProfile, cur: LogBatch, cfg: FamilySettings) -> DriftResult:
    cfg = LATENCY.SPEC.settle(cfg)
    assert cur.latency_ms is not None
    test = ks_columns(profile.sample[:, None], np.asarray(cur.latency_ms)[:, None])
    p, d = float(test.p_value[0]), float(test.statistic[0])
    return DriftResult(
        family="latency",
        kind="latency.ks",
        method="ks",
        statistic=d,
        p_value=p,
        effect_size=d,
        threshold=cfg.effect_floor or 0.0,
        alpha=cfg.alpha or 0.0,
        drifted=decide(p, d, cfg, len(cur)),
        n_ref=profile.n_ref,
        n_cur=len(cur),
    )


#: A whole family in one "module": its spec, fit and score.
LATENCY = SimpleNamespace(
    SPEC=FamilySpec(
        "latency",
        "serving latency",
        "Latency moved: check the model server.",
        page_rank=-1,
        kinds=(KindSpec("latency.ks", LatencyProfile, 0.1, "KS D", "KS on latency"),),
    ),
    fit=_fit_latency,
    score=_score_latency,
)


def test_a_new_family_is_one_module_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.FAMILIES, "latency", LATENCY)  # the one registry line
    detectors = DetectorSettings()
    ref = batch(2000, seed=1)
    profiles = registry.fit_all(ref, detectors, "m")
    assert "latency" in profiles and registry.family_of("latency.ks") == "latency"
    stored = profiles["latency"]
    loaded = registry.load_profile("latency.ks", stored.schema_version, stored.to_bytes())
    slow = batch(1000, seed=2)
    slow = LogBatch(probs=slow.probs, predicted=slow.predicted, latency_ms=slow.latency_ms * 1.5)
    results = {r.family: r for r in registry.score_all({"latency": loaded}, slow, detectors, "m")}
    # Its alpha is a fifth of the budget now that five families share it.
    assert results["latency"].drifted and results["latency"].alpha == pytest.approx(0.01)
    assert registry.page_order(["pixel", "latency"]) == ["latency", "pixel"]
    message = Message.build(  # the alert text reads the family's runbook from its spec
        alert_id=1,
        event="trigger",
        model="m",
        version="1",
        family="latency",
        severity="warn",
        evidence={},
        dashboard_url="http://g",
        runbook_url="http://rb",
    )
    assert message.runbook == "Latency moved: check the model server."


def _with_outliers(n: int, share: float, seed: int) -> LogBatch:
    cur = batch(n, seed=seed)
    assert cur.embeddings is not None
    emb = cur.embeddings.copy()
    k = round(share * n)
    emb[:k] += np.random.default_rng(seed).normal(0.0, 1.5, size=(k, emb.shape[1]))
    return LogBatch(probs=cur.probs, predicted=cur.predicted, embeddings=emb, pixel=cur.pixel)


def test_a_shift_of_one_image_in_ten_is_caught_as_outliers() -> None:
    profile = profile_for("embedding.mmd")
    result = score("embedding.mmd", profile, _with_outliers(1000, 0.1, seed=3))
    outliers = next(f for f in result.features if f.name == "outliers")
    assert result.drifted and outliers.drifted
    assert outliers.ref_value == pytest.approx(0.01, abs=0.002) and outliers.cur_value > 0.08
    assert outliers.describe().startswith("outliers: 1.0% → ")
    clean = next(f for f in score("embedding.mmd", profile, batch(1000, seed=4)).features)
    assert clean.name == "outliers" and not clean.drifted


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 400), share=st.floats(0.0, 0.5))
def test_the_outlier_p_value_is_the_exact_rank_tail(seed: int, n: int, share: float) -> None:
    """At least ``x`` window logs above the threshold, which sits at the ``k + 1``-th largest
    held-out score or above: the chance that ``x + k`` top pooled scores hold ``x`` window ones."""
    from scipy.stats import hypergeom

    profile = profile_for("embedding.mmd")
    cur = _with_outliers(n, share, seed)
    assert cur.embeddings is not None
    feature = outlier_feature(
        profile, np.asarray(cur.embeddings, dtype=np.float64), cfg_for("embedding.mmd")
    )
    assert feature is not None
    held, above = int(profile.out_held), round(feature.cur_value * n)
    k = round(feature.ref_value * held)
    expected = hypergeom.sf(above - 1, n + held, n, above + k) if above else 1.0
    assert feature.p_value == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_profiles_stored_before_the_outlier_model_still_load_and_score() -> None:
    """An old payload lacks the outlier fields: it loads with them empty and skips that test."""
    import io
    import json

    profile = profile_for("embedding.mmd")
    with np.load(io.BytesIO(profile.to_bytes())) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("out_")}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta = {k: v for k, v in meta.items() if not k.startswith("out_")}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    loaded = registry.load_profile("embedding.mmd", profile.schema_version, payload)
    assert len(loaded.out_mean) == 0  # type: ignore[attr-defined]
    result = score("embedding.mmd", loaded, batch(300, seed=5))
    assert all(f.name != "outliers" for f in result.features)
