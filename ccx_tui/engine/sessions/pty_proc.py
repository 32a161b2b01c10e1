"""A session's process on a pseudo-terminal: to the program, a real terminal.

The child is spawned with `posix_spawn` (no Python runs between fork and exec, which a
process with threads needs): a new session (`setsid`), then the terminal's slave
opened by path as fds 0-2, which makes it the session's controlling terminal, so
ctrl+c typed into it interrupts the foreground job and a resize sends SIGWINCH, as in
any terminal.  The engine keeps the master: every byte the program writes is read
from it, as one stream (a terminal has no separate stderr), and typed input and the
window size go to it.  Its exit is seen through a pidfd (no thread per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import struct
import termios
import threading
from collections.abc import Mapping

from ccx_tui.engine.sessions.pacing import ReadPacer
from ccx_tui.engine.sessions.process import MARKER_ENV, SECRET_ENV, child_env
from ccx_tui.engine.sessions.runner import Ending, OnData, OnEof, ProcessTree
from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.errors import InvalidTransition

TERM = "xterm-256color"
"""What a session's program is told it runs in (the view understands its colours)."""
READ_BYTES = 256 * 1024
MAX_PENDING_INPUT = 1024 * 1024
"""Typed or pasted bytes waiting for a program that does not read them, at most."""
_DROPPED_ENV = ("COLUMNS", "LINES")  # the client's sizes, not the session's terminal
_CHDIR = 'cd -- "$1" || exit 126; shift; exec "$@"'
"""posix_spawn cannot chdir before Python 3.13's file actions: a shell does, then
becomes the session's shell (same pid, same session)."""


def set_size(fd: int, cols: int, rows: int) -> None:
    """Set the terminal's size (the kernel sends SIGWINCH to its foreground job)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def spawn_pty(
    argv: list[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    marker: str,
    cols: int,
    rows: int,
    scrub: frozenset[str] = SECRET_ENV,
    base: Mapping[str, str] | None = None,
) -> tuple[int, int]:
    """Start `argv` on a new terminal of `cols` x `rows`: (pid, master fd).

    The environment is `process.child_env`'s, with TERM set (unless `env` sets it)
    and the marker.  Raises OSError if it cannot be started (FileNotFoundError naming
    `cwd` if that is not a directory).
    """
    if cwd is not None and not os.path.isdir(cwd):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cwd)
    # Behind the chdir wrapper a missing shell would be its `exec` failing (exit 127),
    # not the start failure it is with pipes.
    if shutil.which(argv[0], path=(base or os.environ).get("PATH")) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
    full_env = child_env(env, scrub, base)
    for name in _DROPPED_ENV:
        if name not in env:
            full_env.pop(name, None)
    if "TERM" not in env:
        full_env["TERM"] = TERM
    full_env[MARKER_ENV] = marker
    master, slave = os.openpty()  # both close-on-exec: the child opens its own
    try:
        path = os.ttyname(slave)
        set_size(master, cols, rows)
    except OSError:
        os.close(master)
        raise
    finally:
        os.close(slave)
    if cwd is not None:
        argv = ["/bin/sh", "-c", _CHDIR, "ccx-tui", cwd, *argv]
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, path, os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, 0, 1),
        (os.POSIX_SPAWN_DUP2, 0, 2),
    ]
    try:
        pid = os.posix_spawnp(argv[0], argv, full_env, file_actions=actions, setsid=True)
    except OSError:
        os.close(master)
        raise
    os.set_blocking(master, False)
    return pid, master


class PtyProc(ProcessTree):
    """A process tree on a terminal of ours (see the module docstring)."""

    def __init__(
        self,
        pid: int,
        master: int,
        marker: str,
        on_data: OnData,
        on_eof: OnEof,
        *,
        exit_drain: float,
        leftover_grace: float,
    ) -> None:
        super().__init__(pid, marker, leftover_grace=leftover_grace)
        self._master = master
        self._on_data = on_data
        self._on_eof = on_eof
        self._exit_drain = exit_drain
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._eof: asyncio.Future[None] = self._loop.create_future()
        self._reading = False
        self._pacer = ReadPacer(self._unpaced, lambda: self._loop.remove_reader(master))
        self._pending = bytearray()
        self._writing = False
        self._watch_exit()
        self.resume_reading()

    @classmethod
    async def start(
        cls,
        spec: SessionSpec,
        marker: str,
        on_data: OnData,
        on_eof: OnEof,
        *,
        cols: int,
        rows: int,
        exit_drain: float,
        leftover_grace: float,
        scrub_env: frozenset[str] = SECRET_ENV,
    ) -> PtyProc:
        """Spawn it; raises OSError if the shell cannot be started."""
        pid, master = spawn_pty(
            [spec.shell, "-c", spec.command],
            cwd=spec.cwd,
            env=spec.env,
            marker=marker,
            cols=cols,
            rows=rows,
            scrub=scrub_env,
            base=spec.base_env,
        )
        return cls(
            pid,
            master,
            marker,
            on_data,
            on_eof,
            exit_drain=exit_drain,
            leftover_grace=leftover_grace,
        )

    # -- the process's end --------------------------------------------------------------

    def _watch_exit(self) -> None:
        pid = self.pid
        assert pid is not None
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # before Linux 5.3: a thread waits instead
            threading.Thread(target=self._wait_blocking, args=(pid,), daemon=True).start()
            return

        def ready() -> None:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: the code is lost, not the end
                done, status = pid, 255 << 8
            if done == 0:
                return
            self._set_exit(os.waitstatus_to_exitcode(status))
            self._loop.remove_reader(pidfd)
            os.close(pidfd)

        self._loop.add_reader(pidfd, ready)

    def _wait_blocking(self, pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self._loop.call_soon_threadsafe(self._set_exit, os.waitstatus_to_exitcode(status))

    def _set_exit(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> Ending:
        """Wait for the end; all output has been delivered when this returns."""
        try:
            code = await self._exited
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._exit_drain):
                    await asyncio.shield(self._eof)
        finally:
            await self.kill_leftovers()
            if not self._eof.done():
                # Something out of our reach holds the terminal open: stop reading.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await asyncio.shield(self._eof)
            self._close()
        return Ending(code)

    def _close(self) -> None:
        self.pause_reading()
        self._stop_writing()
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
        if not self._eof.done():
            self._eof.set_result(None)
            self._on_eof(0)

    # -- output ---------------------------------------------------------------------------

    def _readable(self) -> None:
        # A terminal hands its output over a few KiB per read: read on while there
        # is more (up to READ_BYTES), then pass it on as one chunk, so that the
        # engine's work per chunk is not done per 4 KiB.
        chunks: list[bytes] = []
        got = 0
        ended = False
        while got < READ_BYTES:
            try:
                data = os.read(self._master, READ_BYTES - got)
            except BlockingIOError:
                break
            except OSError:  # EIO: every copy of the terminal's slave is closed
                ended = True
                break
            if not data:
                ended = True
                break
            chunks.append(data)
            got += len(data)
        if chunks:
            if not ended:  # before `on_data`, which may pause reading: that ends a hold
                self._pacer.after_read(got)
            self._on_data(0, chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if not ended:
            return
        self.pause_reading()
        if not self._eof.done():
            self._eof.set_result(None)
            self._on_eof(0)

    def pause_reading(self) -> None:
        """Stop reading (the program blocks once the terminal's buffer is full)."""
        if self._reading:
            self._reading = False
            self._pacer.unwatch()

    def _unpaced(self) -> None:
        """A hold on a trickle of output ended (see pacing.py): read again."""
        if self._reading and not self._eof.done() and self._master >= 0:
            self._loop.add_reader(self._master, self._readable)

    def resume_reading(self) -> None:
        if not self._reading and not self._eof.done() and self._master >= 0:
            self._reading = True
            self._loop.add_reader(self._master, self._readable)

    # -- input and size -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Type `data` into the terminal (in order, however slowly the program reads).

        Raises InvalidTransition if the terminal is gone or more than
        MAX_PENDING_INPUT bytes are already waiting for the program.
        """
        if self._master < 0:
            raise InvalidTransition("its terminal is closed")
        if len(self._pending) + len(data) > MAX_PENDING_INPUT:
            raise InvalidTransition(
                f"the program is not reading its input ({len(self._pending)} bytes waiting)"
            )
        self._pending += data
        self._pacer.typed()  # its echo is read at once
        self._flush_input()

    def _flush_input(self) -> None:
        while self._pending and self._master >= 0:
            try:
                sent = os.write(self._master, self._pending[:4096])
            except BlockingIOError:
                break
            except OSError:  # the terminal is going away: what is left is moot
                self._pending.clear()
                break
            del self._pending[:sent]
        if self._pending and not self._writing and self._master >= 0:
            self._writing = True
            self._loop.add_writer(self._master, self._flush_input)
        elif not self._pending:
            self._stop_writing()

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._master)

    def resize(self, cols: int, rows: int) -> None:
        """Set the terminal's size; the program gets SIGWINCH."""
        if self._master >= 0:
            with contextlib.suppress(OSError):
                set_size(self._master, cols, rows)
