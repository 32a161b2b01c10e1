"""TranscriptWriter and read_segments: exact bytes, stream/time sidecar, failing disks."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccx_tui.engine.transcripts.transcript import (
    RECORD,
    SIDECAR_NAME,
    STDERR,
    STDOUT,
    TRANSCRIPT_NAME,
    Segment,
    TranscriptWriter,
    read_segments,
)


def all_records(sidecar: Path) -> list[Segment]:
    raw = sidecar.read_bytes()
    return [Segment(o, t, s) for o, t, s in RECORD.iter_unpack(raw)]


def stream_at(segments: list[Segment], offset: int) -> int:
    current = segments[0]
    for seg in segments:
        if seg.offset > offset:
            break
        current = seg
    return current.stream


def test_bytes_are_exact_including_invalid_utf8_and_every_byte_value(tmp_path: Path) -> None:
    """Every byte value, invalid UTF-8, NULs and lone \\r land unchanged, in order."""
    chunks = [
        (STDOUT, bytes(range(256))),
        (STDERR, b"\xff\xfe\xc3(\xed\xa0\x80 not utf-8\n"),
        (STDOUT, b"\x00" * 10 + b"\r\r\n"),
        (STDERR, bytes(range(255, -1, -1)) * 300),
    ]
    writer = TranscriptWriter(tmp_path)
    for stream, data in chunks:
        writer.write(stream, data)
    writer.write(STDOUT, b"")
    writer.close()
    expected = b"".join(d for _, d in chunks)
    assert (tmp_path / TRANSCRIPT_NAME).read_bytes() == expected
    assert writer.offset == len(expected)
    assert writer.newlines == expected.count(b"\n")
    assert writer.last_byte == expected[-1:]
    assert writer.error is None and writer.bytes_lost == 0


def test_files_are_private(tmp_path: Path) -> None:
    """Transcripts may hold secrets: both files are created mode 0600."""
    TranscriptWriter(tmp_path).close()
    for name in (TRANSCRIPT_NAME, SIDECAR_NAME):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, oct(mode)


def test_sidecar_marks_stderr_ranges_and_arrival_times(tmp_path: Path) -> None:
    """One record per stream switch: offsets, streams and times say where stderr is."""
    before = time.time()
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, b"out 1\n")
    writer.write(STDERR, b"err 1\nerr 2\n")
    writer.write(STDOUT, b"out 2\n")
    writer.write(STDERR, b"err 3\n")
    writer.close()
    after = time.time()
    segments = read_segments(writer.sidecar_path)
    assert [(s.offset, s.stream) for s in segments] == [
        (0, STDOUT),
        (6, STDERR),
        (18, STDOUT),
        (24, STDERR),
    ]
    times = [s.time for s in segments]
    assert times == sorted(times)
    assert before <= times[0] and times[-1] <= after
    assert [(s.offset, s.stream) for s in read_segments(writer.sidecar_path, 7, 18)] == [
        (6, STDERR)
    ]
    assert [(s.offset, s.stream) for s in read_segments(writer.sidecar_path, 5, 19)] == [
        (0, STDOUT),
        (6, STDERR),
        (18, STDOUT),
    ]
    assert [(s.offset, s.stream) for s in read_segments(writer.sidecar_path, 30)] == [(24, STDERR)]


def test_same_stream_writes_share_records(tmp_path: Path) -> None:
    """Writes from one stream add a record at most every RECORD_SECONDS, so the
    sidecar stays small: 2000 quick writes make far fewer than 2000 records."""
    writer = TranscriptWriter(tmp_path)
    start = time.monotonic()
    for i in range(2000):
        writer.write(STDOUT, b"%d\n" % i)
    elapsed = time.monotonic() - start
    writer.close()
    records = all_records(writer.sidecar_path)
    assert 1 <= len(records) <= 1 + elapsed / 0.05 + 1
    assert all(r.stream == STDOUT for r in records)


def test_missing_or_empty_sidecar_means_all_stdout(tmp_path: Path) -> None:
    assert read_segments(tmp_path / "nope.bin") == [Segment(0, 0.0, STDOUT)]
    (tmp_path / SIDECAR_NAME).write_bytes(b"")
    assert read_segments(tmp_path / SIDECAR_NAME, 10, 20) == [Segment(0, 0.0, STDOUT)]


def test_torn_last_sidecar_record_is_ignored(tmp_path: Path) -> None:
    """A crash mid-record leaves a short tail in chunks.bin; readers skip it."""
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, b"a\n")
    writer.write(STDERR, b"b\n")
    writer.close()
    with open(writer.sidecar_path, "ab") as f:
        f.write(RECORD.pack(4, 1.0, STDOUT)[:7])
    assert [(s.offset, s.stream) for s in read_segments(writer.sidecar_path)] == [
        (0, STDOUT),
        (2, STDERR),
    ]


def test_reopened_writer_appends_and_continues_offsets(tmp_path: Path) -> None:
    """A restarted session appends: offsets continue and last_byte is the file's."""
    first = TranscriptWriter(tmp_path)
    first.write(STDOUT, b"run 1 partial")
    first.close()
    second = TranscriptWriter(tmp_path)
    assert second.offset == 13
    assert second.last_byte == b"l"
    second.write(STDERR, b"\nrun 2\n")
    second.close()
    assert (tmp_path / TRANSCRIPT_NAME).read_bytes() == b"run 1 partial\nrun 2\n"
    assert [(s.offset, s.stream) for s in read_segments(second.sidecar_path)] == [
        (0, STDOUT),
        (13, STDERR),
    ]


def test_reopened_writer_counts_the_newlines_already_there(tmp_path: Path) -> None:
    """Regression: a reopened writer (a restarted session) started `newlines` at 0
    while `offset` is the whole file's size, so after a restart the engine reported
    the new run's lines only (3 instead of 6 here).  Both describe the whole file
    now; a caller that knows the count can pass it and skip the scan."""
    first = TranscriptWriter(tmp_path)
    first.write(STDOUT, b"a\nb\n" + b"x" * (5 * 1024 * 1024) + b"\n")
    first.close()
    second = TranscriptWriter(tmp_path)
    assert second.newlines == 3
    second.write(STDOUT, b"d\ne\nf\n")
    second.close()
    assert second.newlines == 6
    assert second.newlines == (tmp_path / TRANSCRIPT_NAME).read_bytes().count(b"\n")
    third = TranscriptWriter(tmp_path, newlines=6)
    assert third.newlines == 6
    third.close()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(st.tuples(st.sampled_from([STDOUT, STDERR]), st.binary(max_size=40))),
    ranges=st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), max_size=10),
)
def test_segments_give_each_byte_its_stream(
    tmp_path: Path, writes: list[tuple[int, bytes]], ranges: list[tuple[int, int]]
) -> None:
    """For random writes, the sidecar's segments say which stream wrote every byte,
    and read_segments(start, stop) returns exactly the records overlapping the range
    (the one in force at `start`, then those starting before `stop`)."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    writer = TranscriptWriter(directory)
    owner: list[int] = []
    for stream, data in writes:
        writer.write(stream, data)
        owner += [stream] * len(data)
    writer.close()
    assert (directory / TRANSCRIPT_NAME).read_bytes() == b"".join(d for _, d in writes)
    full = read_segments(writer.sidecar_path)
    if owner:
        assert full == all_records(writer.sidecar_path)
    for offset, stream in enumerate(owner):
        assert stream_at(full, offset) == stream
    offsets = [s.offset for s in full]
    assert offsets == sorted(offsets)
    for start, stop in ranges:
        got = read_segments(writer.sidecar_path, start, stop)
        first = max([i for i, s in enumerate(full) if s.offset <= start], default=0)
        expected = full[first : first + 1] + [s for s in full[first + 1 :] if s.offset < stop]
        assert got == expected


def test_disk_full_keeps_an_exact_prefix_and_counts_lost_bytes(tmp_path: Path) -> None:
    """transcript.log is a symlink to /dev/full (real ENOSPC): write() does not raise,
    `error` names ENOSPC, `bytes_lost` counts every byte not kept, later writes are
    only counted."""
    (tmp_path / TRANSCRIPT_NAME).symlink_to("/dev/full")
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, b"hello\n")
    assert writer.error is not None and "ENOSPC" in writer.error
    assert writer.bytes_lost == 6
    assert writer.offset == 0 and writer.newlines == 0
    writer.write(STDERR, b"more")
    writer.write(STDOUT, b"x" * 1000)
    assert writer.bytes_lost == 1010
    assert writer.offset == 0
    writer.close()


def test_failing_sidecar_stops_the_transcript_too(tmp_path: Path) -> None:
    """If chunks.bin cannot be written, the data is not written either (the sidecar
    must describe every transcript byte); it is counted as lost."""
    (tmp_path / SIDECAR_NAME).symlink_to("/dev/full")
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, b"abc")
    writer.write(STDOUT, b"def")
    writer.close()
    assert writer.error is not None and "ENOSPC" in writer.error
    assert writer.bytes_lost == 6
    assert (tmp_path / TRANSCRIPT_NAME).read_bytes() == b""


FSIZE_CHILD = r"""
import json, resource, signal, sys
from pathlib import Path
from ccx_tui.engine.transcripts.line_index import piece_counts
from ccx_tui.engine.transcripts.transcript import TranscriptWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4500, 4500))
w = TranscriptWriter(Path(sys.argv[1]))
for i in range(10):
    data = bytes([65 + i]) * 999 + b"\n"
    counted = (w.offset, piece_counts(data, w.offset)) if sys.argv[2] == "counted" else None
    w.write(i % 2, data, counted)
w.close()
print(json.dumps({"error": w.error, "lost": w.bytes_lost, "offset": w.offset,
                  "newlines": w.newlines}))
"""


@pytest.mark.parametrize("counted", ["counted", "uncounted"])
def test_file_size_limit_mid_write_keeps_an_exact_prefix(tmp_path: Path, counted: str) -> None:
    """A write cut short by the disk (here RLIMIT_FSIZE: a short write, then EFBIG)
    leaves the transcript an exact prefix of the output; bytes_lost is the rest.  The
    newlines are those of the prefix, also when the caller counted the whole chunk's
    beforehand (the write that was cut short holds a newline it did not write)."""
    proc = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(tmp_path), counted],
        capture_output=True,
        check=True,
        timeout=60,
    )
    report = json.loads(proc.stdout)
    output = b"".join(bytes([65 + i]) * 999 + b"\n" for i in range(10))
    kept = (tmp_path / TRANSCRIPT_NAME).read_bytes()
    assert kept == output[:4500]
    assert report["offset"] == 4500
    assert report["lost"] == len(output) - 4500
    assert report["newlines"] == 4
    assert "EFBIG" in report["error"]


SIDECAR_LIMIT_CHILD = r"""
import json, resource, signal, sys
from pathlib import Path
from ccx_tui.engine.transcripts.transcript import RECORD, TranscriptWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
# Room for three sidecar records and a third of a fourth.
resource.setrlimit(resource.RLIMIT_FSIZE, (3 * RECORD.size + 6,) * 2)
w = TranscriptWriter(Path(sys.argv[1]))
for i in range(6):
    w.write(i % 2, b"%d" % i)
w.close()
print(json.dumps({"error": w.error, "lost": w.bytes_lost, "offset": w.offset}))
"""


def test_short_sidecar_write_neither_tears_records_nor_leaks_unmarked_bytes(
    tmp_path: Path,
) -> None:
    """Regression: a sidecar record cut short by a full disk was ignored, so the
    transcript byte it described was written without a record and, after a restart,
    every later record was read misaligned (garbage offsets and streams).  Now a short
    record is an error like any other (that byte is lost) and a reopened writer drops
    the torn tail, so the segments of the next run are right."""
    proc = subprocess.run(
        [sys.executable, "-c", SIDECAR_LIMIT_CHILD, str(tmp_path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    report = json.loads(proc.stdout)
    assert (tmp_path / TRANSCRIPT_NAME).read_bytes() == b"012"
    assert report["offset"] == 3 and report["lost"] == 3
    assert "EFBIG" in report["error"]
    writer = TranscriptWriter(tmp_path)
    writer.write(STDERR, b"E\n")
    writer.write(STDOUT, b"O\n")
    writer.close()
    segments = read_segments(writer.sidecar_path)
    assert [(s.offset, s.stream) for s in segments] == [
        (0, STDOUT),
        (1, STDERR),
        (2, STDOUT),
        (3, STDERR),
        (5, STDOUT),
    ]
