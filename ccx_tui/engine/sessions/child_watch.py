"""Child exits seen through pidfds, not through a thread per child (Python 3.11).

asyncio on Python 3.11 waits for each subprocess in a thread of its own (its default
`ThreadedChildWatcher`): an engine running 100 sessions on pipes held 104 threads, some
2 MB of memory.  Python 3.12 watches them through pidfds itself; `install` gives 3.11
the same (Linux 5.3+; elsewhere asyncio's default stays).  The watcher is not tied to
a loop: each child is watched on the loop that started it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any

_installed = False


def install() -> None:
    """Watch asyncio's subprocesses through pidfds from now on, where that is needed
    and possible (once per process; cheap to call again)."""
    global _installed
    if _installed:
        return
    _installed = True
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an older kernel, or a sandbox that refuses it
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(PidfdWatcher())


class PidfdWatcher(asyncio.AbstractChildWatcher):
    """asyncio's child watcher interface, each child watched through its pidfd on the
    loop that runs when it is added (Python 3.12's own does the same)."""

    def add_child_handler(  # type: ignore[override]
        self, pid: int, callback: Callable[..., object], *args: Any
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # reaped by someone else already: as asyncio says
            loop.call_soon(callback, pid, 255, *args)
            return
        loop.add_reader(pidfd, self._exited, loop, pid, pidfd, callback, args)

    @staticmethod
    def _exited(
        loop: asyncio.AbstractEventLoop,
        pid: int,
        pidfd: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        loop.remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped elsewhere
            code = 255
        else:
            code = os.waitstatus_to_exitcode(status)
        finally:
            os.close(pidfd)
        callback(pid, code, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return True  # asyncio never calls it; the reader goes when the child exits

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass  # each child is watched on its own loop

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __enter__(self) -> PidfdWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pass
