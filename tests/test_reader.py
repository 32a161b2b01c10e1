"""TranscriptReader: line-numbered random access into files of any size, bounded memory."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccx_tui.engine.transcripts import reader as reader_module
from ccx_tui.engine.transcripts.reader import CHECKPOINT_BYTES, Line, TranscriptReader
from ccx_tui.errors import TranscriptError

MiB = 1024 * 1024


# -- an oracle: what the lines of a byte string are, computed the obvious way ---------


def split_lines(data: bytes) -> list[bytes]:
    """Lines split on \\n; a final unterminated piece is a line, a final \\n adds none."""
    if not data:
        return []
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    return parts


def line_starts(data: bytes) -> list[int]:
    starts = [0]
    at = data.find(b"\n")
    while at >= 0:
        starts.append(at + 1)
        at = data.find(b"\n", at + 1)
    return starts


def expected_lines(data: bytes, start: int, stop: int, max_bytes: int) -> list[Line]:
    parts = split_lines(data)
    starts = line_starts(data)
    return [
        Line(n, starts[n], len(parts[n]), parts[n][:max_bytes])
        for n in range(max(start, 0), min(stop, len(parts)))
    ]


def bytes_read() -> int:
    """Bytes this process has read through read()/pread() so far (Linux /proc)."""
    with open("/proc/self/io") as f:
        for row in f:
            if row.startswith("rchar:"):
                return int(row.split()[1])
    raise AssertionError("no rchar in /proc/self/io")  # pragma: no cover


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


# -- small files with known content ---------------------------------------------------


def test_numbered_lines_of_varying_length_with_empty_lines(tmp_path: Path) -> None:
    """Nothing is readable before refresh(); after it every line, empty ones included."""
    lines = [b"line %d " % i + b"-" * (i % 13) if i % 5 else b"" for i in range(2000)]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "t.log"
    path.write_bytes(data)
    with TranscriptReader(path) as reader:
        assert reader.line_count == 0  # nothing indexed yet
        assert reader.refresh()
        assert not reader.refresh()
        assert reader.fully_indexed and reader.indexed_size == len(data)
        assert reader.line_count == 2000
        assert reader.lines(0, 2000) == expected_lines(data, 0, 2000, 1 << 30)
        assert reader.lines(1995, 5000) == expected_lines(data, 1995, 2005, 1 << 30)
        assert reader.lines(10, 10) == [] and reader.lines(2000, 2001) == []
        assert reader.lines(5, 6)[0].data == b""
        assert reader.tail(3) == lines[-3:]


def test_crlf_lines_keep_their_carriage_return(tmp_path: Path) -> None:
    """Lines end at \\n only; a CRLF line's data ends with \\r (the view renders it)."""
    path = tmp_path / "crlf.log"
    path.write_bytes(b"one\r\ntwo\r\n\r\nprogress 1\rprogress 2\r\n")
    with TranscriptReader(path) as reader:
        reader.refresh()
        assert reader.line_count == 4
        assert [ln.data for ln in reader.lines(0, 4)] == [
            b"one\r",
            b"two\r",
            b"\r",
            b"progress 1\rprogress 2\r",
        ]
        assert reader.lines(1, 2)[0].length == 4
        assert reader.tail(2) == [b"\r", b"progress 1\rprogress 2\r"]


def test_last_line_without_newline_counts(tmp_path: Path) -> None:
    """An unterminated last line is a line, with its true length."""
    path = tmp_path / "t.log"
    path.write_bytes(b"a\nbb\nccc")
    with TranscriptReader(path) as reader:
        reader.refresh()
        assert reader.line_count == 3
        assert reader.lines(0, 10) == [
            Line(0, 0, 1, b"a"),
            Line(1, 2, 2, b"bb"),
            Line(2, 5, 3, b"ccc"),
        ]
        assert reader.line_start(3) == 8
        assert reader.tail(2) == [b"bb", b"ccc"]


def test_empty_file_and_lone_newline(tmp_path: Path) -> None:
    """An empty file has no lines; a lone newline is one empty line."""
    path = tmp_path / "t.log"
    path.write_bytes(b"")
    with TranscriptReader(path) as reader:
        assert not reader.refresh()
        assert reader.line_count == 0
        assert reader.lines(0, 5) == [] and reader.tail(5) == []
        append(path, b"\n")
        assert reader.refresh()
        assert reader.line_count == 1
        assert reader.lines(0, 5) == [Line(0, 0, 0, b"")]
        assert reader.tail(5) == [b""]


def test_long_lines_are_cut_but_keep_their_true_length(tmp_path: Path) -> None:
    """lines() cuts long lines to max_bytes from their start, `length` stays true."""
    long = bytes(range(97, 123)) * 10000  # 260,000 bytes, spans several checkpoints
    data = b"short\n" + long + b"\nafter\n" + long
    path = tmp_path / "t.log"
    path.write_bytes(data)
    with TranscriptReader(path) as reader:
        reader.refresh()
        got = reader.lines(0, 4, max_bytes=100)
        assert got == expected_lines(data, 0, 4, 100)
        assert got[1].cut and not got[0].cut
        assert got[1].length == got[3].length == len(long)
        assert reader.tail(2, max_bytes=100) == [long[-100:]]  # "after" is out of reach


def test_line_start_matches_brute_force(tmp_path: Path) -> None:
    """On a ~3 MB file of random lines (empty ones, short ones, and some over 64 KiB so
    that whole checkpoint spans hold no newline), line_start(n) equals the offset found
    by scanning for every newline, for every n; lines() agrees for random windows."""
    rng = random.Random(7)
    lines = []
    for i in range(20_000):
        kind = rng.random()
        length = 0 if kind < 0.2 else rng.randrange(1, 120) if kind < 0.999 else 200_000
        lines.append(bytes([48 + i % 10]) * length)
    data = b"\n".join(lines)  # no final newline
    path = tmp_path / "t.log"
    path.write_bytes(data)
    starts = line_starts(data)
    with TranscriptReader(path) as reader:
        reader.refresh()
        assert reader.line_count == len(lines) == len(starts)
        assert [reader.line_start(n) for n in range(len(starts))] == starts
        assert reader.line_start(len(starts)) == len(data)
        for _ in range(200):
            a = rng.randrange(len(lines))
            b = a + rng.randrange(1, 40)
            assert reader.lines(a, b, 50) == expected_lines(data, a, b, 50)


# -- refresh: appends, partial indexing, truncation, rotation ----------------------


def test_incremental_refresh_with_appends_splitting_lines(tmp_path: Path) -> None:
    """Appends that end mid-line, that complete a line, and that end exactly on a
    checkpoint boundary are indexed as if the file had been read at once."""
    path = tmp_path / "t.log"
    path.write_bytes(b"")
    data = b""
    with TranscriptReader(path) as reader:
        pieces = [
            b"first li",
            b"ne\nsecond",
            b"\n",
            b"x" * (CHECKPOINT_BYTES - 19) + b"\n",  # ends exactly at 64 KiB
            b"y\n" * 10,
            b"z" * (2 * CHECKPOINT_BYTES - len(b"y\n") * 10 - 1) + b"\n",  # at 192 KiB
            b"\n",
            b"tail without newline",
        ]
        for piece in pieces:
            append(path, piece)
            data += piece
            reader.refresh()
            assert reader.indexed_size == len(data)
            assert reader.line_count == len(split_lines(data))
            assert reader.lines(0, 10**6, 1 << 20) == expected_lines(data, 0, 10**6, 1 << 20)
            starts = line_starts(data)
            for n in range(len(starts)):
                assert reader.line_start(n) == starts[n]
        assert len(data) == 3 * CHECKPOINT_BYTES + 1 + len(b"tail without newline")
        assert list(reader._nl_before) == [
            data.count(b"\n", 0, k * CHECKPOINT_BYTES) for k in range(4)
        ]


def test_refresh_with_max_bytes_indexes_a_prefix(tmp_path: Path) -> None:
    """refresh(max_bytes) indexes a bounded step; lines come from the indexed prefix
    only, and the line cut by the step boundary shows what is indexed so far."""
    data = b"".join(b"%06d\n" % i for i in range(100_000))  # 700,000 bytes
    path = tmp_path / "t.log"
    path.write_bytes(data)
    with TranscriptReader(path) as reader:
        assert reader.refresh(max_bytes=100_003)
        assert reader.indexed_size == 100_003 and not reader.fully_indexed
        assert reader.line_count == 14_287  # 14,286 whole lines, then 1 byte of "014286"
        assert reader.lines(14_280, 20_000) == expected_lines(data[:100_003], 14_280, 20_000, 99)
        assert reader.lines(14_286, 14_287) == [Line(14_286, 100_002, 1, b"0")]
        steps = 1
        while reader.refresh(max_bytes=100_003):
            steps += 1
        assert steps == 7 and reader.fully_indexed
        assert reader.line_count == 100_000
        assert reader.lines(99_998, 100_000) == expected_lines(data, 99_998, 100_000, 99)


def test_truncation_resets_the_index(tmp_path: Path) -> None:
    """A file that shrank is indexed again from the start; lines are the new ones."""
    path = tmp_path / "t.log"
    path.write_bytes(b"old line %d\n" % 1 * 50_000)
    with TranscriptReader(path) as reader:
        reader.refresh()
        assert reader.line_count == 50_000
        path.write_bytes(b"new\nlines\n")
        assert reader.refresh()
        assert reader.line_count == 2
        assert [ln.data for ln in reader.lines(0, 5)] == [b"new", b"lines"]
        assert len(reader._nl_before) == 1


def test_truncation_to_empty_is_reported(tmp_path: Path) -> None:
    """Regression: truncating the file to 0 bytes made refresh() return False (so
    follow() never told the view), leaving the view on lines that no longer exist.
    refresh() must return True and line_count drop to 0."""
    path = tmp_path / "t.log"
    path.write_bytes(b"a\nb\n")
    with TranscriptReader(path) as reader:
        reader.refresh()
        path.write_bytes(b"")
        assert reader.refresh()
        assert reader.line_count == 0 and reader.indexed_size == 0
        assert reader.lines(0, 5) == []
        assert not reader.refresh()


def test_rotation_switches_to_the_new_file(tmp_path: Path) -> None:
    """Regression: after the file was renamed away and a new one created in its place
    (log rotation), the reader kept reading the old file through its open descriptor.
    It must index the file now at its path, from the start."""
    path = tmp_path / "t.log"
    path.write_bytes(b"old 1\nold 2\nold 3\n")
    with TranscriptReader(path) as reader:
        reader.refresh()
        path.rename(tmp_path / "t.log.1")
        path.write_bytes(b"new 1\n")
        assert reader.refresh()
        assert reader.line_count == 1
        assert reader.lines(0, 5) == [Line(0, 0, 5, b"new 1")]
        assert reader.tail(5) == [b"new 1"]
        append(path, b"new 2\n")
        assert reader.refresh()
        assert [ln.data for ln in reader.lines(0, 5)] == [b"new 1", b"new 2"]


def test_file_removed_keeps_serving_what_is_open(tmp_path: Path) -> None:
    """A transcript deleted (session removed) while open still reads; no exception."""
    path = tmp_path / "t.log"
    path.write_bytes(b"kept\n")
    with TranscriptReader(path) as reader:
        path.unlink()
        assert reader.refresh()
        assert reader.lines(0, 1)[0].data == b"kept"


def test_missing_file_or_directory_raises_transcript_error(tmp_path: Path) -> None:
    """A missing file, a missing directory, or a directory: TranscriptError."""
    with pytest.raises(TranscriptError, match="no such file"):
        TranscriptReader(tmp_path / "missing.log")
    with pytest.raises(TranscriptError):
        TranscriptReader(tmp_path / "no-dir" / "transcript.log")
    with pytest.raises(TranscriptError, match="directory"):
        TranscriptReader(tmp_path)


def test_tail_works_before_refresh(tmp_path: Path) -> None:
    """The last screen is readable before (and without) any indexing."""
    path = tmp_path / "t.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    with TranscriptReader(path) as reader:
        assert reader.tail(3) == [b"line 99997", b"line 99998", b"line 99999"]
        assert reader.line_count == 0 and reader.indexed_size == 0
        assert reader.tail(0) == []


async def test_follow_yields_after_an_append(tmp_path: Path) -> None:
    """follow() reports the new line count once the file grows, and 0 once it is
    truncated to nothing (each awaited with a deadline, no fixed sleep)."""
    path = tmp_path / "t.log"
    path.write_bytes(b"one\n")
    with TranscriptReader(path) as reader:
        reader.refresh()
        updates = reader.follow(interval=0.01)
        try:
            pending = asyncio.ensure_future(anext(updates))
            append(path, b"two\nthree\n")
            async with asyncio.timeout(10):
                assert await pending == 3
            append(path, b"four")
            async with asyncio.timeout(10):
                assert await anext(updates) == 4
            assert reader.lines(3, 4) == [Line(3, 14, 4, b"four")]
            path.write_bytes(b"")  # truncated: the view must hear of it
            async with asyncio.timeout(10):
                assert await anext(updates) == 0
        finally:
            await updates.aclose()


def test_reading_while_another_thread_indexes(tmp_path: Path) -> None:
    """Regression: lines() read the index size and newline count at different moments,
    so a line completed by a concurrent refresh() came back with its newline counted
    in `length` (9 for "abcdefgh").  A reader thread checks every line it gets while
    the main thread appends lines in two writes and indexes after each."""
    path = tmp_path / "t.log"
    path.write_bytes(b"")
    bad: list[Line] = []
    seen = 0
    done = threading.Event()

    def read_last_lines(reader: TranscriptReader) -> None:
        nonlocal seen
        while not done.is_set():
            n = reader.line_count
            for line in reader.lines(max(n - 2, 0), n, max_bytes=4):
                seen += 1
                if line.data != b"abcdefgh"[: len(line.data)] or line.length > 8:
                    bad.append(line)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so the two interleave finely
    try:
        with TranscriptReader(path) as reader, open(path, "ab", buffering=0) as f:
            thread = threading.Thread(target=read_last_lines, args=(reader,))
            thread.start()
            try:
                for _ in range(10_000):
                    f.write(b"abcdefgh")
                    reader.refresh()
                    f.write(b"\n")
                    reader.refresh()
            finally:
                done.set()
                thread.join(timeout=60)
            assert not thread.is_alive()
            assert reader.line_count == 10_000
    finally:
        sys.setswitchinterval(old_interval)
    assert seen > 0
    assert bad == []


# -- property: random content against the split-based oracle -----------------------


@pytest.fixture
def small_checkpoints() -> Iterator[None]:
    """Checkpoints every 7 bytes, so that small examples cross many of them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reader_module, "CHECKPOINT_BYTES", 7)
        yield


content = st.lists(
    st.sampled_from([b"\n", b"\n\n", b"a", b"bc", b"\r\n", b"\x00\xff", b"x" * 30]),
    max_size=40,
).map(b"".join)


@pytest.mark.parametrize("checkpoints", ["small", "default"])
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pieces=st.lists(st.tuples(content, st.lists(st.integers(1, 40), max_size=3)), max_size=4),
    max_bytes=st.integers(0, 12),
    count=st.integers(1, 6),
    window=st.tuples(st.integers(0, 60), st.integers(0, 60)),
)
def test_matches_split_oracle_under_random_appends_and_partial_refreshes(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    checkpoints: str,
    pieces: list[tuple[bytes, list[int]]],
    max_bytes: int,
    count: int,
    window: tuple[int, int],
) -> None:
    """Random bytes with many newlines, appended in pieces with bounded refresh steps
    between them: line_count, line_start, lines() (for a random window and for all)
    and tail() agree with a plain split on \\n of the indexed prefix (tail: of the
    whole file) after every step."""
    if checkpoints == "small":
        request.getfixturevalue("small_checkpoints")
    path = tmp_path / "t.log"
    path.write_bytes(b"")
    data = b""
    with TranscriptReader(path) as reader:
        for piece, steps in pieces:
            append(path, piece)
            data += piece
            for step in [*steps, None]:
                reader.refresh(max_bytes=step)
                check_against_oracle(reader, data[: reader.indexed_size], max_bytes, window)
            check_tail(reader, data, count, max_bytes)
        assert reader.indexed_size == len(data)


def check_against_oracle(
    reader: TranscriptReader, data: bytes, max_bytes: int, window: tuple[int, int]
) -> None:
    parts = split_lines(data)
    assert reader.line_count == len(parts)
    starts = line_starts(data)
    for n in range(len(parts) + 2):
        assert reader.line_start(n) == (starts[n] if n < len(starts) else len(data))
    assert reader.lines(0, len(parts) + 1, max_bytes) == expected_lines(
        data, 0, len(parts), max_bytes
    )
    a, b = window
    assert reader.lines(a, b, max_bytes) == expected_lines(data, a, b, max_bytes)


def check_tail(reader: TranscriptReader, data: bytes, count: int, max_bytes: int) -> None:
    """tail() reads a bounded window back from the end.  It returns the last lines
    whose start is in that window (all `count` of them when they fit, e.g. when none
    is longer than max_bytes), each cut to max_bytes from its start; if the window
    holds no line start at all, it returns the last line's final max_bytes bytes."""
    parts = split_lines(data)
    got = reader.tail(count, max_bytes)
    want = [p[:max_bytes] for p in parts[-count:]]
    if all(len(p) <= max_bytes for p in parts[-count:]):
        assert got == want
        return
    budget = count * (max_bytes + 1) + reader_module.CHECKPOINT_BYTES
    starts = line_starts(data)
    # Every line that starts (with the newline before it) within `budget` bytes of the
    # end is certainly in the window.
    n = len(parts)
    reachable = [
        j for j in range(1, len(want) + 1) if len(data) - starts[n - j] + (n > j) <= budget
    ]
    k = len(got)
    assert max(reachable, default=1) <= k <= len(want)
    if got != want[len(want) - k :]:
        last = parts[-1]
        assert k == 1 and len(last) >= budget - 1
        assert got == [last[len(last) - max_bytes :] if max_bytes else b""]


# -- huge files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def hundred_mb_line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One 100 MiB line and no newline, written as 1 MiB blocks."""
    path = tmp_path_factory.mktemp("huge") / "one-line.log"
    block = bytes(b for b in range(256) if b != 10) * (MiB // 255) + b"#" * (MiB % 255)
    with open(path, "wb") as f:
        f.write(b"START")
        for _ in range(100):
            f.write(block)
        f.write(b"THE-END")
    yield path
    path.unlink()


def test_tail_of_a_100_mb_line_reads_only_its_end(hundred_mb_line: Path) -> None:
    """Regression: tail() of a file that is one 100 MiB line returned a 16 KiB slice
    from the middle of it (the start of the bytes it happened to read).  It must
    return the line's end, cut to max_bytes, after reading well under 1 MiB."""
    with TranscriptReader(hundred_mb_line) as reader:
        before = bytes_read()
        got = reader.tail(1)
        assert bytes_read() - before < MiB
        assert len(got) == 1
        assert got[0].endswith(b"THE-END") and len(got[0]) == reader_module.MAX_LINE_BYTES
        got = reader.tail(5, max_bytes=10)
        assert got == [b"#" * 3 + b"THE-END"]


def test_lines_of_a_100_mb_line_are_cut_with_the_true_length(hundred_mb_line: Path) -> None:
    """After indexing, lines() returns the 100 MiB line's start, cut, with its true
    length, reading only a few KiB."""
    size = hundred_mb_line.stat().st_size
    with TranscriptReader(hundred_mb_line) as reader:
        reader.refresh()
        assert reader.line_count == 1
        assert len(reader._nl_before) == size // CHECKPOINT_BYTES + 1
        before = bytes_read()
        (line,) = reader.lines(0, 5)
        assert bytes_read() - before < MiB
        assert line.length == size and line.cut
        block = bytes(b for b in range(256) if b != 10)
        assert line.data == (b"START" + block * 65)[: reader_module.MAX_LINE_BYTES]
        assert reader.line_start(1) == size


def numbered_line(i: int) -> bytes:
    """Line i of the 200 MB file: its number, then 0-96 dashes (lengths vary)."""
    return b"%09d " % i + b"-" * (i % 97)


def numbered_offset(i: int) -> int:
    """Where line i starts: closed form of the sum of the lengths of lines 0..i-1."""
    full, rest = divmod(i, 97)
    return 11 * i + full * (96 * 97 // 2) + rest * (rest - 1) // 2


@pytest.fixture(scope="module")
def numbered_200mb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    path = tmp_path_factory.mktemp("numbered") / "numbered.log"
    dashes = [b"-" * k + b"\n" for k in range(97)]
    count = 0
    with open(path, "wb") as f:
        while f.tell() < 200 * 1000 * 1000:
            f.write(
                b"".join([b"%09d " % i + dashes[i % 97] for i in range(count, count + 100_000)])
            )
            count += 100_000
    yield path, count
    path.unlink()


def test_200_mb_of_numbered_lines(numbered_200mb: tuple[Path, int]) -> None:
    """200 MB, millions of lines: line_count is exact, 50 random windows lines(n, n+3)
    hold exactly lines n..n+2, and the index has one entry per 64 KiB (no per-line
    storage)."""
    path, count = numbered_200mb
    size = path.stat().st_size
    assert size == numbered_offset(count)
    with TranscriptReader(path) as reader:
        assert reader.tail(2) == [numbered_line(count - 2), numbered_line(count - 1)]
        reader.refresh()
        assert reader.line_count == count
        assert len(reader._nl_before) == size // CHECKPOINT_BYTES + 1
        assert reader._nl_before.itemsize * len(reader._nl_before) < 64 * 1024
        rng = random.Random(200)
        for n in [0, count - 3, *(rng.randrange(count - 3) for _ in range(48))]:
            got = reader.lines(n, n + 3)
            assert got == [
                Line(i, numbered_offset(i), len(numbered_line(i)), numbered_line(i))
                for i in range(n, n + 3)
            ]
        assert reader.lines(count - 1, count + 5)[0].data == numbered_line(count - 1)
