"""Spawning one session's process and killing its whole tree.

A child runs in a new session (so its own process group) with stdin from /dev/null
and both pipes drained on the event loop by a `PipeReader`.  Every child carries the
environment variable `MARKER_ENV` naming its session run, so descendants that left the
group (`setsid`, double forks) are still found and killed.  ccx-tui's own secrets
(`SECRET_ENV` and whatever the caller adds) never reach a child: they are removed from
the inherited environment (a session's own declared env may still set them).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from ccx_tui.engine.sessions import child_watch
from ccx_tui.engine.sessions.env_names import MARKER_ENV as MARKER_ENV
from ccx_tui.engine.sessions.env_names import SECRET_ENV as SECRET_ENV
from ccx_tui.engine.sessions.pacing import ReadPacer

if TYPE_CHECKING:  # psutil loads when a tree is first searched, not for every `exec`
    import psutil

PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
READ_SIZE = PIPE_SIZE
"""Most bytes one read takes from a pipe: all a full pipe holds."""
MIXED_QUIET = 1.0
"""Seconds the other pipe must have been quiet for a trickle to be paced."""


class ExitProtocol(asyncio.SubprocessProtocol):
    """Tracks the process's exit (its output pipes are read by a `PipeReader`)."""

    def __init__(self) -> None:
        self.exited = asyncio.get_running_loop().create_future()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


MALLOC_PRIME = 8 * 1024 * 1024
_primed = False


def _keep_freed_buffers() -> None:
    """Let the C allocator reuse freed pipe-sized buffers instead of handing them back
    to the system.  glibc returns freed memory at the top of its heap once more than
    its trim threshold is free, and every chunk read afterwards faults in fresh zeroed
    pages: in a flood, a third of all the bytes read.  A freed mmap'd block raises
    glibc's mmap threshold to its size and the trim threshold to twice that (the
    "dynamic mmap threshold" of mallopt(3)), so one block of `MALLOC_PRIME` bytes,
    allocated and freed once, lets the heap keep the few MiB that chunks in flight
    take.  Elsewhere this is one harmless allocation."""
    global _primed
    if not _primed:
        _primed = True
        block = bytes(MALLOC_PRIME)  # calloc'd from fresh mmap'd pages: none touched
        del block


class PipeReader:
    """Reads a child's stdout and stderr pipes on the event loop, for `on_data(stream,
    bytes)` (0 stdout, 1 stderr) and `on_eof(stream)`.

    asyncio's own pipe transports read at most 256 KiB at a time and go through two
    protocol layers per chunk; here each wake-up reads up to a whole (1 MiB) pipe in
    one `read`: a flood costs fewer wake-ups, chunks and writes downstream.  A
    trickle on one pipe is paced (pacing.py).  Use on the event loop only.
    """

    def __init__(
        self,
        fds: list[int],
        on_data: Callable[[int, bytes], None],
        on_eof: Callable[[int], None],
    ) -> None:
        """Take ownership of `fds` (the read ends, by stream); start reading."""
        self._loop = asyncio.get_running_loop()
        self._fds: dict[int, int] = dict(enumerate(fds))
        self._on_data = on_data
        self._on_eof = on_eof
        self._paused = False
        # Streams watched again after a hold and not read since: what they hold was most
        # likely written before what the other stream has now, as during the hold.
        self._released: set[int] = set()
        self._pacers = {stream: self._pacer(stream, fd) for stream, fd in self._fds.items()}
        _keep_freed_buffers()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        """Done once every pipe reached EOF (or was closed)."""
        for stream, fd in self._fds.items():
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._ready, stream)

    def _pacer(self, stream: int, fd: int) -> ReadPacer:
        def start() -> None:
            if not self._paused and stream in self._fds:
                self._released.add(stream)
                self._loop.add_reader(fd, self._ready, stream)

        return ReadPacer(start, lambda: self._loop.remove_reader(fd))

    def _may_pace(self, stream: int) -> bool:
        """Pace a stream only while the other is quiet: stdout and stderr lines
        alternating are read as they come, in the order they come."""
        other = self._pacers.get(1 - stream)
        return not self._paused and (
            other is None or 1 - stream not in self._fds or other.quiet_for(MIXED_QUIET)
        )

    def _ready(self, stream: int) -> None:
        fd = self._fds.get(stream)
        if fd is None:
            return
        self._released.discard(stream)
        other = self._pacers.get(1 - stream)
        if other is not None and (other.holding or 1 - stream in self._released):
            # What the other pipe held back was most likely written first (its hold may
            # have just ended: both pipes ready at once come in the selector's order).
            other.release()
            self._ready(1 - stream)
            if self._paused or stream not in self._fds:
                return
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # not expected from a pipe: treat it as its end
            data = b""
        if data:
            # Before `on_data`, which may pause or close this reader: that ends a hold.
            self._pacers[stream].after_read(len(data), allowed=self._may_pace(stream))
            self._on_data(stream, data)
        else:
            self._close(stream)

    def _close(self, stream: int) -> None:
        fd = self._fds.pop(stream, None)
        if fd is None:
            return
        if not self._paused:  # (pausing unwatched it)
            self._pacers[stream].unwatch()
        os.close(fd)
        try:
            self._on_eof(stream)
        finally:
            if not self._fds and not self.closed.done():
                self.closed.set_result(None)

    def pause(self) -> None:
        """Stop reading (the process blocks once a pipe is full)."""
        if not self._paused:
            self._paused = True
            for stream in self._fds:
                self._pacers[stream].unwatch()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            for stream, fd in self._fds.items():
                self._loop.add_reader(fd, self._ready, stream)

    def close(self) -> None:
        """Stop for good: close the pipes still open, each with its `on_eof`."""
        for stream in list(self._fds):
            self._close(stream)


def _output_pipes() -> tuple[list[int], list[int]]:
    """(read ends, write ends) of two fresh pipes, as big as the system allows."""
    reads: list[int] = []
    writes: list[int] = []
    try:
        for _ in range(2):
            r, w = os.pipe()  # not inheritable: only the child's dup2'd copies are
            reads.append(r)
            writes.append(w)
            with contextlib.suppress(OSError):  # bigger pipes mean fewer wake-ups
                fcntl.fcntl(r, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        for fd in reads + writes:
            os.close(fd)
        raise
    return reads, writes


async def spawn(
    argv: list[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    marker: str,
    on_data: Callable[[int, bytes], None],
    on_eof: Callable[[int], None],
    scrub: frozenset[str] = SECRET_ENV,
    base: Mapping[str, str] | None = None,
) -> tuple[asyncio.SubprocessTransport, ExitProtocol, PipeReader]:
    """Start `argv` in its own session; raises OSError if it cannot be started.

    Its output goes to `on_data(stream, bytes)` (0 stdout, 1 stderr) and `on_eof`.
    The child inherits `base` (default: our environment) minus `scrub` and
    `SECRET_ENV`, plus `env`.
    """
    full_env = child_env(env, scrub, base)
    full_env[MARKER_ENV] = marker
    loop = asyncio.get_running_loop()
    child_watch.install()  # no thread per child (Python 3.11)
    reads, writes = _output_pipes()
    try:
        transport, proto = await loop.subprocess_exec(
            ExitProtocol,
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=writes[0],
            stderr=writes[1],
            cwd=cwd,
            env=full_env,
            start_new_session=True,
        )
    except BaseException:
        for fd in reads:
            os.close(fd)
        raise
    finally:
        for fd in writes:  # the child has its copies: EOF comes when it closes them
            os.close(fd)
    return transport, proto, PipeReader(reads, on_data, on_eof)


def child_env(
    env: dict[str, str],
    scrub: frozenset[str] = SECRET_ENV,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`base` (default: our environment) without the secret variables, updated with
    `env`.  A marker in `base` (the client's own session's) is dropped too."""
    hidden = scrub | SECRET_ENV | {MARKER_ENV}
    source = os.environ if base is None else base
    full_env = {k: v for k, v in source.items() if k not in hidden}
    full_env.update(env)
    return full_env


def _alive(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_tree(pid: int | None, marker: str) -> list[psutil.Process]:
    """The process `pid`, its descendants, and every process carrying `marker`."""
    import psutil

    found: dict[int, psutil.Process] = {}
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            found[root.pid] = root
            for child in root.children(recursive=True):
                found[child.pid] = child
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARKER_ENV) == marker:
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
    return [p for p in found.values() if _alive(p)]


def _signal_all(pgid: int | None, procs: list[psutil.Process], sig: int) -> None:
    import psutil

    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def signal_tree(pid: int | None, pgid: int | None, marker: str, sig: int) -> None:
    """Send `sig` to the group and every descendant (used for pause/resume)."""
    _signal_all(pgid, find_tree(pid, marker), sig)


async def kill_tree(
    pid: int | None, pgid: int | None, marker: str, *, grace: float, force: bool = False
) -> int:
    """TERM the whole tree, wait up to `grace` seconds, then KILL what is left.

    Returns the signal that finished the job (SIGTERM or SIGKILL).  Safe to cancel
    only in the sense that signals already sent stay sent; callers shield it.
    """
    procs = await asyncio.to_thread(find_tree, pid, marker)
    if not force:
        _signal_all(pgid, procs, signal.SIGTERM)
        _signal_all(pgid, procs, signal.SIGCONT)  # a stopped process must see its TERM
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            procs = [p for p in procs if _alive(p)]
            if not procs:
                # Anything that forked meanwhile still carries the marker.
                procs = await asyncio.to_thread(find_tree, None, marker)
                if not procs:
                    return signal.SIGTERM
    for _ in range(50):
        procs = await asyncio.to_thread(find_tree, pid, marker)
        if not procs:
            break
        _signal_all(pgid, procs, signal.SIGKILL)
        await asyncio.sleep(0.02)
    return signal.SIGKILL


def find_marked(markers: Collection[str]) -> dict[str, list[psutil.Process]]:
    """Live processes (and their descendants) carrying one of `markers`, by marker:
    one pass over every process, however many markers."""
    import psutil

    wanted = set(markers)
    found: dict[str, dict[int, psutil.Process]] = {}
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            marker = proc.environ().get(MARKER_ENV)
            if marker in wanted:
                group = found.setdefault(marker, {})
                group[proc.pid] = proc
                for child in proc.children(recursive=True):
                    group[child.pid] = child
    return {m: [p for p in g.values() if _alive(p)] for m, g in found.items()}


async def kill_marked(markers: Collection[str], *, grace: float) -> set[str]:
    """TERM every process carrying one of `markers`, wait up to `grace` seconds, then
    KILL what is left (for the trees of a ccx-tui that died).  Returns the markers
    that had live processes.  Signals already sent stay sent if cancelled."""
    found = await asyncio.to_thread(find_marked, markers)
    found = {m: procs for m, procs in found.items() if procs}
    procs = [p for group in found.values() for p in group]
    if not procs:
        return set()
    _signal_all(None, procs, signal.SIGTERM)
    _signal_all(None, procs, signal.SIGCONT)  # a stopped process must see its TERM
    deadline = time.monotonic() + grace
    while procs and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        procs = [p for p in procs if _alive(p)]
    for _ in range(50):
        left = await asyncio.to_thread(find_marked, found)
        procs = [p for group in left.values() for p in group]
        if not procs:
            break
        _signal_all(None, procs, signal.SIGKILL)
        await asyncio.sleep(0.02)
    return set(found)
