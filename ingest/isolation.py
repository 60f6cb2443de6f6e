"""Per-record isolation of a failed write: outages are retried, bad data is cut out.

A write fails either because the store is out (connection refused or dropped, SQLite
``database is locked``, a pool timeout: retry the same write later) or because of the data
(a NUL byte PostgreSQL refuses, an integer or date out of range, an integrity conflict, a
driver's ``ValueError``/``OverflowError`` while binding: retrying it can never succeed).
:func:`bisect_write` keeps the second kind to the records that cause it.

>>> def write(items):
...     if 3 in items:
...         raise ValueError("three")
...     return len(items)
>>> done, failed = bisect_write(write, [1, 2, 3, 4, 5])
>>> sorted(done), [(item, str(exc)) for item, exc in failed]
([2, 2], [(3, 'three')])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import exc as sa

from monitor.errors import BrokerUnavailable, StoreUnavailable

T = TypeVar("T")
C = TypeVar("C")

#: SQLAlchemy's wrappers of the DBAPI errors that mean "the database is out", not "bad data".
_OUTAGES: tuple[type[BaseException], ...] = (
    sa.OperationalError,  # connection lost/refused, server shutdown, SQLite "database is locked"
    sa.InterfaceError,
    sa.DisconnectionError,
    sa.TimeoutError,  # connection pool exhausted
    sa.ResourceClosedError,
    StoreUnavailable,
    BrokerUnavailable,
    ConnectionError,
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the store is unavailable (retry) rather than the data is bad.

    >>> is_outage(sa.OperationalError("INSERT", {}, Exception("database is locked")))
    True
    >>> is_outage(sa.DataError("INSERT", {}, Exception("cannot contain NUL (0x00) bytes")))
    False
    >>> is_outage(OverflowError("date value out of range"))
    False
    """
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _OUTAGES)


def describe(exc: BaseException) -> str:
    """A one-line description of ``exc`` for a dead letter (the driver's first line)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def bisect_write(
    write: Callable[[Sequence[T]], C],
    items: Sequence[T],
    *,
    fails: Callable[[BaseException], bool] = lambda exc: not is_outage(exc),
) -> tuple[list[C], list[tuple[T, BaseException]]]:
    """Write ``items`` with ``write`` in one call, or, when it fails for an error that
    ``fails`` blames on the data, write each half in turn, down to single records.

    Returns the results of the successful calls and each record whose own write failed, with
    its error; any other error (an outage) propagates, leaving what was written written (the
    caller replays idempotently). ``k`` bad records among ``n`` cost ``O(k log n)`` writes.
    """
    try:
        return [write(items)], []
    except Exception as exc:
        if not fails(exc):
            raise
        if len(items) <= 1:
            return [], [(item, exc) for item in items]
    mid = len(items) // 2
    done_a, failed_a = bisect_write(write, items[:mid], fails=fails)
    done_b, failed_b = bisect_write(write, items[mid:], fails=fails)
    return done_a + done_b, failed_a + failed_b
