"""The small CNN for 16x16 digits, with a 64-d penultimate embedding, and its basic training loop.

Heavy imports (torch) happen here, never in ``monitor/``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

EMBEDDING_DIM = 64


class DigitsNet(nn.Module):
    """conv-pool-conv-pool-dense; ``forward`` gives logits, ``embed`` the 64-d embedding."""

    def __init__(self, n_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 4 * 4, EMBEDDING_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(EMBEDDING_DIM, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # type: ignore[no-any-return]


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W) images -> float (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1).to(device)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = 15,
    seed: int = 0,
    model: DigitsNet | None = None,
    lr: float = 3e-3,
    device: torch.device | str = "cpu",
) -> DigitsNet:
    """Train (or fine-tune ``model``) with Adam and cross-entropy; deterministic for a seed."""
    torch.manual_seed(seed)
    net = (model or DigitsNet()).to(device)
    x, y = to_tensor(images, device), torch.from_numpy(labels.astype(np.int64)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=gen).split(64):  # type: ignore[no-untyped-call]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    net.eval()
    return net


@torch.no_grad()
def predict(
    net: DigitsNet, images: np.ndarray, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, C), embeddings (N, 64)) as float32 numpy arrays."""
    net.eval()
    x = to_tensor(images, device)
    emb = net.embed(x)
    probs = torch.softmax(net.head(emb), dim=1)
    return probs.cpu().numpy(), emb.cpu().numpy()
