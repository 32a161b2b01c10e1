"""save_transcript: exact bytes, only the chosen lines, and nothing half-written on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ccx_tui.engine.transcripts.export import save_transcript
from ccx_tui.errors import ExportError

CONTENT = b"one\n\x1b[31mtwo\x1b[0m\nbad \xff byte\n\nlast without newline"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "transcript.log"
    path.write_bytes(CONTENT)
    return path


def test_whole_transcript_is_copied_byte_for_byte(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out.log"
    assert save_transcript(source, dest) == len(CONTENT)
    assert dest.read_bytes() == CONTENT


def test_chosen_lines_keep_their_bytes_and_get_newlines(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "some.log"
    save_transcript(source, dest, lines=[1, 2, 4])
    assert dest.read_bytes() == b"\x1b[31mtwo\x1b[0m\nbad \xff byte\nlast without newline\n"


def test_lines_past_the_end_are_ignored(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "some.log"
    save_transcript(source, dest, lines=[0, 99])
    assert dest.read_bytes() == b"one\n"


def test_a_long_line_is_copied_whole(tmp_path: Path) -> None:
    """Guards against cutting lines at the display limit: a saved line is the whole line."""
    source = tmp_path / "long.log"
    long_line = b"x" * (9 * 1024 * 1024)
    source.write_bytes(b"a\n" + long_line + b"\nb\n")
    dest = tmp_path / "out.log"
    save_transcript(source, dest, lines=[1])
    assert dest.read_bytes() == long_line + b"\n"


def test_bad_destinations_are_refused_clearly(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such directory"):
        save_transcript(source, tmp_path / "missing" / "out.log")
    with pytest.raises(ExportError, match="is a directory"):
        save_transcript(source, tmp_path)
    with pytest.raises(ExportError, match="no such file"):
        save_transcript(tmp_path / "gone.log", tmp_path / "out.log")


def test_a_full_disk_leaves_no_half_written_file(source: Path, tmp_path: Path) -> None:
    """/dev/full fails every write with ENOSPC: the error names it, the old file stays."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    link_dir = tmp_path / "full"
    link_dir.mkdir()
    dest = link_dir / "out.log"
    dest.write_bytes(b"previous")
    partial = link_dir / ".out.log.part"
    partial.symlink_to("/dev/full")  # the copy is written here first
    with pytest.raises(ExportError, match="ENOSPC"):
        save_transcript(source, dest)
    assert dest.read_bytes() == b"previous"
    assert not partial.exists() and not partial.is_symlink()


def test_an_existing_file_is_replaced_whole(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out.log"
    dest.write_bytes(b"x" * 10_000)
    save_transcript(source, dest)
    assert dest.read_bytes() == CONTENT


def test_cancel_keeps_the_destination_untouched(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out.log"
    with pytest.raises(ExportError, match="cancelled"):
        save_transcript(source, dest, cancelled=lambda: True)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [source]
