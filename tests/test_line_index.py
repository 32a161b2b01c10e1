"""The line index beside a transcript (line_index.py): the engine writes the newline
count at every checkpoint as it writes, and a view adopts them instead of counting a
flood's bytes a second time, only where they agree with what it counted itself."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccx_tui.engine.transcripts.line_index import (
    CHECKPOINT_BYTES,
    INDEX_NAME,
    RECORD,
    piece_counts,
)
from ccx_tui.engine.transcripts.reader import TranscriptReader
from ccx_tui.engine.transcripts.transcript import STDERR, STDOUT, TRANSCRIPT_NAME, TranscriptWriter
from ccx_tui.engine.transcripts.write_behind import WriteBehind
from ccx_tui.widgets.transcript_view import TranscriptView

CP = CHECKPOINT_BYTES


def _records(directory: Path) -> list[int]:
    raw = (directory / INDEX_NAME).read_bytes()
    return [value for (value,) in RECORD.iter_unpack(raw)]


def _scanned(data: bytes) -> list[int]:
    """What the index must hold for `data`: the newlines before each checkpoint."""
    return [data.count(b"\n", 0, (k + 1) * CP) for k in range(len(data) // CP)]


def _text(rng: random.Random, size: int) -> bytes:
    """`size` bytes with lines of random lengths (some longer than a checkpoint)."""
    out = bytearray()
    while len(out) < size:
        out += b"x" * rng.choice((0, 1, 70, 5000, 90_000)) + b"\n"
    return bytes(out[:size])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 3 * CP), min_size=1, max_size=12),
    counted=st.lists(st.sampled_from(["none", "right", "wrong"]), min_size=12, max_size=12),
    seed=st.integers(0, 1000),
)
def test_the_index_holds_what_a_scan_finds(
    tmp_path: Path, sizes: list[int], counted: list[str], seed: int
) -> None:
    """Writes of any size, counted by the writer, by a caller at the right offset, or
    by one whose offset was wrong (counted again): every checkpoint's record is the
    scan's, and the writer's line count is exact."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    rng = random.Random(seed)
    writer = TranscriptWriter(directory)
    out = bytearray()
    for size, how in zip(sizes, counted, strict=False):
        data = _text(rng, size)
        at = writer.offset if how == "right" else writer.offset + 1
        pieces = None if how == "none" else (at, piece_counts(data, at))
        writer.write(rng.choice((STDOUT, STDERR)), data, pieces)
        out += data
    writer.close()
    assert (directory / TRANSCRIPT_NAME).read_bytes() == out
    assert _records(directory) == _scanned(bytes(out))
    assert writer.newlines == out.count(b"\n")


def test_opening_again_completes_a_short_index_and_cuts_a_long_one(tmp_path: Path) -> None:
    """After a crash the index may lack its last records or end in a torn one: the
    next writer (a restart) completes it from the transcript.  A transcript cut short
    (a mirror resuming) loses the records past its end.  Either way the count of the
    whole file is exact without reading all of it."""
    rng = random.Random(3)
    first = _text(rng, 5 * CP + 123)
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, first)
    writer.close()
    index = tmp_path / INDEX_NAME
    index.write_bytes(index.read_bytes()[: RECORD.size + 3])  # one record and a torn one
    again = TranscriptWriter(tmp_path)
    assert _records(tmp_path) == _scanned(first)
    assert again.newlines == first.count(b"\n")
    more = _text(rng, 2 * CP)
    again.write(STDOUT, more)
    again.close()
    whole = first + more
    assert _records(tmp_path) == _scanned(whole)
    keep = 2 * CP + 10
    os.truncate(tmp_path / TRANSCRIPT_NAME, keep)
    cut = TranscriptWriter(tmp_path)
    cut.close()
    assert _records(tmp_path) == _scanned(whole[:keep])
    assert cut.newlines == whole[:keep].count(b"\n")


def test_a_transcript_from_before_the_index_gets_none(tmp_path: Path) -> None:
    """An index made for part of an old transcript would mislead: it gets none, and
    readers count it as any other file."""
    old = b"line\n" * (3 * CP // 5)
    (tmp_path / TRANSCRIPT_NAME).write_bytes(old)
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, b"new\n" * CP)
    writer.close()
    assert not (tmp_path / INDEX_NAME).exists()
    assert writer.newlines == old.count(b"\n") + CP


def _written(tmp_path: Path, data: bytes) -> Path:
    writer = TranscriptWriter(tmp_path)
    for start in range(0, len(data), 100_000):
        writer.write(STDOUT, data[start : start + 100_000])
    writer.close()
    return tmp_path / TRANSCRIPT_NAME


def test_a_reader_adopts_the_index_instead_of_counting(tmp_path: Path) -> None:
    """A reader given the index serves the same lines as one that counts, and takes
    the counts from the index: a newline changed in the file behind the index's back
    is not seen by the reader that adopted it (what the app then saves is the scan of
    every byte, 0.5 s of CPU per GiB)."""
    data = _text(random.Random(5), 40 * CP + 77)
    path = _written(tmp_path, data)
    with TranscriptReader(path, tmp_path / INDEX_NAME) as fast, TranscriptReader(path) as slow:
        assert fast.refresh() and slow.refresh()
        assert fast.line_count == slow.line_count == data.count(b"\n") + 1
        for start in (0, 1, 17, fast.line_count // 2, fast.line_count - 3):
            assert fast.lines(start, start + 3) == slow.lines(start, start + 3)
    middle = data.index(b"\n", 20 * CP)
    with open(path, "r+b") as f:
        f.seek(middle)
        f.write(b"x")
    with TranscriptReader(path, tmp_path / INDEX_NAME) as fast, TranscriptReader(path) as slow:
        fast.refresh()
        slow.refresh()
        assert slow.line_count == data.count(b"\n")
        assert fast.line_count == data.count(b"\n") + 1  # adopted, not counted


def test_a_reader_drops_an_index_that_disagrees_with_its_count(tmp_path: Path) -> None:
    """The part read before the index was there is counted; where the index then
    disagrees with that count, or with itself, it is dropped and the rest counted."""
    data = _text(random.Random(9), 30 * CP)
    path = _written(tmp_path, data)
    index = tmp_path / INDEX_NAME
    records = _records(tmp_path)
    for bad in (
        [records[0] + 1, *records[1:]],  # the first checkpoint: not what was counted
        [*records[:10], records[9] - 1, *records[11:]],  # going down
        [*records[:10], records[9] + CP + 1, *records[11:]],  # more newlines than bytes
    ):
        index.write_bytes(b"".join(RECORD.pack(v) for v in bad))
        with TranscriptReader(path, index) as reader, TranscriptReader(path) as counted:
            reader.refresh(CP + 5)  # counted the first checkpoint itself
            reader.refresh()
            counted.refresh()
            assert reader.line_count == counted.line_count == data.count(b"\n") + 1, bad[:12]
            for start in (0, 100, reader.line_count - 5):
                assert reader.lines(start, start + 5) == counted.lines(start, start + 5)


async def test_the_engines_writer_thread_keeps_the_index(tmp_path: Path) -> None:
    """Through WriteBehind (small chunks inline, big ones counted on the loop and
    written on the thread): the index is the scan's."""
    rng = random.Random(11)
    writer = WriteBehind(TranscriptWriter(tmp_path), asyncio.get_running_loop())
    out = bytearray()
    for _ in range(300):
        data = _text(rng, rng.choice((10, 300, 20_000, 200_000)))
        writer.write(rng.choice((STDOUT, STDERR)), data)
        out += data
        if rng.random() < 0.1:
            await asyncio.sleep(0)
    await writer.aclose()
    assert _records(tmp_path) == _scanned(bytes(out))
    assert writer.newlines == out.count(b"\n")


async def test_a_view_of_a_session_takes_the_engines_index(tmp_path: Path) -> None:
    """The view of a session's transcript (an app following a flood) adopts the
    index: the line count it shows is the index's, also where a newline was changed
    behind its back (so it did not count the file again)."""
    from tests.test_transcript_view import ViewApp, wait_for

    data = _text(random.Random(13), 20 * CP + 5)
    path = _written(tmp_path, data)
    middle = data.index(b"\n", 10 * CP)
    with open(path, "r+b") as f:
        f.seek(middle)
        f.write(b"x")
    app = ViewApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == data.count(b"\n") + 1)


SHORT_INDEX_CHILD = r"""
import resource, signal, sys
from pathlib import Path
from ccx_tui.engine.transcripts.transcript import TranscriptWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))  # two records, no more
w = TranscriptWriter(Path(sys.argv[1]))
print(w.newlines)
w.close()
"""


def test_an_index_the_disk_will_not_complete_is_left_a_correct_prefix(tmp_path: Path) -> None:
    """Completing a short index when the disk refuses (here RLIMIT_FSIZE): the writer
    goes on without it, counts the file itself, and the index stays a prefix a
    reader can adopt."""
    data = _text(random.Random(17), 5 * CP + 9)
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, data)
    writer.close()
    (tmp_path / INDEX_NAME).write_bytes(b"")  # as if every record had been lost
    proc = subprocess.run(
        [sys.executable, "-c", SHORT_INDEX_CHILD, str(tmp_path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert int(proc.stdout) == data.count(b"\n")
    assert _records(tmp_path) == _scanned(data)[:2]
    with TranscriptReader(tmp_path / TRANSCRIPT_NAME, tmp_path / INDEX_NAME) as reader:
        reader.refresh()
        assert reader.line_count == data.count(b"\n") + 1
