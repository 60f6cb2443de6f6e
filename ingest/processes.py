"""``driftwatch ingest --processes N``: N ingest workers in one consumer group, supervised.

Decoding, validation and writing run in N processes, so they no longer share one GIL; Kafka's
group protocol divides the partitions among them (run at least N partitions per topic). The
parent only supervises:

- a worker that dies (crash, OOM kill, SIGKILL) is logged with its exit code and restarted; its
  partitions move to the others at the rebalance and come back when it rejoins, from the last
  committed offsets, so nothing is lost and, with the idempotent writes, nothing is stored twice;
- more than ``max_restarts`` deaths within ``restart_window_s`` is a crash loop: every worker is
  stopped and :meth:`IngestPool.supervise` returns exit code 1, so the orchestrator sees it;
- SIGTERM/SIGINT (the stop event) is passed on as SIGTERM: each worker finishes its batch.

Each worker serves its own Prometheus metrics on ``metrics_port + i`` when a port is given.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.process import BaseProcess

from ingest.worker import IngestWorker
from monitor.settings import Settings

log = logging.getLogger(__name__)

#: exit code of :meth:`IngestPool.supervise` when workers crash-loop
CRASH_LOOP = 1


def _work(settings: Settings, metrics_port: int | None) -> None:
    """One worker process: consume until SIGTERM, then finish the batch in flight."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    IngestWorker(settings).run(stop)


class IngestPool:
    """N supervised ingest worker processes (spawned, so no state is shared)."""

    def __init__(
        self,
        settings: Settings,
        processes: int,
        *,
        metrics_port: int | None = None,
        max_restarts: int = 5,
        restart_window_s: float = 60.0,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.settings, self.n, self.metrics_port = settings, processes, metrics_port
        self.max_restarts, self.restart_window_s = max_restarts, restart_window_s
        self._ctx = mp.get_context("spawn")
        self.workers: list[BaseProcess | None] = [None] * processes
        self.deaths: deque[float] = deque()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w is not None and w.pid is not None]

    def _start(self, i: int) -> None:
        port = None if self.metrics_port is None else self.metrics_port + i
        worker = self._ctx.Process(
            target=_work, args=(self.settings, port), name=f"ingest-{i}", daemon=False
        )
        worker.start()
        self.workers[i] = worker
        log.info("ingest worker %d started (pid %s)", i, worker.pid)

    def start(self) -> None:
        for i in range(self.n):
            self._start(i)

    def supervise(self, stop: threading.Event, every: float = 0.5) -> int:
        """Restart dead workers until ``stop`` is set (exit code 0) or they crash-loop (1)."""
        code = 0
        while not stop.wait(every):
            dead = [i for i, w in enumerate(self.workers) if w is not None and not w.is_alive()]
            for i in dead:
                worker = self.workers[i]
                assert worker is not None
                log.error(
                    "ingest worker %d (pid %s) died: exit code %s", i, worker.pid, worker.exitcode
                )
                now = time.monotonic()
                self.deaths.append(now)
                while self.deaths and now - self.deaths[0] > self.restart_window_s:
                    self.deaths.popleft()
                if len(self.deaths) > self.max_restarts:
                    log.critical(
                        "%d ingest worker deaths within %g s: crash loop, stopping",
                        len(self.deaths),
                        self.restart_window_s,
                    )
                    code = CRASH_LOOP
                    break
                self._start(i)
            if code:
                break
        self.stop()
        return code

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker, wait for it to finish its batch, SIGKILL after ``timeout``."""
        alive = [w for w in self.workers if w is not None and w.is_alive()]
        for w in alive:
            if w.pid is not None:
                os.kill(w.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for w in alive:
            w.join(max(0.0, deadline - time.monotonic()))
            if w.is_alive():
                log.error("ingest worker %s did not stop in %g s: killing it", w.pid, timeout)
                w.kill()
                w.join()
