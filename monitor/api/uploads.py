"""How large an uploaded reference file becomes once decompressed, read from its own metadata
before anything is loaded: a small NPZ or Parquet file must not expand to gigabytes."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from monitor.api.deps import ApiError


def _npz_size(path: Path) -> int:
    """Sum of the arrays' sizes as their ``.npy`` headers declare them."""
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                total += info.file_size
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    reader = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = reader(member)
                    total += math.prod(shape) * dtype.itemsize
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ApiError(422, f"not a readable .npz file: {exc}") from exc
    return total


def _parquet_size(path: Path) -> int:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # heavy: Parquet only

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises its own error family for any bad file
        raise ApiError(422, f"not a readable Parquet file: {exc}") from exc
    return int(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)))


def check_expansion(path: Path, fmt: str, limit: int) -> None:
    """Refuse (413) a file that would take more than ``limit`` bytes once decompressed."""
    size = {"npz": _npz_size, "parquet": _parquet_size}.get(fmt, lambda p: p.stat().st_size)(path)
    if size > limit:
        raise ApiError(413, f"upload expands to {size} bytes, over the {limit}-byte limit")
