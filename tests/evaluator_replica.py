"""One evaluator replica as its own process, for tests/test_evaluator_shards.py.

Usage: ``python tests/evaluator_replica.py DB_URL HOOK_URL OUT_FILE``. Ticks until killed and
appends one JSON line per model it evaluated (pid, time, model, window ids). Each model is held a
little longer than its work takes (``HOLD_SECONDS``), so a kill lands while a lock is held.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime

from monitor.scheduler import Evaluator, TickReport
from monitor.store.db import make_engine
from tests.test_scheduler import make_settings

HOLD_SECONDS = 0.2


class RecordingEvaluator(Evaluator):
    def __init__(self, out: str, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.out = out

    def _evaluate_model(self, model: str, wall: datetime, report: TickReport) -> None:
        before = len(report.window_ids)
        super()._evaluate_model(model, wall, report)
        windows = report.window_ids[before:]
        if windows:
            line = {"pid": os.getpid(), "at": time.time(), "model": model, "windows": windows}
            with open(self.out, "a") as f:
                f.write(json.dumps(line) + "\n")
            time.sleep(HOLD_SECONDS)


def main(db_url: str, hook: str, out: str) -> None:
    settings = make_settings(db_url, hook)
    engine = make_engine(settings.database)
    evaluator = RecordingEvaluator(out, engine, settings, batch_size=2, settle_seconds=0)
    while True:
        evaluator.tick()
        time.sleep(0.05)


if __name__ == "__main__":
    main(*sys.argv[1:4])
