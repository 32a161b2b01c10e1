"""Literals every match of a regex must contain, for a byte search to skip ahead with.

`required_literals` walks the parsed pattern (the private `re._parser`; if its shape ever
changes the search only loses its speed-up) and returns "needle sets": every match holds
at least one literal of each set.  `worker-7 .*theta` gives two sets, `{worker-7 }` and
`{theta}`; `(timeout|refused) after` gives `{refused, timeout}` and `{ after}`.  Which set
to search for is the scan's call: the rarest in the data at hand (`rarest`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

MAX_NEEDLES = 8  # more literals than this in one set (`a|b|c|...`): searching each costs too much
MIN_NEEDLE = 3  # shorter literals hit too often to be worth a pass of their own
MAX_SETS = 4  # sets to choose from per block; each costs a sample count
SAMPLE = 8 * 1024  # bytes of a block the sets are counted in to choose one

Needle = tuple[int, ...]  # code points (text) or byte values (bytes pattern)
NeedleSets = tuple[tuple[bytes, ...], ...]


@dataclass(frozen=True, slots=True)
class Literals:
    """What a pattern's literals tell the scan.

    `sets`: needle sets, best first; `folded`: they are lower-cased, for a lower-cased
    block; `exact`: the pattern is nothing but the one set's literals (`timeout`,
    `timeout|refused`, any plain-text search), so a line holding a needle matches and
    needs no regex check.
    """

    sets: NeedleSets = ()
    folded: bool = False
    exact: bool = False


def required_literals(source: str, flags: int, *, raw: bool) -> Literals:
    """Needle sets for `source` compiled with `flags`.

    Args:
        source: the regex as compiled (str).
        flags: its flags (IGNORECASE folds the needles: lower-cased, to be searched for
            in a lower-cased block; ASCII only, as `bytes.lower` and bytes patterns fold).
        raw: the scan runs the bytes pattern `source.encode()`, so an escape like `\\xe9`
            is one byte; otherwise needles are the UTF-8 of the text's characters.

    No sets when none is worth it: none left once sets holding a literal
    shorter than `MIN_NEEDLE` are dropped, or (case-sensitive, raw) the only set is the
    pattern's literal prefix, which `re` finds by itself as fast and with less work
    per match.
    """
    try:
        walker = _Walker(import_module("re._constants"))
        parsed = import_module("re._parser").parse(source.encode() if raw else source, flags)
        found = walker.sequence(parsed)
        folded = walker.folded or bool(parsed.state.flags & re.IGNORECASE)
        encode = bytes if raw else _utf8
        sets: set[tuple[bytes, ...]] = set()
        for option in found:
            needles = {encode(n) for n in option}
            if folded:
                needles = {n.lower() for n in needles}
            if min(map(len, needles)) >= MIN_NEEDLE:
                sets.add(tuple(sorted(needles)))
        prefix = _prefix(parsed)
        whole = _alternatives(walker.c, list(parsed))
    except Exception:  # an optimisation must never break a search
        return Literals()
    if raw and not folded and sets == {(prefix,)}:
        return Literals()
    best = sorted(sets, key=lambda s: (-min(map(len, s)), len(s), s))[:MAX_SETS]  # as _score
    exact = False
    if raw and whole is not None and len(best) == 1:
        literals = {bytes(n).lower() if folded else bytes(n) for n in whole}
        exact = best[0] == tuple(sorted(literals))
    return Literals(tuple(best), folded and bool(best), exact)


def rarest(hay: bytes | bytearray, end: int, sets: NeedleSets) -> tuple[bytes, ...]:
    """The set with the fewest hits in the first `SAMPLE` bytes of hay[:end] (ties: the
    first, i.e. the longest literals): `worker-7 .*theta` is searched for `theta` when
    every line names a worker."""
    if len(sets) == 1:
        return sets[0]
    stop = min(end, SAMPLE)
    return min(sets, key=lambda needles: sum(hay.count(n, 0, stop) for n in needles))


def _alternatives(c: Any, items: list[Any]) -> list[Needle] | None:
    """The literals of a pattern that is only literals (`abc`, `abc|def`, `(abc|def)`),
    or None."""
    if len(items) == 1 and items[0][0] is c.SUBPATTERN and not any(items[0][1][1:3]):
        items = list(items[0][1][-1])  # a plain group, no flags
    if len(items) == 1 and items[0][0] is c.BRANCH:
        branches = [_run(c, list(alt)) for alt in items[0][1][1]]
        return None if None in branches else [b for b in branches if b is not None]
    run = _run(c, items)
    return None if run is None else [run]


def _run(c: Any, items: list[Any]) -> Needle | None:
    """The literal that a sequence of plain literals is, or None."""
    if not items or any(op is not c.LITERAL or av == 10 for op, av in items):
        return None
    return tuple(av for _, av in items)


def _utf8(needle: Needle) -> bytes:
    return "".join(map(chr, needle)).encode("utf-8", "surrogateescape")


def _prefix(parsed: Any) -> bytes:
    """The literal bytes a parsed bytes pattern starts with."""
    values = []
    for op, av in parsed:
        if str(op) != "LITERAL":
            break
        values.append(av)
    return bytes(values)


class _Walker:
    """Walks a parsed pattern for the literal sets that every match contains.

    `folded` notes a scoped `(?i:...)` on the way (lower-casing needles and haystack
    is always safe, so it then applies to all).
    """

    def __init__(self, constants: Any) -> None:
        self.c = constants
        self.folded = False

    def sequence(self, items: Any) -> list[list[Needle]]:
        """Every item of a sequence matches, so each item's sets are required."""
        c = self.c
        sets: list[list[Needle]] = []
        run: list[int] = []
        for op, av in [*items, (None, None)]:
            if op is c.LITERAL and av != 10:  # a needle never holds the line break
                run.append(av)
                continue
            if run:
                sets.append([tuple(run)])
            run = []
            if op is c.SUBPATTERN:
                self.folded |= bool(av[1] & re.IGNORECASE)
                sets += self.sequence(av[-1])
            elif op is c.ATOMIC_GROUP:
                sets += self.sequence(av)
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[0] >= 1:
                sets += self.sequence(av[2])
            elif op is c.BRANCH:
                # One alternative matches: the union of each one's best set is required.
                bests = [_best(self.sequence(alt)) for alt in av[1]]
                union = sorted({n for best in bests for n in best or ()})
                if all(bests) and len(union) <= MAX_NEEDLES:
                    sets.append(union)
        return sets


def _best(sets: list[list[Needle]]) -> list[Needle] | None:
    return max(sets, key=_score, default=None)


def _score(needles: Sequence[Sequence[int]]) -> tuple[int, int]:
    """Longer shortest literal first (fewer false hits), then fewer literals."""
    return min(map(len, needles)), -len(needles)
