"""Read pacing: a session that prints a line every few ms is read a few times a
second in batches, not once per line.

100 sessions printing 100 lines/s each woke the engine 10,000 times a second, one
read, one transcript write and one event per line: half a core on this work alone,
taken from the UI on a small machine.  After a small read that came soon after the
one before (a steady trickle), the reader stops watching the fd for `HOLD` seconds
and lets the kernel's buffer gather what comes meanwhile; the next read takes it all.

Never paced: a first read after a quiet spell (a prompt, an answer, the echo of a key
typed after a pause), output coming faster than `TRICKLE` (a flood is read as fast
as it comes: the buffer could fill), and output in the second after the user typed
into the session.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

HOLD = 0.05
"""Seconds a trickle waits between two reads: at most 20 reads a second."""
TRICKLE = 32 * 1024
"""Bytes per second, at most, that a trickle brings (read size over the time since
the read before).  Below it, what gathers in a hold is under 2 KiB: it never fills a
terminal's buffer (4 KiB or more) or a pipe's, so a hold never stops a writer.  A
flood that starts during a hold is at most one hold late: the read after it finds
a full buffer (over 80 KiB/s) and the reads go on unpaced."""
TYPED_QUIET = 1.0
"""Seconds after the user typed into the session during which nothing is paced."""


class ReadPacer:
    """Holds one fd's reads back while its output trickles in (see the module).

    The owner calls `after_read(size)` after each read that got data.  When the
    pacer holds, it calls `stop()` at once and `start()` after `HOLD` seconds,
    unless `cancel()` (the owner paused or closed the fd) or `release()` (read now:
    the user typed) came first.  Use on the event loop only.
    """

    def __init__(
        self,
        start: Callable[[], None],
        stop: Callable[[], object],
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock`: the time reads are judged by (the loop's; tests give their own)."""
        self._loop = asyncio.get_running_loop()
        self._clock = clock or self._loop.time
        self._start = start
        self._stop = stop
        self._last = -math.inf  # when the last read got data
        self._typed = -math.inf  # when the user last typed
        self._timer: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        """The fd is unwatched until the hold ends."""
        return self._timer is not None

    def quiet_for(self, seconds: float) -> bool:
        """No read got data in the last `seconds`."""
        return self._clock() - self._last >= seconds

    def after_read(self, size: int, *, allowed: bool = True) -> None:
        """A read got `size` bytes; hold the next one back if this is a trickle
        (`allowed`: the owner's own conditions for pacing hold)."""
        now = self._clock()
        since, self._last = now - self._last, now
        if (
            allowed
            and self._timer is None
            and since < 2 * HOLD  # steady: not the first read after a quiet spell
            and size < TRICKLE * since
            and now - self._typed >= TYPED_QUIET
        ):
            self._stop()
            self._timer = self._loop.call_later(HOLD, self._end)

    def typed(self) -> None:
        """The user typed into the session: its echo is read at once, and nothing is
        paced for a while."""
        self._typed = self._clock()
        self.release()

    def release(self) -> None:
        """End a hold now (the fd is watched again)."""
        if self._timer is not None:
            self._timer.cancel()
            self._end()

    def cancel(self) -> None:
        """Forget a hold without watching the fd again (the owner stopped reading)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def unwatch(self) -> None:
        """The owner stops reading the fd it watches: a hold is forgotten (the fd is
        unwatched already), else the fd is unwatched now."""
        if self._timer is not None:
            self.cancel()
        else:
            self._stop()

    def _end(self) -> None:
        self._timer = None
        self._start()
