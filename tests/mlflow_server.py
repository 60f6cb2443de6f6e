"""A real MLflow tracking server for the tests: ``mlflow server`` from its own virtualenv.

``tests/services.sh`` installs the pinned ``mlflow`` into ``$MLFLOW_VENV`` (default
``/tmp/mlflow-venv``), apart from Driftwatch's environment, whose pins it would fight. The server
keeps its runs and registry in SQLite and proxies artifacts (``--artifacts-destination``), as a
shared deployment does, so clients upload over HTTP and need no access to its disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import TracebackType

import httpx

from ingest.broker import free_port
from tests.conftest import poll_until

MLFLOW_VENV = Path(os.environ.get("MLFLOW_VENV", "/tmp/mlflow-venv"))


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class MlflowServer:
    """``mlflow server`` on a free local port, its state under ``folder``; a context manager."""

    def __init__(self, folder: Path, startup_s: float = 180.0) -> None:
        self.folder = folder
        self.startup_s = startup_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MlflowServer:
        binary = MLFLOW_VENV / "bin" / "mlflow"
        if not binary.is_file():
            raise RuntimeError(f"{binary} is missing: run tests/services.sh to install MLflow")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(binary),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its uvicorn worker goes with it on stop
        )
        poll_until(self._up, self.startup_s, f"mlflow server on {self.url}", every=0.5)
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = (self.folder / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{tail}")
        return _answers(self.url)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
