"""Save a transcript, or some of its lines, to another file (no Textual; blocking I/O)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ccx_tui.engine.transcripts.plain import PlainStream, plain_bytes
from ccx_tui.engine.transcripts.reader import TranscriptReader
from ccx_tui.errors import ExportError

COPY_BLOCK = 4 * 1024 * 1024


def save_transcript(
    source: Path,
    dest: Path,
    *,
    lines: Sequence[int] | None = None,
    plain: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Copy `source` (as it is now) or only its `lines` (0-based, ascending) to `dest`.

    Bytes are copied exactly (colour codes and invalid UTF-8 included), each line with
    its newline; or, with `plain`, each line as a terminal finally shows it, as
    `plain.plain_text` makes it: escape sequences removed, a line rewritten with ``\r``
    reduced to its last state, backspaces applied, other controls but tab removed,
    invalid UTF-8 as U+FFFD, and ``\n`` line ends (CRLF is one line end; the last line
    gets one too).  Either way the file is read in blocks of `COPY_BLOCK` bytes: a line
    longer than a block is made plain piece by piece (`plain.PlainStream`, where a
    backspace cannot reach back over a piece's start), so memory stays bounded for any
    size of transcript and line.

    The copy is written beside `dest` and renamed over it at the end, so a full disk or
    a cancel never leaves a half-written `dest`.  Returns the bytes written; raises
    ExportError with the reason.
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
            if plain:
                written = _plain_transcript(reader, out.fileno(), lines, cancelled)
            elif lines is None:
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


def _plain_transcript(
    reader: TranscriptReader,
    fd: int,
    lines: Sequence[int] | None,
    cancelled: Callable[[], bool],
) -> int:
    if lines is None:
        return _plain_range(reader.fileno(), fd, 0, reader.file_size(), cancelled)
    reader.refresh()
    count = reader.line_count
    written = 0
    # Runs of consecutive lines are one byte range each: read in blocks, not by line.
    i, total = 0, len(lines)
    while i < total and lines[i] < count and not cancelled():
        first = last = lines[i]
        i += 1
        while i < total and lines[i] == last + 1 and last + 1 < count:
            last = lines[i]
            i += 1
        start = reader.line_start(first)
        end = reader.line_start(last + 1) if last + 1 < count else reader.indexed_size
        written += _plain_range(reader.fileno(), fd, start, end, cancelled)
    return written


def _plain_range(src: int, fd: int, start: int, end: int, cancelled: Callable[[], bool]) -> int:
    """The lines in bytes [start, end) of `src` as plain text; `end` is a line's start
    or the end of the data (an unterminated last line gets a newline)."""
    written = 0
    pos = start
    while pos < end and not cancelled():
        want = min(COPY_BLOCK, end - pos)
        block = os.pread(src, want, pos)
        if len(block) < want:  # the file shrank: what is left is all there is
            end = pos + len(block)
            if not block:
                break
        if pos + len(block) >= end:
            cut = len(block)
        else:
            cut = block.rfind(b"\n") + 1
            if not cut:  # a line longer than a block starts here
                count, pos = _plain_long_line(src, fd, pos, end, cancelled)
                written += count
                continue
        out = plain_bytes(block[:cut] if cut < len(block) else block)
        if pos + cut >= end and not block.endswith(b"\n"):
            out += b"\n"
        _write_all(fd, out)
        written += len(out)
        pos += cut
    return written


def _plain_long_line(
    src: int, fd: int, start: int, end: int, cancelled: Callable[[], bool]
) -> tuple[int, int]:
    """The line at `start` (longer than a block, ending by `end`) as plain text.

    Two passes, a block at a time: find the line's end and its last ``\r`` before any
    trailing ones (only what follows it is shown), then convert that part in pieces.
    Returns the bytes written and where the next line starts.
    """
    pos, after = start, end
    content_end = start  # just after the last byte that is not a trailing \r
    last_cr = shown_from = -1
    while pos < end and not cancelled():
        block = os.pread(src, min(COPY_BLOCK, end - pos), pos)
        if not block:
            after = pos
            break
        newline = block.find(b"\n")
        part = block if newline < 0 else block[:newline]
        body = part.rstrip(b"\r")
        if body:
            cr = body.rfind(b"\r")
            shown_from = pos + cr if cr >= 0 else last_cr
            content_end = pos + len(body)
        cr = part.rfind(b"\r")
        if cr >= 0:
            last_cr = pos + cr
        if newline >= 0:
            after = pos + newline + 1
            break
        pos += len(block)
    stream = PlainStream()
    written = 0
    pos = max(start, shown_from + 1)
    while pos < content_end and not cancelled():
        block = os.pread(src, min(COPY_BLOCK, content_end - pos), pos)
        if not block:
            break
        pos += len(block)
        out = stream.feed(block).encode("utf-8")
        _write_all(fd, out)
        written += len(out)
    out = stream.feed(b"", final=True).encode("utf-8") + b"\n"
    _write_all(fd, out)
    return written + len(out), after


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
