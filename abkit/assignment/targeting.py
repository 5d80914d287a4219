"""A small, safe rule language for targeting on unit attributes (no ``eval``).

A rule is JSON/TOML data, compiled once into a predicate over the attribute mapping:

* condition: ``{"attr": NAME, OP: VALUE}`` with exactly one operator
  ``eq``, ``ne``, ``in``, ``not_in``, ``gt``, ``gte``, ``lt``, ``lte``, ``regex``,
  ``exists``, ``version_eq``, ``version_ne``, ``version_gt``, ``version_gte``,
  ``version_lt``, ``version_lte``;
* combinators: ``{"all": [RULE, ...]}``, ``{"any": [RULE, ...]}``, ``{"not": RULE}``.

A condition on a missing attribute (or one of the wrong type, e.g. ``gt`` on a string) is
false, so ``{"not": {"attr": "user_agent", "regex": "bot"}}`` keeps units without a user
agent. Numeric comparisons ignore booleans. ``regex`` has :func:`re.search` semantics
and a bounded cost (:mod:`abkit.assignment.patterns`: RE2 when installed, else Python's
``re`` on patterns proven unambiguous); it is compiled when the experiment is built, so a
bad or unsafe pattern fails at load time, not in the request path. Versions compare by SemVer 2.0 precedence with missing components equal to
zero (``1.2 == 1.2.0``; ``1.2.0-beta < 1.2.0``; a leading ``v`` and ``+build`` are ignored).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from abkit.errors import ConfigError

Predicate = Callable[[Mapping[str, Any]], bool]

_SCALAR = (str, int, float, bool)
_MISSING = object()

_NUMERIC_OPS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
_VERSION_OPS = {
    "version_eq": lambda a, b: a == b,
    "version_ne": lambda a, b: a != b,
    "version_gt": lambda a, b: a > b,
    "version_gte": lambda a, b: a >= b,
    "version_lt": lambda a, b: a < b,
    "version_lte": lambda a, b: a <= b,
}
OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    *_NUMERIC_OPS,
    "regex",
    "exists",
    *_VERSION_OPS,
)
_MAX_REGEX = 1000  # patterns are config, not user input; still refuse absurd ones
#: ``regex`` conditions are false on strings longer than this (spec §5).
MAX_REGEX_INPUT = 4096
#: Combinators (``all``/``any``/``not``) nest at most this deep: evaluating a rule recurses
#: once per level on the request path, far below Python's recursion limit.
MAX_RULE_DEPTH = 32


def parse_version(text: str) -> tuple | None:
    """Sort key of a version string by SemVer precedence, or None when not a version."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    if s[:1] in ("v", "V"):
        s = s[1:]
    s = s.split("+", 1)[0]
    core, _, pre = s.partition("-")
    parts = core.split(".")
    if not core or not all(p.isdigit() and p.isascii() for p in parts):
        return None
    nums = [int(p) for p in parts]
    while len(nums) > 1 and nums[-1] == 0:  # 1.2 == 1.2.0
        nums.pop()
    if not pre:
        if "-" in s:  # "1.0.0-": a pre-release mark with nothing after it is no version
            return None
        return (tuple(nums), 1, ())
    ids = []
    for ident in pre.split("."):
        if not ident:
            return None
        # SemVer: numeric identifiers sort numerically and before alphanumeric ones.
        ids.append((0, int(ident), "") if ident.isdigit() else (1, 0, ident))
    return (tuple(nums), 0, tuple(ids))


def _fail(path: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}", field="targeting")


def freeze(rule: Any) -> Any:
    """Deep-immutable copy of rule data (dicts -> mappingproxy, lists -> tuples)."""
    if isinstance(rule, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in rule.items()})
    if isinstance(rule, (list, tuple)):
        return tuple(freeze(v) for v in rule)
    return rule


def thaw(rule: Any) -> Any:
    """JSON-safe plain copy of frozen rule data."""
    if isinstance(rule, Mapping):
        return {k: thaw(v) for k, v in rule.items()}
    if isinstance(rule, tuple):
        return [thaw(v) for v in rule]
    return rule


def compile_rule(rule: Any, path: str = "targeting", depth: int = 0) -> Predicate:
    """Validate ``rule`` and return a predicate; errors name the rule's path."""
    if depth > MAX_RULE_DEPTH:
        raise _fail(path, f"rules nest more than {MAX_RULE_DEPTH} levels deep")
    if not isinstance(rule, Mapping):
        raise _fail(path, f"a rule must be a table/object, got {type(rule).__name__}")
    keys = set(rule)
    for combinator in ("all", "any"):
        if combinator in keys:
            if keys != {combinator}:
                raise _fail(path, f"'{combinator}' must be the only key, got {sorted(keys)}")
            items = rule[combinator]
            if not isinstance(items, (list, tuple)) or not items:
                raise _fail(path, f"'{combinator}' needs a non-empty list of rules")
            preds = tuple(
                compile_rule(r, f"{path}.{combinator}[{i}]", depth + 1) for i, r in enumerate(items)
            )
            if combinator == "all":
                return lambda attrs: all(p(attrs) for p in preds)
            return lambda attrs: any(p(attrs) for p in preds)
    if "not" in keys:
        if keys != {"not"}:
            raise _fail(path, f"'not' must be the only key, got {sorted(keys)}")
        inner = compile_rule(rule["not"], f"{path}.not", depth + 1)
        return lambda attrs: not inner(attrs)
    if "attr" not in keys:
        raise _fail(path, "expected 'all', 'any', 'not' or a condition with 'attr'")
    name = rule["attr"]
    if not isinstance(name, str) or not name:
        raise _fail(path, "'attr' must be a non-empty string")
    ops = keys - {"attr"}
    if len(ops) != 1:
        raise _fail(
            path,
            f"a condition needs exactly one operator, got {sorted(ops) or 'none'} "
            f"(operators: {', '.join(OPERATORS)})",
        )
    (op,) = ops
    value = rule[op]
    where = f"{path}.{op}"
    get = _getter(name)
    if op in ("eq", "ne"):
        if not isinstance(value, _SCALAR):
            raise _fail(where, "needs a string, number or boolean")
        if op == "eq":
            return lambda attrs: _same(get(attrs), value)
        return lambda attrs: (v := get(attrs)) is not _MISSING and not _same(v, value)
    if op in ("in", "not_in"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, _SCALAR) for v in value):
            raise _fail(where, "needs a list of strings, numbers or booleans")
        # Keep type-strict membership: True must not match 1 (Python's 1 == True).
        members = frozenset((type(v) is bool, v) for v in value)
        if op == "in":
            return lambda attrs: _member(get(attrs), members)
        return lambda attrs: (v := get(attrs)) is not _MISSING and not _member(v, members)
    if op in _NUMERIC_OPS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, "needs a number")
        cmp = _NUMERIC_OPS[op]
        return lambda attrs: _is_number(v := get(attrs)) and cmp(v, value)
    if op in _VERSION_OPS:
        target = parse_version(value)
        if target is None:
            raise _fail(where, f"{value!r} is not a version like '2.3.1' or '2.4.0-beta.1'")
        vcmp = _VERSION_OPS[op]
        return lambda attrs: (v := parse_version(get(attrs))) is not None and vcmp(v, target)
    if op == "regex":
        if not isinstance(value, str) or len(value) > _MAX_REGEX:
            raise _fail(where, f"needs a pattern string of at most {_MAX_REGEX} characters")
        # only experiments with regex rules pay for importing re (and re2)
        from abkit.assignment.patterns import PatternError, compile_search

        try:
            search, _engine = compile_search(value)
        except PatternError as exc:
            raise _fail(where, str(exc)) from None
        limit = MAX_REGEX_INPUT
        # Values come from clients: the cap keeps regex answers the same on every engine
        # and, with the linearity proof of the stdlib fallback, bounds the time (spec §5).
        return lambda attrs: isinstance(v := get(attrs), str) and len(v) <= limit and search(v)
    if op == "exists":
        if not isinstance(value, bool):
            raise _fail(where, "needs true or false")
        return lambda attrs: (get(attrs) is not _MISSING) is value
    raise _fail(path, f"unknown operator {op!r} (operators: {', '.join(OPERATORS)})")


def _getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    def get(attrs: Mapping[str, Any]) -> Any:
        v = attrs.get(name, _MISSING)
        return _MISSING if v is None else v

    return get


def _same(a: Any, b: Any) -> bool:
    return a is not _MISSING and (type(a) is bool) == (type(b) is bool) and a == b


def _member(v: Any, members: frozenset) -> bool:
    if v is _MISSING:
        return False
    try:
        return (type(v) is bool, v) in members
    except TypeError:  # unhashable attribute value
        return False


def _is_number(v: Any) -> bool:
    """A real number compared by value: int, float and their numpy kinds (a DataFrame's
    cell is a numpy.int64); never a bool."""
    if isinstance(v, bool) or type(v).__name__ in ("bool", "bool_"):
        return False
    return isinstance(v, numbers.Real)
