"""Save a transcript, or some of its lines, to another file (no Textual; blocking I/O)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ccx_tui.engine.reader import TranscriptReader
from ccx_tui.errors import ExportError

COPY_BLOCK = 4 * 1024 * 1024


def save_transcript(
    source: Path,
    dest: Path,
    *,
    lines: Sequence[int] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Copy `source` (as it is now) or only its `lines` (0-based, ascending) to `dest`.

    Bytes are copied exactly (colour codes and invalid UTF-8 included), each line with
    its newline.  The copy is written beside `dest` and renamed over it at the end, so
    a full disk or a cancel never leaves a half-written `dest`.  Returns the bytes
    written; raises ExportError with the reason.
    """
    dest = dest.expanduser()
    if dest.is_dir():
        raise ExportError(f"{dest} is a directory")
    if not dest.parent.is_dir():
        raise ExportError(f"no such directory: {dest.parent}")
    try:
        reader = TranscriptReader(source)
    except Exception as exc:  # TranscriptError: say it as an export error
        raise ExportError(str(exc)) from None
    partial = dest.with_name(f".{dest.name}.part")
    try:
        with reader, open(partial, "wb") as out:
            if lines is None:
                written = _copy_range(reader, out.fileno(), 0, reader.file_size(), cancelled)
            else:
                written = _copy_lines(reader, out.fileno(), lines, cancelled)
        if cancelled():
            raise ExportError("cancelled")
        os.replace(partial, dest)
    except OSError as exc:
        _remove(partial)
        name = errno.errorcode.get(exc.errno or 0, "error")
        raise ExportError(f"cannot write {dest} ({name}): {exc.strerror or exc}") from None
    except BaseException:
        _remove(partial)
        raise
    return written


def _copy_range(
    reader: TranscriptReader, fd: int, start: int, end: int, cancelled: Callable[[], bool]
) -> int:
    src = reader.fileno()
    pos = start
    while pos < end and not cancelled():
        block = os.pread(src, min(COPY_BLOCK, end - pos), pos)
        if not block:
            break
        _write_all(fd, block)
        pos += len(block)
    return pos - start


def _copy_lines(
    reader: TranscriptReader, fd: int, lines: Sequence[int], cancelled: Callable[[], bool]
) -> int:
    reader.refresh()
    count = reader.line_count
    written = 0
    for i, number in enumerate(lines):
        if number >= count or (i % 1024 == 0 and cancelled()):
            break
        start = reader.line_start(number)
        end = reader.line_start(number + 1) if number + 1 < count else reader.indexed_size
        written += _copy_range(reader, fd, start, end, cancelled)
        if number + 1 >= count and reader.last_byte != b"\n":
            _write_all(fd, b"\n")  # the unterminated last line gets one too
            written += 1
    return written


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
