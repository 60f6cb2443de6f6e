"""Fine-tuning loop: class-balanced sampling, early stopping on a validation split, seeds, tqdm."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FitHistory:
    """Validation accuracy per epoch and the epoch whose weights were kept."""

    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False

    @property
    def best_accuracy(self) -> float:
        return self.val_accuracy[self.best_epoch] if self.val_accuracy else float("nan")


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights so that every class is drawn equally often.

    >>> balanced_weights(np.array([0, 0, 0, 1])).round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    """
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()  # type: ignore[no-any-return]


@torch.no_grad()
def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float((net(x).argmax(1) == y).float().mean())


def finetune(
    net: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int = 30,
    patience: int = 4,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> tuple[nn.Module, FitHistory]:
    """Fine-tune ``net`` on (N, C, H, W) float inputs; keep the best validation epoch.

    Each epoch draws ``len(y_train)`` samples with replacement, weighted so classes are balanced;
    training stops after ``patience`` epochs without a better validation accuracy.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.int64))
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val.astype(np.int64))
    weights = torch.from_numpy(balanced_weights(y_train))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best_state, best, since_best = copy.deepcopy(net.state_dict()), _accuracy(net, xv, yv), 0
    scores: list[float] = []
    best_epoch, stopped = -1, False
    bar = tqdm(range(epochs), desc="fine-tune", disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        order = torch.multinomial(weights, len(yt), replacement=True, generator=gen)
        for idx in order.split(batch_size):  # type: ignore[no-untyped-call]  # torch stub
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()  # type: ignore[no-untyped-call]  # torch stub
            opt.step()
        score = _accuracy(net, xv, yv)
        scores.append(score)
        bar.set_postfix(val_acc=f"{score:.3f}")
        if score > best:
            best, best_epoch, since_best = score, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            since_best += 1
            if since_best >= patience:
                stopped = True
                break
    net.load_state_dict(best_state)
    net.eval()
    return net, FitHistory(val_accuracy=scores, best_epoch=best_epoch, stopped_early=stopped)
