"""LineMux and Spool: stdout/stderr merged at line boundaries, nothing lost, memory bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccx_tui.engine.sessions.linemux import _READ, LineMux, Spool

TERMINATORS = (ord("\n"), ord("\r"))


def open_files_under(directory: Path) -> list[str]:
    """Targets of this process's open file descriptors that live in `directory`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + os.sep):
            found.append(target)
    return found


@dataclass
class Model:
    """What a test knows from outside the mux: bytes fed, bytes emitted, calls made."""

    hold_limit: int
    fed: list[bytearray] = field(default_factory=lambda: [bytearray(), bytearray()])
    emitted: list[bytearray] = field(default_factory=lambda: [bytearray(), bytearray()])
    merged: list[tuple[int, bytes]] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)
    # flush_partial() ran while nobody held the floor, after the last emit.
    released: bool = False
    in_flush_partial: bool = False

    def emit(self, stream: int, data: bytes) -> None:
        assert data, "empty emit"
        if self.merged:
            last_stream, last_data = self.merged[-1]
            if last_stream != stream and last_data[-1] not in TERMINATORS:
                assert last_stream in self.closed or self.released or self.in_flush_partial, (
                    f"stream {stream} wrote into the middle of stream {last_stream}'s line"
                )
        self.merged.append((stream, bytes(data)))
        self.emitted[stream] += data
        self.released = False

    def floor(self) -> int | None:
        """The stream whose long line is open in the output (others must wait), if any."""
        if not self.merged or self.released:
            return None
        stream, data = self.merged[-1]
        if data[-1] in TERMINATORS or stream in self.closed:
            return None
        return stream

    def unemitted(self, stream: int) -> bytes:
        return bytes(self.fed[stream][len(self.emitted[stream]) :])


def check_state(mux: LineMux, model: Model, spool_memory: int) -> None:
    """The invariants that hold whenever a LineMux call has returned."""
    for s in (0, 1):
        # (a) per stream, output is a prefix of input: nothing reordered or invented.
        assert model.fed[s].startswith(model.emitted[s])
    held = sum(len(model.unemitted(s)) for s in (0, 1))
    assert mux.held_bytes == held
    floor = model.floor()
    for s in (0, 1):
        rest = model.unemitted(s)
        # (c) memory: a partial line is held up to hold_limit bytes; beyond that it
        # is written through; other bytes wait in the spool (bounded memory, then disk).
        assert len(mux._pending[s]) <= model.hold_limit
        spool = mux._spools[s]
        assert len(spool._mem) <= spool_memory
        if floor == s:
            assert rest == b"", "the stream holding the floor writes through"
        elif floor is None:
            # Nobody holds the floor: every complete line has been written out, and
            # what is held is one partial line, short enough to hold.
            assert b"\n" not in rest and b"\r" not in rest
            assert len(rest) <= model.hold_limit
            assert len(spool) == 0
            assert mux.has_partial == bool(model.unemitted(0) or model.unemitted(1))
            if s in model.closed:
                assert rest == b""


chunk = st.lists(
    st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"x" * 20, b"\x00\xff"]),
    min_size=1,
    max_size=8,
).map(b"".join)
op = st.one_of(
    st.tuples(st.just("feed"), st.integers(0, 1), chunk),
    st.tuples(st.just("eof"), st.integers(0, 1), st.just(b"")),
    st.tuples(st.just("flush_partial"), st.just(0), st.just(b"")),
)


@pytest.mark.parametrize("spool_memory", [1024 * 1024, 8], ids=["spool-in-memory", "spool-file"])
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(op, max_size=40),
    hold_limit=st.sampled_from([1, 4, 16]),
    finish=st.sampled_from(["flush", "eof01", "eof10"]),
)
def test_random_interleavings_keep_streams_whole_and_lines_unsplit(
    tmp_path: Path,
    spool_memory: int,
    ops: list[tuple[str, int, bytes]],
    hold_limit: int,
    finish: str,
) -> None:
    """Random chunks from stdout and stderr (with \\n, \\r, lines longer than hold_limit,
    eof and flush_partial at random points), checked after every call:

    (a) per stream, the emitted bytes are a prefix of the fed bytes, and all of them
        once everything is finished: nothing lost, reordered or invented;
    (b) the merged output switches from stream A to stream B only right after A wrote
        a terminator (\\n or \\r), or once A has ended (eof/flush), or after
        flush_partial() wrote A's held partial line while no long line was open;
    (c) a stream holds at most hold_limit bytes of partial line in memory, spools hold
        at most their memory limit, and when no long line is open nothing is spooled,
        no complete line is held back and a stream that ended holds nothing.
    """
    model = Model(hold_limit)
    mux = LineMux(model.emit, hold_limit=hold_limit, spool_dir=str(tmp_path))
    # Smaller spools than the 1 MiB default, so that the temp-file path runs too.
    mux._spools = [Spool(str(tmp_path), memory_limit=spool_memory) for _ in range(2)]
    try:
        for kind, stream, data in ops:
            if kind == "feed":
                if stream in model.closed:
                    continue  # nothing arrives on a closed pipe
                model.fed[stream] += data
                mux.feed(stream, data)
            elif kind == "eof":
                if stream in model.closed:
                    continue
                model.closed.add(stream)
                mux.eof(stream)
            else:
                effective = model.floor() is None
                model.in_flush_partial = effective
                mux.flush_partial()
                model.in_flush_partial = False
                if effective:
                    model.released = True
                    assert not mux.has_partial
                    assert mux.held_bytes == 0
            check_state(mux, model, spool_memory)
        if finish == "flush":
            model.closed |= {0, 1}
            mux.flush()
        else:
            for s in (0, 1) if finish == "eof01" else (1, 0):
                if s not in model.closed:
                    model.closed.add(s)
                    mux.eof(s)
                    check_state(mux, model, spool_memory)
        assert mux.held_bytes == 0
        assert model.emitted == model.fed
    finally:
        mux.close()
    assert open_files_under(tmp_path) == []


def collect(**kwargs: Any) -> tuple[LineMux, list[tuple[int, bytes]]]:
    """A LineMux whose output is recorded as a list of (stream, bytes) writes."""
    out: list[tuple[int, bytes]] = []
    mux = LineMux(lambda s, d: out.append((s, d)), **kwargs)
    return mux, out


def test_partial_line_waits_for_its_end_while_other_stream_writes_lines() -> None:
    """A partial stdout line is held while a whole stderr line goes out first."""
    mux, out = collect()
    mux.feed(0, b"hel")
    mux.feed(1, b"err\n")
    mux.feed(0, b"lo\nwor")
    assert out == [(1, b"err\n"), (0, b"hello\n")]
    assert mux.held_bytes == 3
    mux.eof(0)
    assert out[-1] == (0, b"wor")
    assert mux.held_bytes == 0


def test_a_chunk_of_whole_lines_goes_out_as_it_came() -> None:
    """The flood case: a chunk that ends a line, with nothing held before it, is
    written as the very same object (no copy); one that ends mid-line goes out up to
    its last line end, and its rest goes out joined to the next chunk's lines in one
    write."""
    mux, out = collect()
    whole = b"line 1\nline 2\n"
    mux.feed(0, whole)
    assert out[0][1] is whole
    mux.feed(0, b"line 3\nline")
    mux.feed(0, b" 4\nline 5\nline 6")
    assert out[1:] == [(0, b"line 3\n"), (0, b"line 4\nline 5\n")]
    assert mux.held_bytes == len(b"line 6")


def test_a_carriage_return_before_the_last_newline_is_not_a_cut() -> None:
    """The last terminator is found after the last \n only: a \r earlier in the chunk
    (a progress bar that then printed lines) does not change where the line ends."""
    mux, out = collect()
    mux.feed(0, b" 50%\r100%\ndone")
    mux.feed(0, b" 10%\r 20")
    assert out == [(0, b" 50%\r100%\n"), (0, b"done 10%\r")]
    assert mux.held_bytes == 3


def test_carriage_return_ends_a_line() -> None:
    """Progress bars end their updates with \\r: the other stream may write after one."""
    mux, out = collect()
    mux.feed(0, b" 10%\r 20")
    mux.feed(1, b"warning\n")
    assert out == [(0, b" 10%\r"), (1, b"warning\n")]


def test_long_line_is_written_through_and_other_stream_waits() -> None:
    """A line over hold_limit goes out as it comes; stderr waits until it ends.  The
    chunk that ends it goes out up to its last terminator (it arrived at once), then
    stderr's spooled line, then stdout's held remainder once it ends."""
    mux, out = collect(hold_limit=4)
    mux.feed(0, b"abcdefgh")
    assert out == [(0, b"abcdefgh")]
    mux.feed(1, b"err\n")
    mux.feed(0, b"ij")
    assert out == [(0, b"abcdefgh"), (0, b"ij")]
    assert mux.held_bytes == 4
    mux.feed(0, b"k\nnext\nrest")
    assert out[2:] == [(0, b"k\nnext\n"), (1, b"err\n")]
    assert mux.held_bytes == 4
    mux.feed(0, b"\n")
    assert out[4:] == [(0, b"rest\n")]
    assert mux.held_bytes == 0


def test_eof_ends_a_long_line_and_releases_the_other_stream() -> None:
    """A long unterminated line that ends with EOF lets the spooled stream out."""
    mux, out = collect(hold_limit=2)
    mux.feed(1, b"12345")
    mux.feed(0, b"out\n")
    mux.eof(0)
    assert out == [(1, b"12345")]
    mux.eof(1)
    assert out == [(1, b"12345"), (0, b"out\n")]


def test_eof_of_the_waiting_stream_flushes_its_partial_line_later() -> None:
    """stdout closes with a partial line while stderr's long line is open: the partial
    line comes out right after the long line ends, without waiting for flush()."""
    mux, out = collect(hold_limit=2)
    mux.feed(0, b"pa")
    mux.feed(1, b"longline")
    mux.feed(0, b"rt")
    mux.eof(0)
    assert out == [(1, b"longline")]
    mux.feed(1, b"!\n")
    assert out == [(1, b"longline"), (1, b"!\n"), (0, b"part")]
    assert mux.held_bytes == 0


def test_flush_partial_writes_a_prompt_but_not_during_a_long_line() -> None:
    """flush_partial() shows a held prompt; it does nothing while a long line is open."""
    mux, out = collect(hold_limit=4)
    mux.feed(0, b"ok? ")
    assert mux.has_partial
    mux.flush_partial()
    assert out == [(0, b"ok? ")]
    assert not mux.has_partial
    mux.feed(1, b"longer-than-4")
    mux.feed(0, b"x")
    mux.flush_partial()
    assert out == [(0, b"ok? "), (1, b"longer-than-4")]
    assert mux.held_bytes == 1


def test_spool_goes_to_an_anonymous_temp_file_beyond_its_memory_limit(tmp_path: Path) -> None:
    """Spool keeps up to memory_limit bytes in memory, then moves everything to a temp
    file in spool_dir (no name in the directory); chunks() returns the bytes in order,
    at most 1 MiB at a time, and closes the file once drained."""
    spool = Spool(str(tmp_path), memory_limit=10)
    spool.append(b"01234")
    spool.append(b"56789")
    assert len(spool) == 10
    assert open_files_under(tmp_path) == []  # still in memory
    big = bytes(range(256)) * (3 * 4096 + 7)  # a bit over 3 MiB
    spool.append(b"!")
    spool.append(big)
    assert len(spool) == 11 + len(big)
    assert len(spool._mem) == 0
    assert len(open_files_under(tmp_path)) == 1
    assert os.listdir(tmp_path) == []
    chunks = list(spool.chunks())
    assert b"".join(chunks) == b"0123456789!" + big
    assert max(len(c) for c in chunks) <= _READ
    assert len(spool) == 0
    assert open_files_under(tmp_path) == []
    spool.append(b"again")  # reusable after draining, back in memory
    assert list(spool.chunks()) == [b"again"]
    spool.append(b"x" * 20)
    spool.close()
    assert len(spool) == 0
    assert open_files_under(tmp_path) == []


def test_spool_appends_while_partly_drained(tmp_path: Path) -> None:
    """Bytes appended to a file-backed spool between reads keep their order."""
    spool = Spool(str(tmp_path), memory_limit=4)
    spool.append(b"a" * _READ + b"b" * 10)
    it = spool.chunks()
    assert next(it) == b"a" * _READ
    spool.append(b"c" * 3)
    assert b"".join(it) == b"b" * 10 + b"c" * 3


def test_mux_spools_megabytes_to_disk_while_a_long_line_is_open(tmp_path: Path) -> None:
    """stderr arriving during a long stdout line is spooled in memory up to 1 MiB, then
    in a temp file in spool_dir (3 MiB here: memory holds none of it), and comes out
    whole after the line ends."""
    mux, out = collect(hold_limit=16, spool_dir=str(tmp_path))
    mux.feed(0, b"L" * 100)
    block = b"e" * 1023 + b"\n"
    for _ in range(1024):
        mux.feed(1, block)
    assert len(mux._spools[1]._mem) == 1024 * 1024
    assert open_files_under(tmp_path) == []
    for _ in range(2 * 1024):
        mux.feed(1, block)
    assert mux.held_bytes == 3 * 1024 * 1024
    assert len(open_files_under(tmp_path)) == 1
    assert sum(len(p) for p in mux._pending) + sum(len(s._mem) for s in mux._spools) == 0
    mux.feed(0, b"\n")
    assert mux.held_bytes == 0
    assert open_files_under(tmp_path) == []
    assert b"".join(d for s, d in out if s == 1) == block * 3 * 1024
    assert out[:2] == [(0, b"L" * 100), (0, b"\n")]
    mux.close()


SPOOL_LIMIT_CHILD = r"""
import json, resource, signal, sys
from ccx_tui.engine.sessions.linemux import LineMux
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
# The disk "fills up" once the spool's temp file would pass 1.5 MiB.
resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 512 * 1024,) * 2)
out = {0: bytearray(), 1: bytearray()}
mux = LineMux(lambda s, d: out[s].extend(d), hold_limit=16, spool_dir=sys.argv[1])
mux.feed(0, b"L" * 100)
block = b"e" * 1023 + b"\n"
for _ in range(3 * 1024):
    mux.feed(1, block)
mux.feed(0, b"\n")
mux.flush()
mux.close()
print(json.dumps({"out0": len(out[0]), "out1": out[1] == block * 3 * 1024}))
"""


def test_full_disk_while_spooling_loses_nothing(tmp_path: Path) -> None:
    """Regression: when the spool's temp file could not grow (disk full; here
    RLIMIT_FSIZE), Spool.append raised out of feed(), into the engine's pipe
    callback, and those bytes were lost from the transcript.  Now the mux stops
    holding the long line back instead: the other stream's bytes go out (into the
    middle of that line) and nothing is lost."""
    proc = subprocess.run(
        [sys.executable, "-c", SPOOL_LIMIT_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"out0": 101, "out1": True}
