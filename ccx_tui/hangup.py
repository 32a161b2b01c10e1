"""Losing the terminal: the app's process ends within seconds, whatever its loop is doing.

When the terminal goes away (a closed window, `tmux kill-server`), the kernel sends
SIGHUP and then SIGCONT to the foreground process group.  Round 1 handled SIGHUP on
the event loop; but Textual's own SIGCONT handler then restarts application mode
(a second input thread, a new writer), and any write to the dead terminal can leave
the main thread blocked for good on the writer's full queue, so the loop never ran
the handler: the process stayed, its input thread spinning on the deleted tty.

So the hangup is handled by a plain signal handler (it runs in the main thread even
while that thread waits on a lock), which ignores the SIGCONT that follows, asks the
loop to stop politely, and starts a watchdog thread that does the last resort itself:
SIGKILL every session's tree and end the process.  If the loop does not take the
request within a second it is blocked, and the watchdog acts at once; otherwise it
gives the polite stop (TERM, grace, KILL) the grace period plus two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

EXIT_HANGUP = 128 + signal.SIGHUP
ACK_TIMEOUT = 1.0
"""How long the event loop has to take the hangup before it is taken to be blocked."""
SPARE = 2.0
"""Seconds beyond the kill grace the polite stop may take before the watchdog acts."""

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class HangupGuard:
    """Installs the SIGHUP/SIGCONT handlers; see the module docstring.

    `stop_politely` runs on the loop (it should kill the sessions, TERM, grace,
    KILL, and exit the process); `kill_now` runs on the watchdog thread (SIGKILL
    every session's tree, synchronously) just before the process ends.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        stop_politely: Callable[[], None],
        kill_now: Callable[[], None],
        grace: float,
        exit_process: Callable[[int], None] = os._exit,
    ) -> None:
        self._loop = loop
        self._stop_politely = stop_politely
        self._kill_now = kill_now
        self._grace = grace
        self._exit = exit_process
        self._lost = threading.Event()
        self._taken = threading.Event()
        self._previous_cont: _Handler = None

    @property
    def lost(self) -> bool:
        """True once the terminal is gone."""
        return self._lost.is_set()

    def install(self) -> None:
        """Take SIGHUP, and wrap whatever handles SIGCONT now (Textual's driver)."""
        self._previous_cont = signal.getsignal(signal.SIGCONT)
        signal.signal(signal.SIGHUP, self._on_hangup)
        signal.signal(signal.SIGCONT, self._on_continue)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        if self._lost.is_set():
            return
        self._lost.set()
        threading.Thread(target=self._watchdog, name="ccx-hangup", daemon=True).start()
        with contextlib.suppress(RuntimeError):  # the loop is closed: the watchdog acts
            self._loop.call_soon_threadsafe(self._take)

    def _take(self) -> None:
        self._taken.set()
        self._stop_politely()

    def _on_continue(self, signum: int, frame: FrameType | None) -> None:
        if self._lost.is_set():
            return  # the SIGCONT that comes with a hangup: no terminal to resume on
        previous = self._previous_cont
        if callable(previous):
            previous(signum, frame)

    def _watchdog(self) -> None:
        if self._taken.wait(ACK_TIMEOUT):
            time.sleep(self._grace + SPARE)
        try:
            self._kill_now()
        finally:
            self._exit(EXIT_HANGUP)
