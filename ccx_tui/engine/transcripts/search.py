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
- Literals every match must contain, wherever they stand in the pattern, are taken from
  the parsed pattern (`literals.py`): `worker-7 .*theta` needs `worker-7 ` and `theta`,
  `timeout|refused` one of two.  Each block is searched for the set that is rarest in
  it with `bytes.find` (in a lower-cased copy if the search ignores case: `bytes.lower`
  folds ASCII at memory speed, where `re` with IGNORECASE tries every position), and
  the regex only checks the lines found; a pattern that is nothing but its literals
  (`timeout`, most plain-text searches) needs no check at all.
- Otherwise (no literal, or a case-sensitive literal prefix that `re` scans for fast
  itself: `ERROR [0-9]+`) one `search` runs over the block; after a match the scan
  jumps to the next line.  A match that runs over a newline (`\\s`, `[^x]` and `(?s).`
  can) is not taken as is: its first line is searched again on its own, so it counts
  only if the line matches by itself.
- Line numbers cost a newline count of every byte, most of a scan's work once the
  searching is fast: long stretches are counted with `bytes.replace` (memchr), twice as
  fast as `bytes.count`, and only up to the matching lines, not the candidates.
- Blocks are read into one reused buffer: fresh 256 KiB objects per block made the
  allocator give memory back and fault it in again, block after block.

Caveats: `\\A`/`\\Z` are not line anchors (use `^`/`$`), and lookarounds may see the
neighbouring lines.  Slow cases: a non-ASCII pattern ignoring case (each block is
decoded and searched with Unicode IGNORECASE, ~60 MB/s), and patterns matching most
lines (a little Python work per matching line).  A line longer than `LONG_LINE_LIMIT`
is searched in its first `LONG_LINE_LIMIT` bytes only; shorter long lines are read
whole, once (memory for one line while it is searched, and the GIL held for that one
search).  `re`, `find`, `count` and `lower` hold the GIL (two threads scanning halves
take as long as one scanning both), so the scan is one thread and blocks are kept small
(`BLOCK_SIZE`) for the UI thread to get its turn between them.
"""

from __future__ import annotations

import os
import re
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ccx_tui.engine.transcripts.literals import Literals, NeedleSets, rarest, required_literals
from ccx_tui.errors import SearchError, TranscriptError

BLOCK_SIZE = 256 * 1024
"""Bytes read per step: cache-sized (each block is passed over a few times: find,
count, maybe lower-case) and short enough a hold of the GIL for the UI to stay fluid."""
MAX_KEPT = 2_000_000
"""Line numbers kept (16 MB); past that `total` keeps counting and `capped` is set."""
LONG_LINE_LIMIT = 128 * 1024 * 1024
"""A longer line is searched in its first LONG_LINE_LIMIT bytes only."""

_NL = b"\n"
_NL_BLOCK = bytearray(_NL)  # (never modified) for functions typed by the block's type
_Block = TypeVar("_Block", str, bytearray)
"""Blocks are read into a reused bytearray; a non-ASCII pattern searches them decoded."""


@dataclass(frozen=True, slots=True)
class Query:
    """A compiled search: the pattern for the raw transcript and the one for display.

    `bytes_pattern` is None when the pattern needs text semantics (it has a non-ASCII
    character): the scan then decodes each block (UTF-8, surrogateescape).  `needles`
    are sets of literals (see `literals.required_literals`): every match contains one
    literal of each set (lower-cased if `folded`); empty when none is worth it.  `exact`:
    a line holding a needle matches (the pattern is only those literals).
    """

    text: str
    case_sensitive: bool
    regex: bool
    text_pattern: re.Pattern[str]
    bytes_pattern: re.Pattern[bytes] | None
    needles: NeedleSets = ()
    folded: bool = False
    exact: bool = False

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
    literals = required_literals(source, flags, raw=bytes_pattern is not None)
    if literals.folded and bytes_pattern is None:  # bytes.lower() is not Unicode folding
        literals = Literals()
    return Query(
        text,
        case_sensitive,
        regex,
        text_pattern,
        bytes_pattern,
        literals.sets,
        literals.folded,
        literals.exact,
    )


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


_SHORT = 4096
"""Stretches shorter than this are counted with `count`; see `_newlines`."""


def _newlines(block: _Block, start: int, stop: int, nl: _Block) -> int:
    """block[start:stop].count(nl), twice as fast over long stretches of ordinary lines.

    `count` of one character tests byte by byte (~1.5 GB/s here, and it is most of the
    work of a scan: every line's number is needed); `replace` finds each newline with
    memchr (3-4 GB/s for 60-100 byte lines, copy included) but crawls on very short
    lines, so a glance at the stretch's first bytes picks one.
    """
    if stop - start < _SHORT or block.count(nl, start, start + 512) > 16:
        return block.count(nl, start, stop)
    part = block if start == 0 and stop == len(block) else block[start:stop]
    return len(part) - len(part.replace(nl, nl[:0]))


def _regex_lines(
    block: _Block,
    end: int,
    search: Callable[[_Block, int, int], re.Match[Any] | None],
    nl: _Block,
    first: int,
    out: list[int],
) -> int:
    """Append the numbers of the lines of block[:end] that match; return its line count.

    block[:end] ends with a newline and block[end:] holds none; its first line is number
    `first`.  (Numbered as it goes, not by `_number`: cheaper when most lines match.)
    """
    find, count = block.find, block.count
    pos = last = 0
    line = first
    while pos < end:
        m = search(block, pos, end)
        if m is None:
            break
        start = m.start()
        if start >= end:  # an empty match after the last newline: no line there
            break
        if start - last < _SHORT:
            line += count(nl, last, start)
        else:
            line += _newlines(block, last, start, nl)
        stop = find(nl, start, end)
        if m.end() <= stop:
            out.append(line)
        else:  # the match ran over the newline: does the line match on its own?
            head = block.rfind(nl, last, start) + 1 or last
            if search(block, head, stop) is not None:
                out.append(line)
        line += 1
        pos = last = stop + 1
    return line - first + _newlines(block, last, len(block) if last == 0 else end, nl)


def _number(
    block: _Block, end: int, where: list[int], nl: _Block, first: int, out: list[int]
) -> int:
    """Append the numbers of the lines holding the offsets `where` (ascending, one per
    line); return block[:end]'s line count.

    Counting newlines is most of a scan's work, so only what the numbers need is counted
    (between matching lines, not between candidates) and each stretch the fastest way.
    """
    count = block.count
    line, last = first, 0
    for at in where:
        line += count(nl, last, at) if at - last < _SHORT else _newlines(block, last, at, nl)
        out.append(line)
        last = at
    # block[end:] holds no newline (the partial line after the last one): count to the
    # end of block when that spares `_newlines` a copy.
    return line - first + _newlines(block, last, len(block) if last == 0 else end, nl)


_Check = Callable[[bytearray, int, int], object]


def _needle_lines(block: bytearray, end: int, query: Query, check: _Check | None) -> list[int]:
    """The starts of the lines of block[:end] that match, for `_number`; only lines
    holding a needle of the set that is rarest in this block are checked (`check` None:
    they all match)."""
    # bytes.lower folds ASCII only, as bytes IGNORECASE does, and runs at memory speed
    # (translate with a table is three times slower).
    hay = block.lower() if query.folded else block
    needles = rarest(hay, end, query.needles)
    find, line_end, line_start = hay.find, block.find, block.rfind
    heads: list[int] = []
    pos = 0
    if len(needles) == 1:  # the common case, kept lean: hits may be many
        needle = needles[0]
        # A candidate must also hold the best other one-literal set: one `find` in the
        # line rejects most candidates for a tenth of the cost of the regex.
        also = next((s[0] for s in query.needles if len(s) == 1 and s != needles), None)
        hit = find(needle, 0, end)
        while hit >= 0:
            head = line_start(_NL, pos, hit) + 1 or pos
            stop = line_end(_NL, hit, end)
            if (also is None or find(also, head, stop) >= 0) and (
                check is None or check(block, head, stop)
            ):
                heads.append(head)
            pos = stop + 1
            hit = find(needle, pos, end)
        return heads
    hits = [find(n, 0, end) for n in needles]
    while True:
        hit = min([h for h in hits if h >= 0], default=-1)
        if hit < 0:
            break
        head = line_start(_NL, pos, hit) + 1 or pos
        stop = line_end(_NL, hit, end)
        if check is None or check(block, head, stop):
            heads.append(head)
        pos = stop + 1
        for i, h in enumerate(hits):
            if 0 <= h < pos:
                hits[i] = find(needles[i], pos, end)
    return heads


def _line_check(query: Query) -> _Check:
    """A test of the line block[start:stop] (truthy: it matches) by the query's pattern."""
    if query.bytes_pattern is not None:
        return query.bytes_pattern.search
    search = query.text_pattern.search

    def check(block: bytearray, start: int, stop: int) -> object:
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
        self._buffer = bytearray()  # blocks are read into it (see `_read`)
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
        n = self._read(fd, min(self.block_size, size - start), start)
        if not n:  # shrank since fstat; the next call restarts
            return 0
        data = self._buffer
        if start == self._offset:
            end = data.rfind(_NL, 0, n) + 1
            if end:
                self._search_block(data, end)
            else:
                self._probe = start + n
            return n
        i = data.find(_NL, 0, n)
        if i < 0:
            self._probe = start + n
            return n
        stop = start + i
        found = self._search_line(fd, self._offset, stop)
        self._publish([self._line] if found else [], 1)
        self._offset = self._probe = stop + 1
        return n

    def _read(self, fd: int, size: int, offset: int) -> int:
        """Read into the reused `_buffer`; return the byte count.

        A fresh 256 KiB `bytes` per block (and the lower-cased copy) made glibc trim and
        re-fault the heap's top every block: reading in place nearly halves the cost
        of a folded search.
        """
        if len(self._buffer) != size:  # exactly: `_number` counts newlines to its end
            self._buffer = bytearray(size)
        n = os.preadv(fd, [self._buffer], offset)
        if n < size:  # the file shrank since fstat
            del self._buffer[n:]
        return n

    def _search_block(self, data: bytearray, end: int) -> None:
        """Search the complete lines data[:end], which start at `_offset`."""
        query, first = self.query, self._line
        found: list[int] = []
        rx = query.bytes_pattern
        if query.needles:
            # Only lines holding a needle are checked; if exact, each of those matches.
            check = None if query.exact else _line_check(query)
            heads = _needle_lines(data, end, query, check)
            lines = _number(data, end, heads, _NL_BLOCK, first, found)
        elif rx is None:
            text = data[:end].decode("utf-8", "surrogateescape")
            search = query.text_pattern.search
            lines = _regex_lines(text, len(text), search, "\n", first, found)
        else:
            lines = _regex_lines(data, end, rx.search, _NL_BLOCK, first, found)
        self._publish(found, lines)
        self._offset = self._probe = self._offset + end

    def _search_line(self, fd: int, start: int, stop: int) -> bool:
        """Whether the one line file[start:stop] (no newline) matches; reads it whole."""
        data = bytearray(min(stop - start, LONG_LINE_LIMIT))
        n = os.preadv(fd, [data], start)
        return bool(_line_check(self.query)(data, 0, n))

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
