"""Training recipes: the plug-in point ``settings.retrain.recipe = "module:callable"``.

A recipe is ``callable(RecipeInput) -> RecipeOutput``: it builds the model and its data, trains,
and says how raw uint8 images become model input and where its reference holdout is.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from monitor.errors import ConfigError, DriftwatchError
from retrain.digits import train_holdout
from retrain.model import DigitsNet, to_tensor, train_classifier
from retrain.train import finetune


@dataclass(frozen=True)
class RecipeInput:
    """Labelled production images of the drifted period and the model they fine-tune."""

    images: np.ndarray  # (N, H, W) uint8
    labels: np.ndarray  # (N,) int64
    base_weights: bytes | None  # torch state_dict of the current model, or None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    progress: bool = True


@dataclass(frozen=True)
class RecipeOutput:
    net: nn.Module  # with ``embed`` and ``head``
    to_input: Callable[[np.ndarray], np.ndarray]  # uint8 images -> (N, C, H, W) float32
    reference_holdout: tuple[np.ndarray, np.ndarray]  # (images uint8, labels)
    params: dict[str, Any]
    history: dict[str, Any]


Recipe = Callable[[RecipeInput], RecipeOutput]


def load_recipe(spec: str) -> Recipe:
    """Import ``module:callable``."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"recipe {spec!r} must look like 'module:callable'")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"recipe {spec!r} cannot be imported: {exc}") from exc
    if not callable(fn):
        raise ConfigError(f"recipe {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def state_bytes(net: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return buf.getvalue()


def load_state(net: nn.Module, data: bytes) -> nn.Module:
    net.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    return net.eval()


def digits_input(images: np.ndarray) -> np.ndarray:

    if images.ndim != 3 or images.shape[1:] != (16, 16):
        raise DriftwatchError(f"digits recipe needs (N, 16, 16) grey images, got {images.shape}")
    return to_tensor(images).numpy()


DIGITS_DEFAULTS: dict[str, Any] = {
    "replay_ratio": 1.0,
    "val_fraction": 0.2,
    "epochs": 30,
    "patience": 4,
    "lr": 2e-3,
    "batch_size": 64,
}


def digits_finetune(inp: RecipeInput) -> RecipeOutput:
    """Fine-tune the digits CNN on production samples plus a replay sample of reference digits.

    Params: ``replay_ratio`` (reference images per production image), ``val_fraction``,
    ``epochs``, ``patience``, ``lr``, ``batch_size``. The reference is the digits training split
    (seed 0) the baseline learned from; its holdout split is the gate's reference holdout.
    """

    params = {**DIGITS_DEFAULTS, **inp.params}
    rng = np.random.default_rng(inp.seed)
    ref_train, ref_holdout = train_holdout(seed=0)
    n_replay = min(len(ref_train.labels), round(params["replay_ratio"] * len(inp.labels)))
    replay = rng.choice(len(ref_train.labels), n_replay, replace=False)
    images = np.concatenate([inp.images, ref_train.images[replay]])
    labels = np.concatenate([inp.labels, ref_train.labels[replay]]).astype(np.int64)
    order = rng.permutation(len(labels))
    n_val = max(1, int(len(order) * params["val_fraction"]))
    val, tr = order[:n_val], order[n_val:]
    net: nn.Module = DigitsNet()
    if inp.base_weights is not None:
        load_state(net, inp.base_weights)
    x = digits_input(images)
    net, fit = finetune(
        net,
        x[tr],
        labels[tr],
        x[val],
        labels[val],
        epochs=params["epochs"],
        patience=params["patience"],
        lr=params["lr"],
        batch_size=params["batch_size"],
        seed=inp.seed,
        progress=inp.progress,
    )
    return RecipeOutput(
        net=net,
        to_input=digits_input,
        reference_holdout=(ref_holdout.images, ref_holdout.labels),
        params={**params, "seed": inp.seed, "n_production": len(inp.labels), "n_replay": n_replay},
        history={
            "val_accuracy": fit.val_accuracy,
            "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early,
        },
    )


_BASELINES: dict[tuple[int, int], bytes] = {}


def train_baseline(epochs: int = 10, seed: int = 0) -> Any:
    """A baseline DigitsNet, trained on the clean digits training split (memoised)."""
    key = (epochs, seed)
    if key not in _BASELINES:
        train, _ = train_holdout(seed=0)
        _BASELINES[key] = state_bytes(
            train_classifier(train.images, train.labels, epochs=epochs, seed=seed)
        )
    return load_state(DigitsNet(), _BASELINES[key])
