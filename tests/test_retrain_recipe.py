"""The default recipe recovers accuracy on shifted digits without forgetting the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.errors import ConfigError
from retrain.digits import SHIFTS, load_digits_images, train_holdout
from retrain.model import predict
from retrain.recipes import RecipeInput, digits_finetune, load_recipe, state_bytes, train_baseline
from retrain.train import balanced_weights

torch.set_num_threads(2)


def _shifted(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits_images()
    images = SHIFTS["rotation"](data.images)
    order = np.random.default_rng(seed).permutation(len(data.labels))
    tr, ho = order[:600], order[600:]
    return images[tr], data.labels[tr], images[ho], data.labels[ho]


def test_finetune_recovers_accuracy_on_shifted_digits() -> None:
    base = train_baseline()
    x_tr, y_tr, x_ho, y_ho = _shifted()
    before = float((predict(base, x_ho)[0].argmax(1) == y_ho).mean())
    out = digits_finetune(
        RecipeInput(
            images=x_tr, labels=y_tr, base_weights=state_bytes(base), seed=0, progress=False
        )
    )
    after = float((predict(out.net, x_ho)[0].argmax(1) == y_ho).mean())
    assert before < 0.75  # the shift really hurts the baseline
    assert after >= 0.85 and after >= before + 0.15
    # The replay of reference digits keeps the old condition within 3 points.
    _, ref = train_holdout(seed=0)
    ref_before = float((predict(base, ref.images)[0].argmax(1) == ref.labels).mean())
    ref_after = float((predict(out.net, ref.images)[0].argmax(1) == ref.labels).mean())
    assert ref_after >= ref_before - 0.03
    assert out.params["n_replay"] == 600 and out.params["seed"] == 0
    assert 0 <= out.history["best_epoch"] < len(out.history["val_accuracy"])


def test_finetune_is_deterministic_for_a_seed() -> None:
    base = state_bytes(train_baseline())
    x_tr, y_tr, x_ho, _ = _shifted()
    params = {"epochs": 2}
    a = digits_finetune(RecipeInput(x_tr[:200], y_tr[:200], base, params, seed=3, progress=False))
    b = digits_finetune(RecipeInput(x_tr[:200], y_tr[:200], base, params, seed=3, progress=False))
    np.testing.assert_array_equal(predict(a.net, x_ho[:50])[0], predict(b.net, x_ho[:50])[0])


def test_balanced_weights_equalise_classes() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    w = balanced_weights(labels)
    assert w[labels == 0].sum() == pytest.approx(0.5) and w[labels == 1].sum() == pytest.approx(0.5)


def test_load_recipe_reports_bad_specs() -> None:
    assert load_recipe("retrain.recipes:digits_finetune") is digits_finetune
    with pytest.raises(ConfigError, match="module:callable"):
        load_recipe("retrain.recipes")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_recipe("retrain.nope:x")
