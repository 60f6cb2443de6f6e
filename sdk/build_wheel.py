"""Build the ``driftwatch-sdk`` wheel into ``DIST_DIR`` (default ``dist/``) from this checkout.

setuptools builds only what lies under its project directory, so the package and
``sdk/pyproject.toml`` are copied into a temporary directory first. No network: the running
interpreter's setuptools is the backend (``--no-build-isolation``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(dist: Path) -> Path:
    """The path of the wheel built into ``dist``."""
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        shutil.copy(ROOT / "sdk" / "pyproject.toml", stage / "pyproject.toml")
        shutil.copytree(
            ROOT / "driftwatch_sdk",
            stage / "driftwatch_sdk",
            ignore=shutil.ignore_patterns("__pycache__", "ruff.toml"),
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(dist),
                str(stage),
            ],
            check=True,
        )
    return max(dist.glob("driftwatch_sdk-*.whl"), key=lambda p: p.stat().st_mtime)


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
