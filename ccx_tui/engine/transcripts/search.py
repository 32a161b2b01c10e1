"""Regex search over a whole transcript in large blocks: the headless core of `/` search.

`compile_query` turns what the user typed into a `Query`; a `Searcher` scans a file that
may still be growing, in steps, and keeps the numbers of the matching lines.

Matching is per line, like `grep -c`: a line matches if the pattern matches inside it
(the newline excluded); a line with three matches counts once.  `^` and `$` are line
anchors (re.MULTILINE).  How the scan stays fast (no Python loop per line):

- ASCII patterns run on raw bytes, as `LC_ALL=C grep` does: invalid UTF-8 is searched
  as is, `.` is one byte, and `\\w`, `\\d`, `\\s` and case folding are ASCII-only.  A
  pattern with a non-ASCII character runs on the text decoded per block (slower,
  Unicode semantics), so `é+`, `[éè]` and folding `É` to `é` mean what they say.
- When every match must contain one of a few literals ("needles", taken from the parsed
  pattern: `timeout|refused`, `[0-9]+ ERROR`, any literal under smart case), blocks are
  searched for those with `bytes.find` (after lower-casing the block if folded) and
  the regex only checks the candidate lines: `re` crawls on alternations, leading
  classes and IGNORECASE.
- Otherwise (no literal, or a case-sensitive literal prefix that `re` scans for fast
  itself: `ERROR [0-9]+`) one `search` runs over the block; after a match the scan
  jumps to the next line.  A match that runs over a newline (`\\s`, `[^x]` and `(?s).`
  can) is not taken as is: its first line is searched again on its own, so it counts
  only if the line matches by itself.

Caveats: `\\A`/`\\Z` are not line anchors (use `^`/`$`), and lookarounds may see the
neighbouring lines.  Slow cases: a non-ASCII pattern ignoring case (each block is
decoded and searched with Unicode IGNORECASE, ~60 MB/s), and patterns matching most
lines (a little Python work per matching line).  A line longer than `LONG_LINE_LIMIT`
is searched in its first `LONG_LINE_LIMIT` bytes only; shorter long lines are read
whole, once (memory for one line while it is searched, and the GIL held for that one
search).  `re` holds the GIL while it searches a block, so blocks are kept small
(`BLOCK_SIZE`) for the UI thread to get its turn between them.
"""

from __future__ import annotations

import os
import re
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, AnyStr

from ccx_tui.errors import SearchError, TranscriptError

BLOCK_SIZE = 256 * 1024
"""Bytes read per step: cache-sized (each block is passed over a few times: find,
count, maybe lower-case) and short enough a hold of the GIL for the UI to stay fluid."""
MAX_KEPT = 2_000_000
"""Line numbers kept (16 MB); past that `total` keeps counting and `capped` is set."""
LONG_LINE_LIMIT = 128 * 1024 * 1024
"""A longer line is searched in its first LONG_LINE_LIMIT bytes only."""
MAX_NEEDLES = 8  # more literals than this (`a|b|c|...`): searching each costs too much
MIN_NEEDLE = 3  # shorter literals hit too often to be worth a pass of their own

_NL = b"\n"


@dataclass(frozen=True, slots=True)
class Query:
    """A compiled search: the pattern for the raw transcript and the one for display.

    `bytes_pattern` is None when the pattern needs text semantics (it has a non-ASCII
    character): the scan then decodes each block (UTF-8, surrogateescape).  `needles`
    are literals one of which every match contains (lower-cased if `folded`); empty
    when none is long enough to help.
    """

    text: str
    case_sensitive: bool
    regex: bool
    text_pattern: re.Pattern[str]
    bytes_pattern: re.Pattern[bytes] | None
    needles: tuple[bytes, ...] = ()
    folded: bool = False

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where to highlight in one displayed line: (start, end) of each non-empty match."""
        return [m.span() for m in self.text_pattern.finditer(text) if m.end() > m.start()]

    def matches_line(self, text: str) -> bool:
        """Whether one displayed line (without its newline) matches, as the scan counts it."""
        return self.text_pattern.search(text) is not None


def _has_upper(text: str, regex: bool) -> bool:
    """Smart case: capitals typed by the user, not those of escapes like `\\S` or `\\W`."""
    if regex:
        text = re.sub(r"\\.", "", text)
    return any(c.isupper() for c in text)


def compile_query(text: str, *, case: bool | None = None, regex: bool = True) -> Query:
    """Compile what the user typed.

    Args:
        text: the pattern (a regex, or literal text if `regex` is False).
        case: True or False force case sensitivity; None is smart case (sensitive only
            if the text has a capital letter).
        regex: False searches for the text literally.

    Raises:
        SearchError: the text is empty or not a valid regex; the message is short, e.g.
            "unterminated character set at position 3".
    """
    if not text:
        raise SearchError("empty search")
    case_sensitive = _has_upper(text, regex) if case is None else case
    source = crlf_line_ends(text) if regex else re.escape(text)
    flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    try:
        text_pattern = re.compile(source, flags)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise SearchError(f"{exc.msg}{where}") from None
    except (OverflowError, RecursionError) as exc:
        raise SearchError(f"pattern too large: {exc}") from None
    bytes_pattern: re.Pattern[bytes] | None = None
    if source.isascii():
        try:  # \N{...} or \u escapes are ASCII text for non-ASCII characters
            bytes_pattern = re.compile(source.encode(), flags)
        except re.error:
            pass
        else:  # keep highlighting in step with what the byte scan counts
            text_pattern = re.compile(source, flags | re.ASCII)
    needles, folded = _needles(source, flags, raw=bytes_pattern is not None)
    if folded and bytes_pattern is None:  # str.lower() is not re's Unicode case folding
        needles = ()
    return Query(text, case_sensitive, regex, text_pattern, bytes_pattern, needles, folded)


_LINE_END = r"(?=\r?$)"


def crlf_line_ends(pattern: str) -> str:
    """`pattern` with each `$` (outside a character class, not escaped) allowing a
    CR before the line's end: a terminal session's lines end in CRLF, and `ok$` must
    match them as it matches lines ending in LF."""
    out: list[str] = []
    i, in_class, first = 0, False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "]" and i > first:  # `]` first in a class (`[]a]`) is a member
                in_class = False
        elif char == "[":
            in_class = True
            first = i + 2 if pattern[i + 1 : i + 2] == "^" else i + 1
        elif char == "$":
            out.append(_LINE_END)
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _needles(source: str, flags: int, raw: bool) -> tuple[tuple[bytes, ...], bool]:
    """UTF-8 literals one of which every match must contain, and whether they are folded.

    None if the scan is better off without: for a case-sensitive pattern searched
    `raw` (as bytes) that starts with its literal, re's own prefix scan is as fast and
    cheaper per match.  Uses the private `re._parser`; if its shape ever changes we only
    lose the speed-up.
    """
    try:
        walker = _Needles(import_module("re._constants"))
        parsed = import_module("re._parser").parse(source, flags)
        found = walker.sequence(parsed)
        folded = walker.folded or bool(parsed.state.flags & re.IGNORECASE)
        needles = sorted({"".join(map(chr, n)).encode() for n in found or ()})
        prefixed = raw and not folded and needles == [_prefix(parsed)]
    except Exception:  # an optimisation must never break a search
        return (), False
    if not needles or min(map(len, needles)) < MIN_NEEDLE or prefixed:
        return (), False
    if folded:  # (ASCII patterns) bytes.lower and re's bytes IGNORECASE fold ASCII only
        needles = sorted({n.lower() for n in needles})
    return tuple(needles), folded


def _prefix(parsed: Any) -> bytes:
    """The literal text a parsed pattern starts with (UTF-8)."""
    codes = []
    for op, av in parsed:
        if str(op) != "LITERAL":
            break
        codes.append(av)
    return "".join(map(chr, codes)).encode()


class _Needles:
    """Walks a parsed pattern for the best set of literals that every match contains.

    A needle is a tuple of code points; `folded` notes a scoped `(?i:...)` on the way
    (lower-casing needles and haystack is always safe, so it then applies to all).
    """

    def __init__(self, constants: Any) -> None:
        self.c = constants
        self.folded = False

    def sequence(self, items: Any) -> list[tuple[int, ...]] | None:
        """Every item of a sequence matches, so any item's needles will do: the best."""
        c = self.c
        best: list[tuple[int, ...]] | None = None
        run: list[int] = []
        for op, av in [*items, (None, None)]:
            if op is c.LITERAL and av != 10:  # a needle never holds the line break
                run.append(av)
                continue
            options = [[tuple(run)] if run else None]
            run = []
            if op is c.SUBPATTERN:
                self.folded |= bool(av[1] & re.IGNORECASE)
                options.append(self.sequence(av[-1]))
            elif op is c.ATOMIC_GROUP:
                options.append(self.sequence(av))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[0] >= 1:
                options.append(self.sequence(av[2]))
            elif op is c.BRANCH:
                alternatives = [self.sequence(alt) for alt in av[1]]
                union = sorted({n for alt in alternatives for n in alt or ()})
                if all(alternatives) and len(union) <= MAX_NEEDLES:
                    options.append(union)
            for option in options:
                if option and (best is None or _score(option) > _score(best)):
                    best = option
        return best


def _score(needles: Sequence[Sequence[int]]) -> tuple[int, int]:
    return min(map(len, needles)), -len(needles)


def _regex_lines(
    block: AnyStr, end: int, rx: re.Pattern[AnyStr], nl: AnyStr, first: int, out: list[int]
) -> int:
    """Append the numbers of the lines of block[:end] that match; return its line count.

    block[:end] ends with a newline; its first line is number `first`.
    """
    search, find, count = rx.search, block.find, block.count
    pos = last = 0
    line = first
    while pos < end:
        m = search(block, pos, end)
        if m is None:
            break
        start = m.start()
        if start >= end:  # an empty match after the last newline: no line there
            break
        line += count(nl, last, start)
        stop = find(nl, start, end)
        if m.end() <= stop:
            out.append(line)
        else:  # the match ran over the newline: does the line match on its own?
            head = block.rfind(nl, last, start) + 1 or last
            if search(block, head, stop) is not None:
                out.append(line)
        line += 1
        pos = last = stop + 1
    return line - first + count(nl, last, end)


_LOWER = bytes(range(256)).lower()  # bytes.translate with it beats bytes.lower


_Check = Callable[[bytes, int, int], object]


def _needle_lines(
    block: bytes, end: int, query: Query, check: _Check, first: int, out: list[int]
) -> int:
    """`_regex_lines`, but `check(block, start, stop)` only sees lines holding a needle."""
    hay = block.translate(_LOWER) if query.folded else block  # no slice: no extra copy
    find, line_end, line_start, count = hay.find, block.find, block.rfind, block.count
    pos = last = 0
    line = first
    if len(query.needles) == 1:  # the common case, kept lean: candidates may be many
        needle = query.needles[0]
        hit = find(needle, 0, end)
        while hit >= 0:
            head = line_start(_NL, pos, hit) + 1 or pos
            stop = line_end(_NL, hit, end)
            line += count(_NL, last, head)
            if check(block, head, stop):
                out.append(line)
            line += 1
            pos = last = stop + 1
            hit = find(needle, pos, end)
        return line - first + count(_NL, last, end)
    needles = query.needles
    hits = [find(n, 0, end) for n in needles]
    while True:
        hit = min([h for h in hits if h >= 0], default=-1)
        if hit < 0:
            break
        head = line_start(_NL, pos, hit) + 1 or pos
        stop = line_end(_NL, hit, end)
        line += count(_NL, last, head)
        if check(block, head, stop):
            out.append(line)
        line += 1
        pos = last = stop + 1
        for i, h in enumerate(hits):
            if 0 <= h < pos:
                hits[i] = find(needles[i], pos, end)
    return line - first + count(_NL, last, end)


def _line_check(query: Query) -> _Check:
    """A test of the line block[start:stop] (truthy: it matches) by the query's pattern."""
    if query.bytes_pattern is not None:
        return query.bytes_pattern.search
    search = query.text_pattern.search

    def check(block: bytes, start: int, stop: int) -> object:
        return search(block[start:stop].decode("utf-8", "surrogateescape"))

    return check


class Searcher:
    """Scans one file, possibly still growing, for the lines matching a query.

    Call `scan` from one worker thread at a time; it blocks on file I/O.  Any thread may
    read the results meanwhile, without waiting for the scan:

    - `matches`, the sorted 0-based numbers of the matching lines, is an `array('q')`
      that is only ever appended to; when entries must go (a restart, a provisional
      line that stopped matching) a new array replaces it.  So `len()`, indexing and
      `bisect` on one reference are safe (each is one C call under the GIL): read
      `searcher.matches` once per use.  The helpers (`next_match`, `previous_match`,
      `index_of`, `match_at`, `match_lines`, `kept`) do just that.
    - `total`, `capped`, `scanned_bytes`, `lines_scanned`, `generation` are plain reads.
    - The scanner updates `matches`, `total` and `capped` together under `lock`; hold it
      to read them as one consistent snapshot (not needed for display).

    Memory: at most `MAX_KEPT` line numbers are kept; past that `total` keeps counting
    and `capped` is set (navigation then stops at the last kept match).

    A trailing line without a newline is left for later unless `final=True`; then its
    result is provisional (`tail_match`) and, if the line grows, it is searched again
    and still counted once.  If the file shrinks or is replaced by another file, the
    results are cleared, `generation` goes up and the scan starts over.
    """

    def __init__(self, path: Path | str, query: Query, *, block_size: int | None = None) -> None:
        """Prepare to scan `path` (nothing is read until `scan`)."""
        self.path = Path(path)
        self.query = query
        self.block_size = block_size or BLOCK_SIZE
        self.lock = threading.Lock()
        self.generation = 0
        """Bumped when the file shrank or was replaced and the results started over."""
        self._identity: tuple[int, int] | None = None
        self._reset()

    def _reset(self) -> None:
        with self.lock:
            self.matches: array[int] = array("q")
            self.total = 0
            """Matching lines, past the cap too."""
            self.capped = False
            self.tail_match: int | None = None
            """The trailing partial line, counted provisionally by a final scan."""
            self._tail_kept = False  # tail_match is the last entry of `matches`
        self.file_size = 0
        self.caught_up = False
        """The last `scan` stopped at the end of the file, not at `max_bytes`."""
        self._offset = 0  # start of the first line not searched for good
        self._line = 0  # its number
        self._probe = 0  # bytes read: no newline in [_offset, _probe)
        self._tail_end: int | None = None  # file size when the tail was searched

    @property
    def scanned_bytes(self) -> int:
        """Bytes of the file read so far, a line still being read included (progress)."""
        return self._probe

    @property
    def lines_scanned(self) -> int:
        """Lines searched so far (a provisionally searched tail included)."""
        return self._line + (self._tail_end is not None)

    def scan(self, max_bytes: int | None = None, *, final: bool = False) -> int:
        """Search on from where the last call stopped; return the number of new matches.

        Reads blocks of `block_size` until the end of the file or until `max_bytes` have
        been read (at least one block), so a worker can check its own cancel flag between
        calls; `caught_up` tells which.  `final=True` also searches a trailing line that
        has no newline yet; use it once the writer is done (a tail that keeps growing is
        searched again, whole, by every final scan that sees it grown).  The result is the
        change in `total`: after a restart, the new generation's matches; -1 in the odd
        case where a provisional tail matched and no longer does once complete (`foo$`
        matched "foo" and the line became "foobar").

        Raises:
            TranscriptError: the file cannot be opened or read.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise TranscriptError(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            return self._scan(fd, max_bytes, final)
        except OSError as exc:
            raise TranscriptError(f"cannot read {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def _scan(self, fd: int, max_bytes: int | None, final: bool) -> int:
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino)
        if identity != self._identity or st.st_size < self._probe:
            if self._identity is not None:
                self._reset()
                self.generation += 1
            self._identity = identity
        before = self.total
        size = self.file_size = st.st_size
        if self._tail_end is not None and size != self._tail_end:
            self._tail_end = None  # the tail grew: search it again (tail_match stays till then)
        used = 0
        self.caught_up = False
        while max_bytes is None or used < max_bytes:
            step = self._step(fd, size, final)
            if step == 0:
                self.caught_up = True
                break
            used += step
        return self.total - before

    def _step(self, fd: int, size: int, final: bool) -> int:
        """Read one block, search what it completes; return bytes read (0: at the end)."""
        start = self._probe
        if start >= size:
            if final and self._tail_end is None and self._offset < size:
                found = self._search_line(fd, self._offset, size)
                self._publish([self._line] if found else [], 0, tail=True)
                self._tail_end = size
            return 0
        data = os.pread(fd, min(self.block_size, size - start), start)
        if not data:  # shrank since fstat; the next call restarts
            return 0
        if start == self._offset:
            end = data.rfind(_NL) + 1
            if end:
                self._search_block(data, end)
            else:
                self._probe = start + len(data)
            return len(data)
        i = data.find(_NL)
        if i < 0:
            self._probe = start + len(data)
            return len(data)
        stop = start + i
        found = self._search_line(fd, self._offset, stop)
        self._publish([self._line] if found else [], 1)
        self._offset = self._probe = stop + 1
        return len(data)

    def _search_block(self, data: bytes, end: int) -> None:
        """Search the complete lines data[:end], which start at `_offset`."""
        query, first = self.query, self._line
        found: list[int] = []
        rx = query.bytes_pattern
        if query.needles:
            lines = _needle_lines(data, end, query, _line_check(query), first, found)
        elif rx is None:
            text = data[:end].decode("utf-8", "surrogateescape")
            lines = _regex_lines(text, len(text), query.text_pattern, "\n", first, found)
        else:
            lines = _regex_lines(data, end, rx, _NL, first, found)
        self._publish(found, lines)
        self._offset = self._probe = self._offset + end

    def _search_line(self, fd: int, start: int, stop: int) -> bool:
        """Whether the one line file[start:stop] (no newline) matches; reads it whole."""
        data = os.pread(fd, min(stop - start, LONG_LINE_LIMIT), start)
        return bool(_line_check(self.query)(data, 0, len(data)))

    def _publish(self, found: list[int], lines: int, *, tail: bool = False) -> None:
        """Record the matches among the next `lines` lines (with `tail`: the partial one)."""
        with self.lock:
            if self.tail_match is not None:  # counted provisionally: this is its new result
                old, self.tail_match = self.tail_match, None
                if found and found[0] == old:
                    found = found[1:]  # counted and kept already
                    self.tail_match = old if tail else None
                else:
                    self.total -= 1
                    if self._tail_kept:  # a new array: readers may hold the old one
                        self.matches = self.matches[:-1]
            elif tail and found:
                self.tail_match = found[0]
                self._tail_kept = len(self.matches) < MAX_KEPT
            self.total += len(found)
            room = MAX_KEPT - len(self.matches)
            if len(found) > room:
                self.capped = True
                found = found[: max(room, 0)]
            self.matches.extend(found)
        self._line += lines

    # Navigation, for any thread.

    @property
    def kept(self) -> int:
        """How many matching lines can be navigated (`total` unless `capped`)."""
        return len(self.matches)

    def match_at(self, index: int) -> int:
        """The line number of kept match `index` (0-based; IndexError if there is none)."""
        return self.matches[index]

    def match_lines(self, start: int, stop: int) -> list[int]:
        """Line numbers of kept matches start..stop-1 (the rows of a filter view)."""
        return self.matches[start:stop].tolist()

    def next_match(self, line: int) -> int | None:
        """The first matching line after `line`, or None (wrapping is the caller's call)."""
        matches = self.matches
        i = bisect_right(matches, line)
        return matches[i] if i < len(matches) else None

    def previous_match(self, line: int) -> int | None:
        """The last matching line before `line`, or None."""
        matches = self.matches
        i = bisect_left(matches, line)
        return matches[i - 1] if i else None

    def index_of(self, line: int) -> int | None:
        """The 0-based index of `line` among the matches (for "match i+1/N"), or None."""
        matches = self.matches
        i = bisect_left(matches, line)
        return i if i < len(matches) and matches[i] == line else None
