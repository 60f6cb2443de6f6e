"""Every table module, imported so ``Base.metadata`` is complete (Alembic and tests use this)."""

import monitor.store.alerting_tables
import monitor.store.impact_tables
import monitor.store.retrain_tables
import monitor.store.shapes
import monitor.store.streams  # noqa: F401
from monitor.store import tables  # noqa: F401
from monitor.store.base import Base

metadata = Base.metadata
