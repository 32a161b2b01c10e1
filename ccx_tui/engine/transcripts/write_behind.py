"""Transcript writes off the event loop: a writer thread per busy session, with
back-pressure on the process's pipes when the disk falls behind.

A session that prints a little is written inline (one small `write()` costs less than a
hand-over to a thread).  Once a chunk is big, or writes are already queued, bytes go to
the session's writer thread, in order; the event loop only reads the pipes.  The loop
sees what is on disk through `offset`, `newlines`, `error` and `bytes_lost`, updated
after the thread writes a chunk (`on_written` is called then, on the loop; one call at
a time is pending, so a flood costs one wake-up per chunk at most).  When more than
`HIGH_WATER` bytes wait, `pause()` is called (stop reading the pipes: the process
blocks on a full pipe, like `cmd > file` on a slow disk), and `resume()` once the
backlog is under `LOW_WATER`, as the thread takes the chunk that gets it there: the
pipes refill the queue while that chunk is written, and the thread never runs dry in
a flood.  A source that cannot pause is bounded too: past `HARD_LIMIT` queued bytes,
`write` waits for the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from ccx_tui.engine.transcripts.line_index import piece_counts
from ccx_tui.engine.transcripts.transcript import TranscriptWriter

INLINE_MAX = 16 * 1024
"""A chunk this small, with nothing queued, is written at once on the loop."""
HIGH_WATER = 2 * 1024 * 1024
LOW_WATER = 512 * 1024
HARD_LIMIT = 32 * 1024 * 1024


class WriteBehind:
    """Writes a session's output to its `TranscriptWriter`, mostly on a thread.

    Use from the event loop only (`write`, `aclose`); the thread is internal.
    """

    def __init__(
        self,
        writer: TranscriptWriter,
        loop: asyncio.AbstractEventLoop,
        *,
        on_written: Callable[[], None] = lambda: None,
        pause: Callable[[], None] | None = None,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self._writer = writer
        self._loop = loop
        self._on_written = on_written
        self.pause = pause
        """Stop reading the source (set once it exists); None: it cannot pause."""
        self.resume = resume
        self.offset = writer.offset
        self.newlines = writer.newlines
        self.error: str | None = writer.error
        self.bytes_lost = writer.bytes_lost
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, bytes, int, list[int]]] = deque()
        self._end = writer.offset  # where the next byte lands, if the disk keeps all
        self._queued = 0  # bytes queued, not yet taken by the thread (guarded by _cond)
        self._busy = False  # the thread is writing a chunk (guarded by _cond)
        self._publish_pending = False  # _published is scheduled (guarded by _cond)
        self._closing = False
        self._paused = False
        self.pauses = 0
        """How many times the source was paused for the disk (for tests and benchmarks)."""
        self._thread: threading.Thread | None = None
        # What the thread last wrote up to: (offset, newlines, error, bytes_lost).
        self._snap = (self.offset, self.newlines, self.error, self.bytes_lost)

    @property
    def backlog(self) -> int:
        """Bytes waiting to be written (besides the chunk being written)."""
        with self._cond:
            return self._queued

    def write(self, stream: int, data: bytes) -> None:
        """Append `data` from `stream` (never raises; disk errors land in `error`)."""
        if not data:
            return
        at = self._end  # only the loop moves it
        self._end += len(data)
        # Counted here, on the loop, which waits for the pipes most of the time: the
        # thread then only waits for the disk, and a flood goes as fast as the slower
        # of the two instead of the sum of both.  Counted per checkpoint of the line
        # index (see line_index.py), and before taking the lock the thread needs.
        pieces = piece_counts(data, at) if len(data) > INLINE_MAX else None
        with self._cond:
            idle = not self._queue and not self._busy
            if pieces is None:
                if idle:
                    self._writer.write(stream, data)  # nothing in flight: order is kept
                    self._mirror()
                    return
                pieces = piece_counts(data, at)  # small: under the lock is fine
            self._queue.append((stream, data, at, pieces))
            self._queued += len(data)
            queued = self._queued
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ccx-transcript-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        if queued > HIGH_WATER and not self._paused and self.pause is not None:
            self._paused = True
            self.pauses += 1
            self.pause()
        elif queued > HARD_LIMIT:
            with self._cond:  # a source that cannot pause: wait for the disk
                while self._queued > HIGH_WATER:
                    self._cond.wait()

    async def aclose(self) -> None:
        """Write everything queued, stop the thread and close the transcript.

        Cancelling it is safe: the thread still writes what was queued.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        try:
            if thread is not None:
                await asyncio.shield(asyncio.to_thread(thread.join))
        finally:
            if thread is not None:
                thread.join()  # cancelled meanwhile: the rest is quick (bounded backlog)
            self._mirror()
            self._writer.close()

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        writer = self._writer
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                stream, data, at, pieces = self._queue.popleft()
                self._busy = True
                before = self._queued
                self._queued -= len(data)
                # The source resumes while this chunk is being written, not after:
                # it refills the queue before the thread runs dry.
                publish = before >= LOW_WATER > self._queued and self._publish_now()
                self._cond.notify_all()  # a source at the hard limit may go on
            if publish:
                self._schedule_publish()
            writer.write(stream, data, (at, pieces))
            with self._cond:
                self._snap = (writer.offset, writer.newlines, writer.error, writer.bytes_lost)
                self._busy = False
                publish = self._publish_now()
                self._cond.notify_all()
            if publish:
                self._schedule_publish()

    def _publish_now(self) -> bool:
        """Whether to tell the loop (one call pending at a time; under `_cond`)."""
        if self._publish_pending:
            return False
        self._publish_pending = True
        return True

    def _schedule_publish(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._published)
        except RuntimeError:  # the loop is closed: nobody is watching any more
            pass

    # -- on the loop --------------------------------------------------------------------

    def _mirror(self) -> None:
        writer = self._writer
        self.offset, self.newlines = writer.offset, writer.newlines
        self.error, self.bytes_lost = writer.error, writer.bytes_lost

    def _published(self) -> None:
        with self._cond:
            self._publish_pending = False
            offset, newlines, error, lost = self._snap
            if offset >= self.offset:  # an inline write may have gone further since
                self.offset, self.newlines = offset, newlines
                self.error, self.bytes_lost = error, lost
            backlog = self._queued
        if self._paused and backlog < LOW_WATER:
            self._paused = False
            if self.resume is not None:
                self.resume()
        self._on_written()
