"""The small torch classifier the examples serve: 8x8 grey images -> 10 classes, with the
penultimate layer as the embedding (what the drift detectors compare)."""

from __future__ import annotations

import torch


class TinyClassifier(torch.nn.Module):
    """8x8 grey image (uint8 or [0, 1] float) -> (probabilities, 16-d embedding)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU()
        )
        self.head = torch.nn.Linear(16, 10)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        embedding = self.body(x)
        return torch.softmax(self.head(embedding), dim=1), embedding
