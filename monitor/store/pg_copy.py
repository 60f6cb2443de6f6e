"""PostgreSQL's fast lane for ingest writes: ``COPY`` into a staging table, then one
idempotent ``INSERT .. SELECT .. ON CONFLICT DO NOTHING`` from it.

``executemany`` sends one parameter set per row; ``COPY`` streams the batch in one command,
which leaves the database more of the shared cores. The staging table is a temporary table of
the connection (created once, emptied at every commit), so concurrent writers never see each
other's rows, and a failed batch leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

STAGING = "predictions_staging"


def copy_insert(conn: Connection, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert ``rows`` (values in ``columns`` order; the last column is ``label``) into
    ``predictions`` once each, taking a label stored earlier when the row has none.

    Returns the number of rows inserted (replayed ones are skipped by the unique key).
    """
    names = ", ".join(columns)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ON COMMIT DELETE ROWS AS "
        f"SELECT 0::bigint AS ord, {names} FROM predictions WITH NO DATA"
    )
    copy_sql = f"COPY {STAGING} (ord, {names}) FROM STDIN"
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cur, cur.copy(copy_sql) as copy:
            for i, row in enumerate(rows):
                copy.write_row((i, *row))
    except psycopg.Error as exc:  # as SQLAlchemy words it, so ingest tells outages from data
        raise DBAPIError.instance(copy_sql, None, exc, psycopg.Error) from exc
    picked = ", ".join(f"s.{c}" for c in columns[:-1])
    # ORDER BY ord: ids follow the batch order, which windows are cut by
    result = conn.exec_driver_sql(
        f"INSERT INTO predictions ({names}) "
        f"SELECT {picked}, COALESCE(s.label, l.label) FROM {STAGING} s "
        "LEFT JOIN labels l ON l.model = s.model AND l.request_id = s.request_id "
        "ORDER BY s.ord ON CONFLICT (model, request_id) DO NOTHING"
    )
    inserted = max(int(result.rowcount), 0)
    conn.exec_driver_sql(f"TRUNCATE {STAGING}")  # a later batch in this transaction starts empty
    return inserted
