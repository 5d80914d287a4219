r"""Regular expressions of targeting rules, with a bounded matching cost (spec §5).

Patterns are written by operators, but the text they are matched against (a user agent)
comes from clients, so a pattern must not let a client choose the running time. Python's
``re`` backtracks: ``^(\d|\d\d)+$`` on ``"1" * 64 + "x"`` explores about 2^43 ways to
split the digits. :func:`compile_search` therefore runs a pattern in one of two ways:

1. **RE2 when installed** (``pip install 'abkit[re2]'``: the ``google-re2`` binary wheel,
   an optional dependency because the assignment core needs only mmh3). RE2 simulates the
   automaton instead of backtracking: a search costs O(n · m) for an input of n
   characters and a pattern of size m, whatever the pattern (``^(\d|\d\d)+$`` on 4,097
   characters: under a millisecond). RE2's classes are ASCII (``\d`` is ``[0-9]``) and
   its ``$`` does not match before a final newline, where Python's ``re`` differs.

2. **Otherwise Python's ``re``, only on patterns proven unambiguous.** The pattern (as
   ``re`` itself parsed it) becomes its position automaton (Glushkov), keeping *how many*
   ε-routes join two positions, so that ``(a+)+`` (two routes from ``a`` back to ``a``)
   differs from ``a+``. A backtracking matcher started at one offset explores at most
   every path of that automaton on every prefix of the input; Weber & Seidl (1991, "On
   the degree of ambiguity of finite automata") show that this number is bounded by a
   constant exactly when the automaton has neither

   * **EDA**: a position with two distinct cycles on the same word (exponential
     ambiguity: ``(a|aa)+``, ``(\d|\d\d)+``, ``(a+)+``, ``(\w+\s?)+``), nor
   * **IDA**: two distinct positions ``p != q`` with ``p -w-> p``, ``p -w-> q`` and
     ``q -w-> q`` (polynomial ambiguity: ``.*a.*b``, ``\d+\d+``, ``(.*a){3}``).

   Both are decided on product automata (pairs for EDA, triples for IDA) over character
   sets that over-approximate each position, so the check can only err towards refusing
   (``\w+\s\w+`` is refused: non-ASCII characters are assumed to be in every class).
   Repeats whose body can match the empty string (``(a*)*``, ``(a?)+``) and automata of
   more than :data:`MAX_POSITIONS` positions are refused without analysis. An accepted
   pattern costs O(n) per starting offset, so ``re.search`` costs O(n²), and the spec's
   cap of n at :data:`abkit.assignment.targeting.MAX_REGEX_INPUT` (4,096) characters bounds it: the worst accepted cases
   measured take about a second (``(a|b)*c`` on ``"ab" * 2048``); install RE2 for
   microseconds. A pattern that is not proven is refused when the experiment is built,
   with the reason and this advice.

Whatever the engine, the pattern language is the subset shared with RE2, Java and
JavaScript: backreferences, look-around, conditionals, atomic groups and possessive
repeats are refused, so a registry means the same thing everywhere it loads.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any, cast

if sys.version_info >= (3, 11):
    from re import _constants as _c
    from re import _parser as _sre_parse
else:  # pragma: no cover - Python 3.10 keeps the parser under its old names
    import sre_constants as _c
    import sre_parse as _sre_parse

#: Positions (character matchers after expanding counted repeats) the proof will analyse.
MAX_POSITIONS = 200
#: Product-automaton states the proof may visit before giving up (and refusing).
MAX_WORK = 100_000

Search = Callable[[str], bool]

_ALL = ((0, 0x10FFFF),)
_NON_ASCII = ((0x80, 0x10FFFF),)
_DIGITS = ((0x30, 0x39),)
_WORD = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_SPACE = ((0x09, 0x0D), (0x1C, 0x20))
_NEWLINE = ((0x0A, 0x0A),)
_LETTERS = ((0x41, 0x5A), (0x61, 0x7A))

_UNSUPPORTED = {
    "GROUPREF": "a backreference",
    "GROUPREF_EXISTS": "a conditional group",
    "ASSERT": "a look-ahead or look-behind",
    "ASSERT_NOT": "a negative look-ahead or look-behind",
    "ATOMIC_GROUP": "an atomic group",
    "POSSESSIVE_REPEAT": "a possessive repeat",
}


class PatternError(ValueError):
    """Why a pattern is refused (the caller turns it into a located ConfigError)."""


def compile_search(pattern: str) -> tuple[Search, str]:
    """A ``search(text) -> bool`` of bounded cost for ``pattern``, and the engine name
    (``"re"`` or ``"re2"``); raises :class:`PatternError` with the reason otherwise."""
    try:
        with warnings.catch_warnings():
            # "possible nested set" and friends: syntax that another engine reads otherwise
            warnings.simplefilter("error")
            compiled = re.compile(pattern)
            tree = _sre_parse.parse(pattern)
    except (re.error, FutureWarning, DeprecationWarning, RecursionError) as exc:
        raise PatternError(f"invalid regular expression {pattern!r}: {exc}") from None
    unsupported = _unsupported(tree.data)
    if unsupported:
        raise PatternError(
            f"regular expression {pattern!r} uses {unsupported}, which is outside the "
            "portable subset (RE2/Java/JavaScript) that targeting accepts"
        )
    re2_search, re2_problem = _re2_search(pattern)
    if re2_search is not None:
        return re2_search, "re2"
    risk = ambiguity(pattern)
    if risk is None:
        search = compiled.search
        return (lambda text: search(text) is not None), "re"
    advice = (
        f"RE2 cannot run it ({re2_problem}); rewrite it in RE2's syntax"
        if re2_problem
        else "install the linear-time engine (pip install 'abkit[re2]')"
    )
    raise PatternError(
        f"regular expression {pattern!r} may take time exponential or polynomial in the "
        f"length of a client-supplied value with Python's backtracking engine ({risk}); "
        f"{advice}, or rewrite it so that each character can be matched in only one way, "
        "e.g. '(a|aa)+' -> 'a+', '.*bot.*' -> 'bot'"
    )


def _re2_search(pattern: str) -> tuple[Search | None, str | None]:
    """RE2's search for ``pattern``, or (None, why RE2 refused it; None if not installed)."""
    try:
        import re2  # google-re2: optional, linear-time
    except ImportError:
        return None, None
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported by us, not on stderr
    try:
        compiled = re2.compile(pattern, options)
    except Exception as exc:  # re2.error: syntax RE2 lacks (e.g. \Z, \u)
        return None, str(exc).strip("b'\"")
    search = compiled.search
    return (lambda text: search(text) is not None), None


def _unsupported(items: Iterable) -> str | None:
    for op, av in items:
        name = str(op)
        if name in _UNSUPPORTED:
            return _UNSUPPORTED[name]
        if op is _c.SUBPATTERN:
            found = _unsupported(av[-1])
        elif op is _c.BRANCH:
            found = next((r for b in av[1] if (r := _unsupported(b))), None)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            found = _unsupported(av[2])
        else:
            found = None
        if found:
            return found
    return None


# --- character sets as sorted, disjoint, inclusive code point intervals ----------------
Intervals = tuple[tuple[int, int], ...]


def _union(*sets: Iterable[tuple[int, int]]) -> Intervals:
    spans = sorted(s for group in sets for s in group)
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(spans: Intervals) -> Intervals:
    out = []
    nxt = 0
    for lo, hi in spans:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= 0x10FFFF:
        out.append((nxt, 0x10FFFF))
    return tuple(out)


def _intersects(a: Intervals, b: Intervals) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def _case_closure(spans: Intervals) -> Intervals:
    """Over-approximation of what a set matches under IGNORECASE: ASCII letters swapped,
    and every non-ASCII character once a letter is involved (Unicode folds such as
    'k' ~ KELVIN SIGN)."""
    swapped = []
    for lo, hi in spans:
        for a, b, shift in ((0x41, 0x5A, 32), (0x61, 0x7A, -32)):
            s, e = max(lo, a), min(hi, b)
            if s <= e:
                swapped.append((s + shift, e + shift))
    if swapped or _intersects(spans, _NON_ASCII):
        return _union(spans, swapped, _NON_ASCII)
    return spans


def _category(code: object) -> tuple[Intervals, Intervals]:
    """(certainly matched, possibly matched) by a category in any mode (ASCII/Unicode)."""
    name = str(code).replace("UNI_", "").replace("LOC_", "")
    base = {
        "CATEGORY_DIGIT": _DIGITS,
        "CATEGORY_WORD": _WORD,
        "CATEGORY_SPACE": _SPACE,
        "CATEGORY_LINEBREAK": _NEWLINE,
    }
    if name in base:
        return base[name], _union(base[name], _NON_ASCII)
    positive = name.replace("NOT_", "")
    certain = _complement(_union(base[positive], _NON_ASCII))  # ASCII outside the class
    return certain, _complement(base[positive])


# ``av`` below is a node argument of re's (untyped, private) parse tree.
def _set_of(op: object, av: object, ignore_case: bool, dotall: bool) -> Intervals:
    """Possibly-matched characters of one position."""
    if op is _c.ANY:
        return _ALL if dotall else _complement(_NEWLINE)
    if op is _c.LITERAL:
        code = cast(int, av)
        one: Intervals = ((code, code),)
        return _case_closure(one) if ignore_case else one
    if op is _c.NOT_LITERAL:
        code = cast(int, av)
        return _complement(((code, code),))
    assert op is _c.IN
    negate = False
    certain: list[tuple[int, int]] = []
    possible: list[tuple[int, int]] = []
    for item, value in cast(list[tuple[object, Any]], av):
        if item is _c.NEGATE:
            negate = True
        elif item is _c.LITERAL:
            certain.append((value, value))
            possible.extend(_case_closure(((value, value),)) if ignore_case else [(value, value)])
        elif item is _c.RANGE:
            certain.append(value)
            possible.extend(_case_closure((value,)) if ignore_case else [value])
        elif item is _c.CATEGORY:
            sure, maybe = _category(value)
            certain.extend(sure)
            possible.extend(maybe)
        else:  # an opcode this analysis does not model: assume anything
            possible.extend(_ALL)
    # a negated set possibly matches whatever is not certainly in its positive part
    return _complement(_union(certain)) if negate else _union(possible)


# --- the position automaton with route multiplicities ----------------------------------
# A fragment is (first, last, empty): first/last map a position to the number of ε-routes
# from the fragment's start to it / from it to the fragment's end; empty counts the
# ε-routes straight through (0 when the fragment cannot match "").
_Fragment = tuple[dict[int, int], dict[int, int], int]
_CAP = 2  # multiplicities only matter as "one" or "more than one"


def _add(into: dict[int, int], frm: dict[int, int], times: int = 1) -> None:
    if times:
        for k, v in frm.items():
            into[k] = min(_CAP, into.get(k, 0) + v * times)


class _Automaton:
    def __init__(self) -> None:
        self.sets: list[Intervals] = []
        self.follow: dict[int, dict[int, int]] = {}
        self.work = 0
        self._compat: list[set[int]] | None = None

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise _TooMuchWork

    def compatible(self) -> list[set[int]]:
        """Per position, the positions whose character sets intersect its own."""
        if self._compat is None:
            sets = self.sets
            self.spend(len(sets) ** 2)
            self._compat = [{j for j, b in enumerate(sets) if _intersects(a, b)} for a in sets]
        return self._compat

    def position(self, charset: Intervals) -> int:
        if len(self.sets) >= MAX_POSITIONS:
            raise PatternError(f"more than {MAX_POSITIONS} character positions to analyse")
        self.sets.append(charset)
        return len(self.sets) - 1

    def link(self, last: dict[int, int], first: dict[int, int]) -> None:
        self.spend(len(last) * len(first))
        for p, m in last.items():
            _add(self.follow.setdefault(p, {}), first, m)

    def sequence(self, items: Iterable, flags: int) -> _Fragment:
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        empty = 1
        for op, av in items:
            f2, l2, e2 = self.item(op, av, flags)
            self.link(last, f2)
            new_first = dict(first)
            _add(new_first, f2, empty)
            new_last = dict(l2)
            _add(new_last, last, e2)
            first, last, empty = new_first, new_last, min(_CAP, empty * e2)
        return first, last, empty

    def item(self, op: object, av: object, flags: int) -> _Fragment:
        if op in (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN):
            p = self.position(_set_of(op, av, bool(flags & re.IGNORECASE), bool(flags & re.DOTALL)))
            return {p: 1}, {p: 1}, 0
        if op is _c.AT:
            return {}, {}, 1  # an assertion consumes nothing (ignoring it only adds paths)
        if op is _c.SUBPATTERN:
            _group, add, remove, body = cast(tuple[object, int, int, list[Any]], av)
            return self.sequence(body, (flags | add) & ~remove)
        if op is _c.BRANCH:
            first: dict[int, int] = {}
            last: dict[int, int] = {}
            empty = 0
            for branch in cast(tuple[object, list[list[Any]]], av)[1]:
                f, lst, e = self.sequence(branch, flags)
                _add(first, f)
                _add(last, lst)
                empty = min(_CAP, empty + e)
            return first, last, empty
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, body = cast(tuple[int, int, list[Any]], av)
            return self.repeat(lo, hi, body, flags)
        raise PatternError(f"unsupported construct {op}")

    def repeat(self, lo: int, hi: int, body: list, flags: int) -> _Fragment:
        unbounded = hi == _c.MAXREPEAT
        if hi == 0:
            return {}, {}, 1
        probe = self.sequence(body, flags)
        if probe[2] and (unbounded or hi > 1):
            raise PatternError("a repeated group can match the empty string")
        # A{lo,hi} = A·A·…·A (lo copies) then A* (unbounded) or (A(A(…)?)?)? (hi - lo):
        # the nested form has one route per iteration count, as a backtracking matcher does.
        copies = [probe] + [self.sequence(body, flags) for _ in range(max(lo, 1) - 1)]
        if unbounded:
            f, lst, _ = copies[-1]
            self.link(lst, f)  # the loop of the last copy: A+ (A* when lo == 0)
        tail: _Fragment = ({}, {}, 1)
        if not unbounded:
            for _ in range(hi - max(lo, 1)):
                f, lst, _e = self.sequence(body, flags)
                self.link(lst, tail[0])
                nf = dict(f)
                nl = dict(tail[1])
                _add(nl, lst, tail[2])
                tail = (nf, nl, 1)  # optional: skip, or one more copy then the rest
        frags = [*copies, tail]
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        empty = 1
        for f, lst, e in frags:
            self.link(last, f)
            nf = dict(first)
            _add(nf, f, empty)
            nl = dict(lst)
            _add(nl, last, e)
            first, last, empty = nf, nl, min(_CAP, empty * e)
        if lo == 0:  # the first copy is optional as well
            empty = 1
        return first, last, empty


def ambiguity(pattern: str) -> str | None:
    """Why Python's ``re`` may backtrack more than linearly on ``pattern``, or None when
    the pattern's automaton is proven finitely ambiguous (see the module docstring)."""
    try:
        tree = _sre_parse.parse(pattern)
        auto = _Automaton()
        auto.sequence(tree.data, tree.state.flags)
    except PatternError as exc:
        return str(exc)
    except (re.error, RecursionError):
        return "too complex to analyse"
    try:
        return _exponential(auto) or _polynomial(auto)
    except _TooMuchWork:
        return "too complex to analyse"


class _TooMuchWork(Exception):
    pass


def _edges(auto: _Automaton, state: tuple[int, ...]) -> list[tuple[tuple[int, ...], bool]]:
    """Successors of a tuple of positions reading one common character; the flag says the
    step can be taken in two different ways while all components stay equal. Every pair
    compared counts towards the analysis budget."""
    follows = [auto.follow.get(p, {}) for p in state]
    compat = auto.compatible()
    out: list[tuple[tuple[int, ...], bool]] = []
    if len(state) == 2:
        f1, f2 = follows
        auto.spend(len(f1) * len(f2))
        same = state[0] == state[1]
        for q1, m1 in f1.items():
            row = compat[q1]
            for q2 in f2:
                if q2 in row:
                    out.append(((q1, q2), same and q1 == q2 and m1 > 1))
        return out
    f1, f2, f3 = follows
    auto.spend(len(f1) * len(f2) * (1 + len(f3)))
    for q1 in f1:
        row1 = compat[q1]
        for q2 in f2:
            if q2 not in row1:
                continue
            row2 = compat[q2]
            for q3 in f3:
                if q3 in row1 and q3 in row2:
                    out.append(((q1, q2, q3), False))
    return out


def _exponential(auto: _Automaton) -> str | None:
    """EDA: a strongly connected set of position pairs holding a pair (q, q) and either a
    pair (p, p') with p != p' or a doubled step between equal pairs."""
    n = len(auto.sets)
    graph: dict[tuple[int, ...], list[tuple[tuple[int, ...], bool]]] = {}
    todo: list[tuple[int, ...]] = [(q, q) for q in range(n)]
    seen = set(todo)
    while todo:
        node = todo.pop()
        out = _edges(auto, node)
        graph[node] = out
        for nxt, _ in out:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    comp = _components(graph)
    with_diagonal = {comp[(q, q)] for q in range(n)}
    for node, out in graph.items():
        for nxt, doubled in out:
            if comp[node] != comp[nxt] or comp[node] not in with_diagonal:
                continue
            if doubled or node[0] != node[1] or nxt[0] != nxt[1]:
                return "a repeated part can match the same text in several ways (exponential)"
    return None


def _components(graph: dict) -> dict:
    """Tarjan's strongly connected components, iteratively: node -> component id."""
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    comp: dict = {}
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt, _ in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp[member] = index[node]
                    if member == node:
                        break
    return comp


def _polynomial(auto: _Automaton) -> str | None:
    """IDA: positions p != q with p -w-> p, p -w-> q and q -w-> q for one word w, found
    as a path (p, p, q) -> (p, q, q) in the triple product."""
    n = len(auto.sets)
    reach = [_reachable(auto, q) for q in range(n)]
    cyclic = [q for q in range(n) if q in reach[q]]
    for p in cyclic:
        for q in cyclic:
            if p == q or q not in reach[p]:
                continue
            start: tuple[int, ...] = (p, p, q)
            goal = (p, q, q)
            todo = [start]
            seen = {start}
            while todo:
                for nxt, _ in _edges(auto, todo.pop()):
                    if nxt == goal:
                        return (
                            "two repeated parts can match the same text one after the other "
                            "(polynomial)"
                        )
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
    return None


def _reachable(auto: _Automaton, start: int) -> set[int]:
    """Positions reachable from ``start`` in one or more steps."""
    todo = list(auto.follow.get(start, ()))
    seen = set(todo)
    while todo:
        nxt = auto.follow.get(todo.pop(), {})
        auto.spend(1 + len(nxt))
        for q in nxt:
            if q not in seen:
                seen.add(q)
                todo.append(q)
    return seen
