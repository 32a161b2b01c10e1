"""Children's exits are seen through pidfds, with no thread per child (child_watch.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

import pytest

from ccx_tui.engine.sessions import child_watch

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfds (Linux)")


async def test_many_children_exit_with_their_codes_and_no_thread_each() -> None:
    child_watch.install()
    if sys.version_info < (3, 12):
        assert isinstance(asyncio.get_child_watcher(), child_watch.PidfdWatcher)
    before = threading.active_count()
    procs = [
        await asyncio.create_subprocess_exec("sh", "-c", f"read x; exit {i}", stdin=-1)
        for i in range(20)
    ]
    sleeper = await asyncio.create_subprocess_exec("sleep", "100")
    assert threading.active_count() < before + 3  # asyncio's default: one thread each
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    codes = await asyncio.gather(*(proc.wait() for proc in procs))
    assert codes == list(range(20))
    sleeper.send_signal(signal.SIGTERM)
    assert await sleeper.wait() == -signal.SIGTERM


async def test_a_child_on_another_loop_is_watched_there() -> None:
    """The watcher is shared by every loop of the process (the engine's, a test's, a
    thread's): each child is watched on the loop that started it."""
    child_watch.install()

    async def run() -> int:
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 7")
        return await proc.wait()

    code = await asyncio.to_thread(asyncio.run, run())
    assert code == 7
    assert await run() == 7
