"""scikit-learn's digits images as a small, real image-classification world.

Images are upsampled from 8x8 to 16x16 ``uint8`` (0-255). The shifts are the "camera changes"
the detectors and the benchmarks use: brightness/contrast, Gaussian noise, blur, rotation, and a
class made rare. All functions are pure and seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 16
N_CLASSES = 10


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 16, 16) uint8
    labels: np.ndarray  # (N,) int64


def load_digits_images() -> Split:
    """All 1,797 digits as 16x16 uint8 images with their labels."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    data = load_digits()
    raw = data.images.astype(np.float64) / 16.0  # (N, 8, 8) in [0, 1]
    big = zoom(raw, (1, SIZE / 8, SIZE / 8), order=1)
    images = np.clip(np.rint(big * 255), 0, 255).astype(np.uint8)
    return Split(images=images, labels=data.target.astype(np.int64))


def train_holdout(seed: int = 0, holdout: float = 0.4) -> tuple[Split, Split]:
    """A stratified-enough random split into (train, holdout)."""
    data = load_digits_images()
    order = np.random.default_rng(seed).permutation(len(data.labels))
    cut = int(len(order) * (1 - holdout))
    tr, ho = order[:cut], order[cut:]
    return Split(data.images[tr], data.labels[tr]), Split(data.images[ho], data.labels[ho])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out


def brightness_contrast(
    images: np.ndarray, brightness: float = 0.0, contrast: float = 1.0
) -> np.ndarray:
    """``contrast * (x - 128) + 128 + brightness*255`` per pixel."""
    x = images.astype(np.float64)
    return _to_uint8(contrast * (x - 128.0) + 128.0 + brightness * 255.0)


def gaussian_noise(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add N(0, sigma*255) noise."""
    rng = np.random.default_rng(seed)
    return _to_uint8(images.astype(np.float64) + rng.normal(0, sigma * 255.0, images.shape))


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each image (not across the batch)."""
    from scipy.ndimage import gaussian_filter

    return _to_uint8(gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma)))


def rotate(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate each image about its centre."""
    from scipy.ndimage import rotate as nd_rotate

    out = nd_rotate(images.astype(np.float64), degrees, axes=(1, 2), reshape=False, order=1)
    return _to_uint8(out)


def make_class_rare(labels: np.ndarray, cls: int, keep: float, seed: int = 0) -> np.ndarray:
    """Indices of a sample where class ``cls`` keeps only a fraction ``keep`` of its items."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(labels))
    is_cls = labels == cls
    kept = idx[is_cls][rng.random(int(is_cls.sum())) < keep]
    return np.sort(np.concatenate([idx[~is_cls], kept]))


SHIFTS = {
    "brightness": lambda x: brightness_contrast(x, brightness=0.25, contrast=0.7),
    "noise": lambda x: gaussian_noise(x, sigma=0.2),
    "blur": lambda x: blur(x, sigma=1.2),
    "rotation": lambda x: rotate(x, 25.0),
    # a camera change: blurred, then brighter
    "camera": lambda x: brightness_contrast(blur(x, 1.0), brightness=0.25),
}
