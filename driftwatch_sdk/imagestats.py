"""Per-image pixel statistics, computed the same way by the SDK and the ingest worker.

Images are ``uint8`` arrays shaped ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB); batches add a
leading axis. Everything is vectorised over the batch.

>>> import numpy as np
>>> img = np.full((4, 4), 128, dtype=np.uint8)
>>> s = image_stats(img)
>>> round(s["brightness"], 3), s["contrast"], s["width"]
(0.502, 0.0, 4.0)
"""

from __future__ import annotations

import io

import numpy as np

#: The statistics, in a fixed order (the pixel detector's columns).
STAT_NAMES: tuple[str, ...] = (
    "brightness",
    "contrast",
    "mean_r",
    "mean_g",
    "mean_b",
    "saturation",
    "sharpness",
    "entropy",
    "clipped_black",
    "clipped_white",
    "width",
    "height",
    "aspect",
)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def batch_stats(images: np.ndarray) -> np.ndarray:
    """Statistics of a batch of equally sized images, shape ``(N, len(STAT_NAMES))``.

    ``images`` is ``(N, H, W)`` or ``(N, H, W, 3)``, uint8 (0-255) or float in [0, 1].
    """
    arr = np.asarray(images)
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3)):
        raise ValueError(f"expected (N, H, W) or (N, H, W, 3) images, got shape {arr.shape}")
    x = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    n, h, w = x.shape[:3]
    if x.ndim == 4:
        rgb = x
        grey = rgb @ _LUMA
        cmax, cmin = rgb.max(axis=-1), rgb.min(axis=-1)
        sat = np.where(cmax > 0, (cmax - cmin) / np.where(cmax > 0, cmax, 1.0), 0.0)
        channel_means = rgb.mean(axis=(1, 2))
        saturation = sat.mean(axis=(1, 2))
    else:
        grey = x
        channel_means = np.repeat(grey.mean(axis=(1, 2))[:, None], 3, axis=1)
        saturation = np.zeros(n)
    flat = grey.reshape(n, -1)
    if h >= 3 and w >= 3:
        lap = (
            4 * grey[:, 1:-1, 1:-1]
            - grey[:, :-2, 1:-1]
            - grey[:, 2:, 1:-1]
            - grey[:, 1:-1, :-2]
            - grey[:, 1:-1, 2:]
        )
        sharpness = lap.reshape(n, -1).var(axis=1)
    else:
        sharpness = np.zeros(n)
    levels = np.clip(np.rint(flat * 255), 0, 255).astype(np.int64)
    counts = np.bincount((levels + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n)
    p = counts.reshape(n, 256) / flat.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    out = np.empty((n, len(STAT_NAMES)), dtype=np.float64)
    out[:, 0] = flat.mean(axis=1)
    out[:, 1] = flat.std(axis=1)
    out[:, 2:5] = channel_means
    out[:, 5] = saturation
    out[:, 6] = sharpness
    out[:, 7] = entropy
    out[:, 8] = (flat <= 2 / 255).mean(axis=1)
    out[:, 9] = (flat >= 253 / 255).mean(axis=1)
    out[:, 10] = w
    out[:, 11] = h
    out[:, 12] = w / h
    return out


def image_stats(image: np.ndarray) -> dict[str, float]:
    """Statistics of one image as a name -> value mapping."""
    row = batch_stats(np.asarray(image)[None])[0]
    return {name: float(v) for name, v in zip(STAT_NAMES, row)}


def encode_png(image: np.ndarray) -> bytes:
    """Encode a uint8 image array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
