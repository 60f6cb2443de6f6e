"""PostgreSQL advisory locks: one key per lock id, or a two-key (namespace, model) form.

The two-key form hashes the model name (``hashtext``); a collision only serializes two models.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def _key(lock_id: int, model: str | None) -> tuple[str, dict[str, object]]:
    if model is None:
        return ":k", {"k": lock_id}
    return "CAST(:ns AS integer), hashtext(:m)", {"ns": lock_id % 2**31, "m": model}


def try_advisory_lock(conn: Connection, lock_id: int, model: str | None = None) -> bool:
    """Take the session-level lock ``lock_id`` (of ``model``) if free; whether it was taken."""
    key, args = _key(lock_id, model)
    return bool(conn.execute(text(f"SELECT pg_try_advisory_lock({key})"), args).scalar())


def advisory_unlock(conn: Connection, lock_id: int, model: str | None = None) -> None:
    """Release the lock :func:`try_advisory_lock` took on ``conn``."""
    key, args = _key(lock_id, model)
    conn.execute(text(f"SELECT pg_advisory_unlock({key})"), args)
