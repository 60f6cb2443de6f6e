"""Expand dashboard queries the way Grafana does, so tests can run them on real Prometheus and
PostgreSQL.

Grafana interpolates template variables (and ``$__interval``) in the browser first, then the
SQL datasource expands its macros on the server. Multi-value variables become a regex
alternation ``(a|b)`` with regex characters escaped in PromQL, and a quoted list ``'a','b'`` in
SQL. Time macros of the PostgreSQL datasource:

- ``$__timeFilter(col)`` -> ``col BETWEEN '2026-11-22T10:00:00Z' AND '2026-11-22T16:00:00Z'``
- ``$__timeFrom()`` / ``$__timeTo()`` -> ``'2026-11-22T10:00:00Z'``
- ``$__timeGroup(col, 1m)`` -> ``floor(extract(epoch from col)/60)*60``
- ``$__timeGroupAlias(col, 1m)`` -> the same with ``AS "time"``

>>> expand_prom('x{model=~"$model"}[$__rate_interval]', {"model": ["a", "b"]}, 15)
'x{model=~"(a|b)"}[1m]'
>>> from datetime import UTC, datetime
>>> t0, t1 = datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 16, tzinfo=UTC)
>>> expand_sql("SELECT 1 WHERE $__timeFilter(ts) AND m IN ($model)", {"model": ["a"]}, t0, t1, 60)
"SELECT 1 WHERE ts BETWEEN '2026-11-22T10:00:00Z' AND '2026-11-22T16:00:00Z' AND m IN ('a')"
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from monitor.errors import DriftwatchError

Values = Mapping[str, Sequence[str]]

_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)\]\]")
_REGEX_CHARS = re.compile(r"([\\^$*+?.()|{}\[\]/])")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class ExpansionError(DriftwatchError):
    """A query names a variable or macro that cannot be expanded."""


def format_interval(seconds: float) -> str:
    """Grafana's interval text: ``90`` -> ``1m`` (rounded down to a whole unit), ``0.5`` -> ``1s``.

    >>> format_interval(90), format_interval(3600), format_interval(0.5)
    ('1m', '1h', '1s')
    """
    for unit, size in _UNITS:
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "1s"


def parse_interval(text: str) -> int:
    """Seconds in ``"5m"``, ``"30s"``, ``"1h"`` or a bare number of seconds."""
    text = text.strip().strip("'\"")
    sizes = dict(_UNITS)
    if text and text[-1] in sizes and text[:-1].isdigit():
        return int(text[:-1]) * sizes[text[-1]]
    if text.isdigit():
        return int(text)
    raise ExpansionError(f"cannot read interval {text!r}")


def variables_used(text: str) -> set[str]:
    """Template variables a query refers to (Grafana's own ``$__`` variables excluded)."""
    names = {next(g for g in m.groups() if g) for m in _VAR.finditer(text)}
    return {n for n in names if not n.startswith("__")}


def _substitute(text: str, values: Values, fmt: Any) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or m.group(4)
        if name.startswith("__"):
            return m.group(0)
        if name not in values:
            raise ExpansionError(f"variable ${name} has no value")
        return str(fmt(list(values[name])))

    return _VAR.sub(repl, text)


def _prom_value(items: list[str]) -> str:
    escaped = [_REGEX_CHARS.sub(r"\\\\\1", v) for v in items]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _sql_value(items: list[str]) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in items)


def rate_interval(interval_s: float, scrape_s: float) -> float:
    """Grafana's ``$__rate_interval``: max(interval + scrape, 4 x scrape)."""
    return max(interval_s + scrape_s, 4 * scrape_s)


def expand_prom(
    expr: str, values: Values, scrape_s: float, interval_s: float = 15, range_s: float = 3600
) -> str:
    """``expr`` with variables and ``$__interval``/``$__rate_interval``/``$__range`` expanded."""
    builtins = {
        "$__rate_interval": format_interval(rate_interval(interval_s, scrape_s)),
        "$__interval": format_interval(interval_s),
        "$__range": format_interval(range_s),
    }
    for key in sorted(builtins, key=len, reverse=True):
        expr = expr.replace(key, builtins[key])
    return _substitute(expr, values, _prom_value)


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _macro_args(sql: str, name: str) -> Iterator[tuple[str, list[str]]]:
    for m in re.finditer(rf"\$__{name}\(([^()]*)\)", sql):
        yield m.group(0), [a.strip() for a in m.group(1).split(",") if a.strip()]


def expand_sql(
    sql: str, values: Values, time_from: datetime, time_to: datetime, interval_s: float = 60
) -> str:
    """``sql`` as the Grafana PostgreSQL datasource would send it to the server."""
    sql = sql.replace("$__interval_ms", str(int(interval_s * 1000)))
    sql = sql.replace("$__interval", format_interval(interval_s))
    sql = _substitute(sql, values, _sql_value)
    start, end = f"'{_ts(time_from)}'", f"'{_ts(time_to)}'"
    for text, args in _macro_args(sql, "timeFilter"):
        sql = sql.replace(text, f"{args[0]} BETWEEN {start} AND {end}")
    for text, args in _macro_args(sql, "unixEpochFilter"):
        sql = sql.replace(
            text,
            f"{args[0]} >= {int(time_from.timestamp())} AND "
            f"{args[0]} <= {int(time_to.timestamp())}",
        )
    sql = sql.replace("$__timeFrom()", start).replace("$__timeTo()", end)
    for alias in ("timeGroupAlias", "timeGroup"):
        for text, args in _macro_args(sql, alias):
            if len(args) < 2:
                raise ExpansionError(f"{text} needs a column and an interval")
            step = parse_interval(args[1])
            group = f"floor(extract(epoch from {args[0]})/{step})*{step}"
            sql = sql.replace(text, group + (' AS "time"' if alias == "timeGroupAlias" else ""))
    if "$__" in sql:
        raise ExpansionError(f"unexpanded macro in: {sql}")
    return sql


def panel_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], Any]]:
    """Every (panel, target) pair of a dashboard, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner, target
