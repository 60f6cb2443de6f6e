"""Every table module, imported so ``Base.metadata`` is complete (Alembic and tests use this)."""

from monitor.store import tables  # noqa: F401
from monitor.store.base import Base

metadata = Base.metadata
