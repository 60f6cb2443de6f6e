"""Argo Rollouts' analysis semantics, replayed for tests (no Argo runs here).

- :func:`evaluate` is a subset of the ``expr`` language Argo's conditions are written in
  (github.com/expr-lang/expr): literals, ``result`` with member/index access, ``len()``,
  ``== != < <= > >=``, ``in``, ``! not && and || or`` and parentheses. As in expr, a member of
  a map that is absent is ``nil``; a member of anything that is not a map, ordering across
  types and a non-boolean operand of a logical operator are runtime errors.
- :func:`measure` is one measurement (Argo's ``EvaluateResult``): a condition error or a
  non-2xx/undecodable web response is ``Error``; with both conditions set, ``failureCondition``
  true is ``Failed``, else ``successCondition`` true is ``Successful``, else ``Inconclusive``.
- :func:`assess` is a metric's phase after its measurements (Argo's ``assessMetricStatus``):
  failed > failureLimit -> Failed; inconclusive > inconclusiveLimit -> Inconclusive;
  consecutive errors > consecutiveErrorLimit (default 4) -> Error; count (of measurements
  that are not Error) reached -> Successful; else Running.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\],.])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)


class ExprError(Exception):
    """A runtime or syntax error of the expression."""


def _tokens(src: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(src.rstrip()):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise ExprError(f"cannot parse {src[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        text = m.group(kind or "")
        if kind == "num":
            out.append(("lit", float(text) if "." in text else int(text)))
        elif kind == "str":
            out.append(("lit", json.loads('"' + text[1:-1].replace('"', '\\"') + '"')))
        elif kind == "name" and text in ("true", "false", "nil"):
            out.append(("lit", {"true": True, "false": False, "nil": None}[text]))
        elif kind == "name" and text in ("and", "or", "not", "in"):
            out.append(("op", {"and": "&&", "or": "||", "not": "!", "in": "in"}[text]))
        else:
            out.append(("op" if kind == "op" else "name", text))
    return out


class _Parser:
    def __init__(self, src: str, env: dict[str, Any]) -> None:
        self.toks, self.i, self.env = _tokens(src), 0, env

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, op: str | None = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None or (op is not None and tok != ("op", op)):
            raise ExprError(f"expected {op!r}, got {tok}")
        self.i += 1
        return tok

    def binary(self, ops: tuple[str, ...], sub: Any) -> Any:
        left = sub()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in ops:
            self.take()
            if tok[1] in ("&&", "||") and isinstance(left, bool):
                decided = left is (tok[1] == "||")  # expr short-circuits && and ||
                if decided:
                    self.skip(sub)
                    continue
            left = _apply(tok[1], left, sub())
        return left

    def skip(self, sub: Any) -> None:
        """Parse the right operand without evaluating it (errors in it do not count)."""
        env, self.env = self.env, _Lenient()
        try:
            sub()
        finally:
            self.env = env

    def or_(self) -> Any:
        return self.binary(("||",), self.and_)

    def and_(self) -> Any:
        return self.binary(("&&",), self.compare)

    def compare(self) -> Any:
        return self.binary(("==", "!=", "<", "<=", ">", ">=", "in"), self.unary)

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            value = self.unary()
            if isinstance(value, _Lenient):
                return False
            if not isinstance(value, bool):
                raise ExprError(f"invalid operation: ! {value!r}")
            return not value
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while (tok := self.peek()) in (("op", "."), ("op", "[")):
            self.take()
            if tok == ("op", "."):
                value = _member(value, self.take()[1])
            else:
                value = _member(value, self.or_())
                self.take("]")
        return value

    def primary(self) -> Any:
        kind, val = self.take()
        if kind == "lit":
            return val
        if (kind, val) == ("op", "("):
            inner = self.or_()
            self.take(")")
            return inner
        if (kind, val) == ("op", "["):
            items = []
            while self.peek() != ("op", "]"):
                items.append(self.or_())
                if self.peek() == ("op", ","):
                    self.take()
            self.take("]")
            return items
        if kind == "name" and val == "len":
            self.take("(")
            arg = self.or_()
            self.take(")")
            if not isinstance(arg, str | list | dict):
                raise ExprError(f"invalid argument for len (type {type(arg).__name__})")
            return len(arg)
        if kind == "name" and val in self.env:
            return self.env[val]
        raise ExprError(f"unknown name {val!r}")


class _Lenient(dict[str, Any]):
    """The environment of a skipped operand: every name is an empty map."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return _Lenient()


def _member(value: Any, key: Any) -> Any:
    if isinstance(value, _Lenient):
        return value
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool):
        if not -len(value) <= key < len(value):
            raise ExprError(f"index out of range: {key} (array length is {len(value)})")
        return value[key]
    raise ExprError(f"cannot fetch {key!r} from {type(value).__name__}")


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _apply(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, _Lenient) or isinstance(b, _Lenient):
        return False
    if op in ("&&", "||"):
        if not (isinstance(a, bool) and isinstance(b, bool)):
            raise ExprError(f"invalid operation: {a!r} {op} {b!r}")
        return (a and b) if op == "&&" else (a or b)
    if op in ("==", "!="):
        same = a == b if (_num(a) and _num(b)) or type(a) is type(b) else False
        return same if op == "==" else not same
    if op == "in":
        if isinstance(b, list):
            return any(_apply("==", a, x) for x in b)
        if isinstance(b, dict):
            return a in b
        raise ExprError(f"invalid operation: in {type(b).__name__}")
    if not ((_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise ExprError(f"invalid operation: {a!r} {op} {b!r}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(src: str, result: Any) -> Any:
    parser = _Parser(src, {"result": result})
    value = parser.or_()
    if parser.peek() is not None:
        raise ExprError(f"unexpected {parser.peek()} in {src!r}")
    return value


def measure(metric: dict[str, Any], status: int, body: bytes) -> str:
    """One ``web`` provider measurement of ``metric`` for an HTTP answer."""
    if not 200 <= status < 300:
        return "Error"
    try:
        result = json.loads(body)
    except ValueError:
        return "Error"
    try:
        ok = evaluate(metric["successCondition"], result)
        bad = evaluate(metric["failureCondition"], result)
    except ExprError:
        return "Error"
    if not (isinstance(ok, bool) and isinstance(bad, bool)):
        return "Error"
    return "Failed" if bad else "Successful" if ok else "Inconclusive"


def assess(metric: dict[str, Any], phases: list[str]) -> str:
    """The metric's phase after the measurements ``phases`` (oldest first)."""
    consecutive = 0
    for p in phases:
        consecutive = consecutive + 1 if p == "Error" else 0
    if phases.count("Failed") > int(metric.get("failureLimit", 0)):
        return "Failed"
    if phases.count("Inconclusive") > int(metric.get("inconclusiveLimit", 0)):
        return "Inconclusive"
    if consecutive > int(metric.get("consecutiveErrorLimit", 4)):
        return "Error"
    counted = len(phases) - phases.count("Error")  # Argo counts no Error in ``count``
    if "count" in metric and counted >= int(metric["count"]):
        return "Successful"
    return "Running"


def run(metric: dict[str, Any], answers: list[tuple[int, bytes]]) -> str:
    """The metric's phase once it stops (or after all ``answers``, one per interval)."""
    phases: list[str] = []
    for status, body in answers:
        phases.append(measure(metric, status, body))
        phase = assess(metric, phases)
        if phase != "Running":
            return phase
    return "Running"
