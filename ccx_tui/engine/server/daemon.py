"""The engine process of a data dir, like tmux's server: sessions outlive their clients.

`ccx-tui engine` runs a LocalEngine and serves it with CcxServer's protocol on the Unix
socket DATA_DIR/engine.sock (0600, inside the 0700 data dir: file permissions are the
authentication, and the server refuses any peer of another uid, see SO_PEERCRED in
server.py).  Sessions started over that socket live until they end or are killed:
a client closing its socket never ends one, and another client can `session.attach`
and replay it from any byte offset.  SIGTERM, SIGINT or SIGHUP kill every session
(TERM, grace, KILL on each process group) before the process exits, and it exits on
its own once it has had no live, queued or restarting session and no client for
`idle_exit` seconds.

One engine per data dir: DATA_DIR/engine.lock is flock'ed for the engine's lifetime
(it holds the engine's pid); an engine that cannot take it exits with EXIT_RUNNING.
With `detach` the process forks once it holds the lock and the parent exits at once,
so the engine is nobody's child (no zombie in the process that started it; see
daemon_client.ensure_engine, which starts engines on first use).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sys
import time
from pathlib import Path

from ccx_tui.config import Settings
from ccx_tui.engine.server.paths import EXIT_RUNNING, engine_pid, lock_path, socket_path
from ccx_tui.engine.server.server import CcxServer, ServeConfig
from ccx_tui.engine.sessions.local import LocalEngine
from ccx_tui.engine.sessions.stop_signals import on_stop_signals
from ccx_tui.engine.transcripts.store import DataStore
from ccx_tui.engine.wire.unixsock import check_path
from ccx_tui.errors import CcxError

IDLE_EXIT = 3.0
"""Seconds without sessions or clients before the engine exits on its own."""
EXIT_FAILED = 1
TICK = 0.1  # how often an idle engine checks whether it may go


def _take_lock(data_dir: Path) -> int | None:
    """The data dir's engine lock (its fd, kept open for life), None if held elsewhere.

    Retried for a moment: `engine_pid` takes it shared for an instant to probe it.
    """
    fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + 0.5
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.01)


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    print(f"{stamp} ccx-tui engine[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def run_engine(settings: Settings, *, idle_exit: float = IDLE_EXIT, detach: bool = False) -> int:
    """Be the engine process of `settings.data_dir` until a stop signal or idleness.

    Returns the exit status: 0, EXIT_RUNNING if another engine holds the data dir,
    EXIT_FAILED if the data dir or the socket cannot be used (said on stderr).
    """
    data_dir = settings.data_dir.expanduser().absolute()
    sock = socket_path(data_dir)
    try:
        check_path(sock)
        DataStore(data_dir)  # made 0700 and checked before anything goes in it
    except (ValueError, CcxError) as exc:
        _log(f"error: {exc}")
        return EXIT_FAILED
    lock = _take_lock(data_dir)
    if lock is None:
        _log(f"another engine (pid {engine_pid(data_dir)}) serves {data_dir}")
        return EXIT_RUNNING
    if detach:
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork():  # the parent: its caller learns the lock is taken, and reaps it
            os._exit(0)
    os.ftruncate(lock, 0)
    os.pwrite(lock, f"{os.getpid()}\n".encode(), 0)
    try:
        # Nobody serves a socket left here: its engine is gone (we hold the lock).
        sock.unlink(missing_ok=True)
        return asyncio.run(_serve(settings, sock, idle_exit))
    finally:
        sock.unlink(missing_ok=True)
        os.close(lock)  # the lock goes last: a new engine finds no stale socket


async def _serve(settings: Settings, sock: Path, idle_exit: float) -> int:
    stop = asyncio.Event()
    stopped_by: list[int] = []

    def on_signal(signum: int) -> None:
        stopped_by.append(signum)
        stop.set()

    with on_stop_signals(on_signal):
        async with LocalEngine(settings.engine_config()) as engine:
            server = CcxServer(engine, ServeConfig(unix_path=sock, keep_sessions=True))
            try:
                await server.start()
            except OSError as exc:
                _log(f"error: cannot listen on {sock}: {exc.strerror or exc}")
                return EXIT_FAILED
            _log(f"serving {settings.data_dir} on {sock}")
            try:
                await _until_stopped_or_idle(engine, server, stop, idle_exit)
            finally:
                # New clients start a new engine from now on.
                await asyncio.to_thread(sock.unlink, missing_ok=True)
                await server.aclose()
                if stopped_by:
                    why = signal.Signals(stopped_by[0]).name
                    _log(f"{why}: killing {engine.stats.busy} sessions")
                    await engine.aclose(f"engine process stopped ({why})")
                else:
                    _log(f"idle for {idle_exit:g}s: exiting")
    return 0


async def _until_stopped_or_idle(
    engine: LocalEngine, server: CcxServer, stop: asyncio.Event, idle_exit: float
) -> None:
    """Returns on `stop`, or once nothing has needed the engine for `idle_exit` s."""
    loop = asyncio.get_running_loop()
    idle_since: float | None = None
    while not stop.is_set():
        now = loop.time()
        if _busy(engine, server):
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= idle_exit:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TICK):
                await stop.wait()


def _busy(engine: LocalEngine, server: CcxServer) -> bool:
    stats = engine.stats
    if server.clients or stats.busy:
        return True
    # Between an exit and its automatic restart a session is neither live nor queued.
    return any(info.restart_at is not None for info in engine.sessions())
