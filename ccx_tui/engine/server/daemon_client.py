"""Finding the engine process of a data dir, starting it on first use."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ccx_tui.engine.server.paths import EXIT_RUNNING, engine_pid, log_path, socket_path
from ccx_tui.engine.sessions.process import MARKER_ENV
from ccx_tui.engine.transcripts.store import DataStore
from ccx_tui.engine.wire.unixsock import check_path, get_health, unix_url
from ccx_tui.errors import CcxError

START_DEADLINE = 30.0  # a cold start imports the engine: seconds on a loaded machine
START_LOCK = "engine.start.lock"
POLL = 0.02
LOG_KEEP = 1024 * 1024  # engine.log past this is moved to engine.log.old at a start


class EngineError(CcxError):
    """The engine process could not be started or reached; the message says why."""


def engine_url(data_dir: Path) -> str:
    """The `ws+unix://` URL of a data dir's engine (for RemoteRun / RemoteEngine)."""
    return unix_url(socket_path(data_dir))


def answers(sock: Path) -> bool:
    """Whether an engine serves `sock` now (its /health answers)."""
    try:
        get_health(sock, timeout=5.0)
    except OSError:
        return False
    return True


def ensure_engine(
    data_dir: Path,
    *,
    idle_exit: float | None = None,
    args: Sequence[str] = (),
    timeout: float = START_DEADLINE,
) -> Path:
    """The socket of `data_dir`'s engine process, started first if none answers.

    Blocking: call it from a thread in async code.  Callers racing (threads or
    processes) start one engine between them: starters take turns on a lock, and the
    engine's own lock settles any other race.  `idle_exit` is the new engine's idle
    period (seconds); `args`, more `ccx-tui engine` options for it (its settings, see
    engine_args).  Raises EngineError if no engine answers within `timeout`.
    """
    data_dir = data_dir.expanduser().absolute()
    sock = socket_path(data_dir)
    try:
        check_path(sock)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    if answers(sock):
        return sock
    DataStore(data_dir)  # made 0700 and checked (raises DataDirError)
    deadline = time.monotonic() + timeout
    with _start_turn(data_dir, deadline):
        started = False
        while True:
            if answers(sock):
                return sock
            if engine_pid(data_dir) is None:  # no engine at all (or ours died)
                if started:
                    raise EngineError(f"the engine process exited at once: {_last_words(data_dir)}")
                started = _start(data_dir, idle_exit, args)
            if time.monotonic() > deadline:
                raise EngineError(
                    f"no engine process answered on {sock} within {timeout:g}s: "
                    f"{_last_words(data_dir)}"
                )
            time.sleep(POLL)


def stop_engine(data_dir: Path, *, timeout: float = START_DEADLINE) -> bool:
    """SIGTERM the engine process of `data_dir` (it kills its sessions: TERM, grace,
    KILL) and wait until it is gone.  False if none was running.  Blocking.
    Raises EngineError if it is still there after `timeout`."""
    pid = engine_pid(data_dir)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while engine_pid(data_dir) is not None:
        if time.monotonic() > deadline:
            raise EngineError(f"the engine process {pid} did not stop within {timeout:g}s")
        time.sleep(POLL)
    return True


@contextlib.contextmanager
def _start_turn(data_dir: Path, deadline: float) -> Iterator[None]:
    """One starter at a time per data dir (the others then find its engine)."""
    fd = os.open(data_dir / START_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"another ccx-tui is starting the engine of {data_dir}"
                    ) from None
                time.sleep(POLL)
        yield
    finally:
        os.close(fd)


def _start(data_dir: Path, idle_exit: float | None, args: Sequence[str]) -> bool:
    """Run `ccx-tui engine --detach`: it returns once the engine holds the data dir
    (0) or found another holding it (EXIT_RUNNING).  True if it started one."""
    log = log_path(data_dir)
    with contextlib.suppress(OSError):
        if log.stat().st_size > LOG_KEEP:
            os.replace(log, log.with_name(log.name + ".old"))
    argv = [sys.executable, "-m", "ccx_tui", "engine", "--detach", "--data-dir", str(data_dir)]
    if idle_exit is not None:
        argv += ["--idle-exit", repr(float(idle_exit))]
    argv += args
    # Nobody's session: a marker inherited from a session we run in would make the
    # engine one of that session's processes, killed along with it.
    env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            env=env,
            cwd="/",  # never keeps a directory (or a mount) busy
            start_new_session=True,
            close_fds=True,
            timeout=START_DEADLINE,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EngineError(f"the engine process did not start: {_last_words(data_dir)}") from None
    finally:
        os.close(fd)
    if proc.returncode == 0:
        return True
    if proc.returncode == EXIT_RUNNING:
        return False
    raise EngineError(
        f"the engine process failed (exit {proc.returncode}): {_last_words(data_dir)}"
    )


def _last_words(data_dir: Path) -> str:
    """The last line of the engine's log, to say why it did not come up."""
    log = log_path(data_dir)
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return f"{lines[-1]} (see {log})" if lines else f"see {log}"
