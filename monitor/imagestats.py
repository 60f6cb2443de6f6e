"""Pixel statistics (defined in :mod:`driftwatch_sdk.imagestats`, shared with the SDK) and the
ingest worker's thumbnail decoding."""

from __future__ import annotations

import io

import numpy as np

from driftwatch_sdk.imagestats import STAT_NAMES, batch_stats, encode_png, image_stats
from monitor.errors import InvalidMessage

__all__ = ["STAT_NAMES", "batch_stats", "decode_image", "encode_png", "image_stats"]


def decode_image(data: bytes, max_pixels: int = 4_000_000) -> np.ndarray:
    """Decode PNG/JPEG bytes into a uint8 array, or raise ``InvalidMessage('bad_image', ...)``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise InvalidMessage("bad_image", f"image is {img.width}x{img.height}, too large")
            img.load()
            mode = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            return np.asarray(img.convert(mode), dtype=np.uint8)
    except InvalidMessage:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidMessage("bad_image", f"thumbnail cannot be decoded: {exc}") from exc
