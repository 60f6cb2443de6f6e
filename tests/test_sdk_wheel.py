"""The SDK's own wheel, installed alone in a fresh virtual environment of every Python from 3.9
to 3.13 found under pyenv: it imports, declares no server dependency, loads no server module,
and logs into the real broker from a directory outside the checkout.

Speed: the wheel is built once per session; each Python's venv (with numpy, kafka-python and
Pillow from the package index) is cached under ``.pytest_cache/sdk-venvs`` keyed by the
declared dependencies, and the fresh wheel is reinstalled into it (``--no-deps``) every run.
The first run creates the venvs (about 35 s each here); later runs take seconds per Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.schemas import Limits, PredictionLog, parse_message
from monitor.settings import KafkaSettings
from tests.test_ingest_worker import read_topic

ROOT = Path(__file__).resolve().parent.parent
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
WANTED = ("3.9", "3.10", "3.11", "3.12", "3.13")
SERVER_PACKAGES = {"pydantic", "pydantic-settings", "sqlalchemy", "fastapi", "alembic", "msgspec"}


def _pythons() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for version in sorted(PYENV.iterdir()) if PYENV.is_dir() else []:
        minor = ".".join(version.name.split(".")[:2])
        exe = version / "bin" / "python3"
        if minor in WANTED and exe.exists() and re.fullmatch(r"[\d.]+", version.name):
            found[minor] = exe
    return found


PYTHONS = _pythons()

# What runs inside each venv: import, metadata, no server module, then log to the broker.
PROBE = r"""
import json, sys
from importlib.metadata import requires
import numpy as np
import driftwatch_sdk
from driftwatch_sdk import PredictionLogger
servers, topic, tag = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
with PredictionLogger("digits", "v1", bootstrap_servers=servers, predictions_topic=topic,
                      tags={"python": tag}, arm="canary") as logger:
    rng = np.random.default_rng(0)
    ids = logger.log_batch(rng.dirichlet(np.ones(4), size=3),
                           images=rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8))
print(json.dumps({
    "file": driftwatch_sdk.__file__, "requires": requires("driftwatch-sdk"), "ids": ids,
    "sent": logger.sent, "failed": logger.failed,
    "server_modules": sorted(m for m in ("pydantic", "sqlalchemy", "monitor", "ingest", "msgspec")
                             if m in sys.modules),
}))
"""


@pytest.fixture(scope="session")
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT / "sdk"))
    try:
        from build_wheel import build
    finally:
        sys.path.pop(0)
    return build(tmp_path_factory.mktemp("sdk-dist"))


def _venv(python: Path, minor: str, wheel: Path) -> Path:
    """A cached venv of ``python`` with the SDK's dependencies and this run's wheel."""
    pyproject = (ROOT / "sdk" / "pyproject.toml").read_bytes()
    key = hashlib.sha256(pyproject + str(python).encode()).hexdigest()[:12]
    venv = ROOT / ".pytest_cache" / "sdk-venvs" / f"{minor}-{key}"
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    if not (venv / ".deps-installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([*pip, str(wheel)], check=True, timeout=600)
        (venv / ".deps-installed").touch()
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True, timeout=120)
    return venv


def test_every_python_from_39_to_313_is_here() -> None:
    assert {"3.9", "3.13"} <= set(PYTHONS), f"pyenv has {sorted(PYTHONS)}"


@pytest.mark.parametrize("minor", sorted(PYTHONS, key=lambda v: tuple(map(int, v.split(".")))))
def test_the_wheel_installs_alone_and_logs_to_the_broker(
    minor: str,
    sdk_wheel: Path,
    make_topics: Callable[..., KafkaSettings],
    tmp_path: Path,
) -> None:
    venv = _venv(PYTHONS[minor], minor, sdk_wheel)
    kafka = make_topics()
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            PROBE,
            ",".join(kafka.bootstrap_servers),
            kafka.predictions_topic,
            minor,
        ],
        cwd=tmp_path,  # outside the checkout: only the installed wheel can be imported
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(venv)), out["file"]
    names = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in out["requires"]}
    assert names == {"numpy", "kafka-python", "pillow"}
    assert not names & SERVER_PACKAGES
    assert out["server_modules"] == []
    assert (out["sent"], out["failed"]) == (3, 0)
    records = read_topic(kafka, kafka.predictions_topic, 3)
    logs = [parse_message(r.value, PredictionLog, Limits(), 100_000) for r in records]
    assert [log.request_id for log in logs] == out["ids"]
    assert {(log.arm, (log.tags or {}).get("python")) for log in logs} == {("canary", minor)}
    assert all(log.pixel_stats and log.pixel_stats["width"] == 8.0 for log in logs)
