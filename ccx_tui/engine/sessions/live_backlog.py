"""What one reader of a session has yet to get of the output its transcript lost.

A reader of a transcript (a server's sender, a view) reads what the disk kept from
the disk.  Once the transcript stops (a full disk), the rest exists only in memory:
the reader's `OutputTap` (engine/tap.py) feeds a `LiveBacklog`, which keeps the chunks
the disk has not got, the oldest dropped past a window so that a reader that falls
behind costs bounded memory.  The reader then takes contiguous runs of bytes from
it; where its position falls into bytes neither the disk nor the window has, the run
starts later and the reader states the loss.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ccx_tui.engine.sessions.tap import Chunk

FULL_DISK = ("ENOSPC", "EDQUOT")


class LiveBacklog:
    """Chunks of live output past what the disk kept, at most about `window` bytes."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._chunks: deque[Chunk] = deque()
        self._size = 0

    def __bool__(self) -> bool:
        return bool(self._chunks)

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._size

    def chunks(self) -> tuple[Chunk, ...]:
        """The chunks held, oldest first."""
        return tuple(self._chunks)

    def add(self, chunks: Iterable[Chunk], kept: int) -> None:
        """Take `chunks` from a tap; forget what the disk holds (below `kept`), and the
        oldest chunks past the window (never the newest)."""
        for chunk in chunks:
            self._chunks.append(chunk)
            self._size += len(chunk.data)
        self.drop_below(kept)
        while self._size > self.window and len(self._chunks) > 1:
            self._size -= len(self._chunks.popleft().data)

    def drop_below(self, offset: int) -> None:
        """Forget every chunk that ends at or before `offset`."""
        while self._chunks and _end(self._chunks[0]) <= offset:
            self._size -= len(self._chunks.popleft().data)

    def take(self, pos: int, limit: int, max_chunks: int) -> tuple[int, list[Chunk]]:
        """The next run of bytes at or after `pos`: (its offset, its chunks).

        The run is contiguous, about `limit` bytes at most (at least one chunk, at
        most `max_chunks`), its first chunk cut to start at `pos` if it straddles it.
        Its offset is past `pos` where neither the disk nor this window has the bytes
        in between.  (pos, []) when nothing past `pos` is held.
        """
        self.drop_below(pos)
        if not self._chunks:
            return pos, []
        first = self._chunks[0]
        start = max(pos, first.offset)
        taken: list[Chunk] = []
        end = start
        while self._chunks and len(taken) < max_chunks:
            chunk = self._chunks[0]
            if chunk.offset > end or (taken and end - start + len(chunk.data) > limit):
                break  # a gap (the next run starts there), or enough for one run
            self._chunks.popleft()
            self._size -= len(chunk.data)
            if chunk.offset < end:  # straddles `pos`: only its unsent part
                chunk = Chunk(end, chunk.stream, chunk.data[end - chunk.offset :])
            taken.append(chunk)
            end = _end(chunk)
        return start, taken


def disk_full(write_error: str | None) -> bool:
    """Whether a transcript's write error says its disk (or quota) is full."""
    return write_error is not None and any(name in write_error for name in FULL_DISK)


def loss_reason(write_error: str | None) -> str:
    """Why bytes a server's transcript did not keep are gone, for its client."""
    if write_error is None or disk_full(write_error):
        return "the server's disk is full"
    return f"the server could not write its transcript: {write_error}"


def _end(chunk: Chunk) -> int:
    return chunk.offset + len(chunk.data)
