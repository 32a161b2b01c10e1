"""Headless commands: `ccx-tui exec` and `ccx-tui sessions`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import io
import json
import os
import stat
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ccx_tui.config import Settings
from ccx_tui.engine.sessions.process import F_SETPIPE_SZ, PIPE_SIZE
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.sessions.stop_signals import on_stop_signals
from ccx_tui.engine.sessions.tap import Chunk
from ccx_tui.engine.transcripts.store import DataStore
from ccx_tui.engine.transcripts.transcript import (
    META,
    SIDECAR_NAME,
    STDERR,
    TranscriptWriter,
    read_segments,
)
from ccx_tui.textsafe import escape_controls

# The engine loads in the commands that run it (`sessions` only reads), the server and
# websockets only for `serve` and `exec --server`.
if TYPE_CHECKING:
    from ccx_tui.config import ServerTarget
    from ccx_tui.engine.server.server import ServeConfig

EXIT_TTL = 124
EXIT_CANNOT_RUN = 127
EXIT_BROKEN_PIPE = 141
"""`sessions` whose reader went away: the status of a tool killed by SIGPIPE (128+13)."""
_COPY = 1024 * 1024


class TranscriptCopier:
    """Copies a transcript's new bytes to our stdout/stderr, split by stream.

    Runs in a thread (blocking writes to a slow pipe never stall the engine, which
    keeps spooling the process's output to disk).  Stops echoing, silently, if the
    reader of our stdout goes away (EPIPE); the transcript keeps everything.  What is
    for /dev/null (or after EPIPE) is not read back at all.
    """

    def __init__(self, transcript: Path) -> None:
        self.transcript = transcript
        self.sidecar = transcript.with_name(SIDECAR_NAME)
        self.pos = 0
        self.broken = False
        self._discard = {1: _discards(1), 2: _discards(2)}

    @property
    def discards_all(self) -> bool:
        """Nothing it copies would be seen: both outputs are /dev/null, or EPIPE."""
        return self.broken or all(self._discard.values())

    def copy_to(self, end: int) -> None:
        if end <= self.pos:
            return
        if self.discards_all:
            self.pos = end
            return
        segments = read_segments(self.sidecar, self.pos, end)
        with open(self.transcript, "rb") as f:
            for i, seg in enumerate(segments):
                seg_end = segments[i + 1].offset if i + 1 < len(segments) else end
                start, stop = max(seg.offset, self.pos), min(seg_end, end)
                if start >= stop:
                    continue
                fd = 2 if seg.stream == STDERR else 1
                if seg.stream == META or self._discard[fd]:
                    self.pos = stop  # not shown: not read
                    continue
                f.seek(start)
                while start < stop:
                    data = f.read(min(_COPY, stop - start))
                    if not data:
                        return
                    self._write(fd, data)
                    start += len(data)
                    self.pos = start

    def _write(self, fd: int, data: bytes) -> None:
        if self.broken:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            self.broken = True


def exit_code_for(info: SessionInfo, stop_signal: int | None) -> int:
    """`exec`'s exit status: the command's, 124 on TTL, 128+N for signal N."""
    if info.state is State.EXPIRED:
        return EXIT_TTL
    if info.state is State.KILLED and stop_signal is not None:
        return 128 + stop_signal
    if info.state is State.FAILED:
        return EXIT_CANNOT_RUN
    if info.exit_code is not None:
        return info.exit_code
    return 1


def report(
    info: SessionInfo,
    stop_signal: list[int],
    *,
    shown: bool = False,
    not_shown: int = 0,
    record_error: str | None = None,
) -> int:
    """Say what went wrong on stderr (if anything); return `exec`'s exit status.

    `shown`: our output came live from the engine, so what the transcript lost was
    still shown (all but `not_shown` bytes).  `record_error`: why the session's record
    could not be saved.
    """
    # A reason or an error can quote a server's words, a path or a command: escaped.
    if info.state is State.FAILED:
        print(f"ccx-tui: {escape_controls(info.reason or 'failed')}", file=sys.stderr)
    if info.write_error:
        where = " in the transcript (they were shown here)" if shown else ""
        print(
            f"ccx-tui: {escape_controls(info.write_error)}; "
            f"{info.bytes_lost} bytes of output were not kept{where}",
            file=sys.stderr,
        )
    if not_shown:
        print(f"ccx-tui: {not_shown} bytes of output could not be shown", file=sys.stderr)
    if record_error is not None:
        if info.directory.exists():
            what = f"could not be saved in {info.directory}: {record_error}"
        else:
            what = f"is lost: {info.directory} was removed while the command ran"
        what = escape_controls(what)
        print(f"ccx-tui: warning: the session's record {what}", file=sys.stderr)
    return exit_code_for(info, stop_signal[0] if stop_signal else None)


def _discards(fd: int) -> bool:
    """`fd` is the null device: whatever is written to it is thrown away."""
    try:
        st = os.fstat(fd)
        return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat(os.devnull).st_rdev
    except OSError:
        return False


def _enlarge_pipe(fd: int) -> None:
    """If `fd` is a pipe, make it as big as the child's (fewer wake-ups on both ends
    when we echo a flood; a 64 KiB pipe took 16 switches to the reader per MiB)."""
    with contextlib.suppress(OSError):
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)


class OutputEcho:
    """Writes a session's live output chunks to our stdout/stderr, split by stream.

    `write` is called in a thread (a slow reader of our output blocks this writer, and
    through the tap's back-pressure the process, as a pipe would; never the event
    loop).  Stops echoing, silently, if the reader goes away (EPIPE); the chunks are
    still taken so the process is never held up.  Output for /dev/null is dropped
    before it gets that far: handing every chunk to a thread to throw it away cost
    more than capturing it.
    """

    def __init__(self) -> None:
        self.broken = False
        self._discard = {1: _discards(1), 2: _discards(2)}
        for fd in (1, 2):
            _enlarge_pipe(fd)

    @property
    def discards_all(self) -> bool:
        """Both stdout and stderr are /dev/null: there is nothing to echo."""
        return all(self._discard.values())

    def shown(self, chunks: list[Chunk]) -> list[Chunk]:
        """The chunks `write` would write (not ccx-tui's own, not for /dev/null)."""
        return [
            chunk
            for chunk in chunks
            if chunk.stream != META and not self._discard[2 if chunk.stream == STDERR else 1]
        ]

    def write(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            if chunk.stream == META or self.broken:
                continue
            fd = 2 if chunk.stream == STDERR else 1
            view = memoryview(chunk.data)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except BrokenPipeError:
                self.broken = True


async def run_exec(settings: Settings, spec: SessionSpec) -> int:
    """Run one session, echo its output as it arrives, return the exit status.

    Our stdout is fed straight from the engine (a tap with back-pressure), never from
    the transcript: a full disk or a deleted data dir loses the record, not the
    output, and the command runs to its end either way.
    """
    from ccx_tui.engine.sessions.local import LocalEngine

    # What is loaded by now lives as long as the command: spare the collector's full
    # passes (which per-chunk allocations set off) from walking it again and again.
    gc.freeze()
    config = settings.engine_config(max_sessions=1, load_history=False)
    engine = LocalEngine(config)
    loop = asyncio.get_running_loop()
    stop_signal: list[int] = []
    echo = OutputEcho()
    async with engine:
        info = await engine.start(spec)
        # No await since start: no byte missed.
        tap = None if echo.discards_all else engine.tap(info.id, backpressure=True)

        def on_signal(signum: int) -> None:
            if not stop_signal:
                stop_signal.append(signum)
                engine_task = loop.create_task(engine.kill(info.id, reason=f"signal {signum}"))
                tasks.add(engine_task)

        tasks: set[asyncio.Task[None]] = set()
        with on_stop_signals(on_signal):
            while tap is not None and (chunks := await tap.read()):
                if shown := echo.shown(chunks):
                    await asyncio.to_thread(echo.write, shown)
            info = await engine.wait(info.id)
            await asyncio.gather(*tasks, return_exceptions=True)
    return report(
        info,
        stop_signal,
        shown=True,
        not_shown=0 if tap is None else tap.lost,
        record_error=engine.record_error(info.id),
    )


def _when(ts: float | None) -> str:
    from datetime import datetime  # only `sessions` prints dates

    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def list_sessions(settings: Settings, *, as_json: bool) -> int:
    """Print every session in the data directory, oldest first.

    Stored text (commands, directories) is printed with its control characters and
    undecodable bytes as visible escapes (`\\x1b`, `\\n`, `\\xff`).  A reader that goes
    away early (`| head`) ends us quietly with EXIT_BROKEN_PIPE, like a tool killed by
    SIGPIPE.
    """
    store = DataStore(settings.data_dir)
    infos = store.load_history(include_foreign=True)
    rows = []
    for info in infos:
        with contextlib.suppress(OSError):
            info = _with_size(info)
        rows.append(info)
    # Whatever the terminal's encoding, what it cannot show is escaped, never a crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        if as_json:
            _print_json(rows)
        else:
            _print_table(rows, settings.data_dir)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return 0


def _print_json(rows: list[SessionInfo]) -> None:
    out = []
    for info in rows:
        data = info.to_json()
        data["transcript"] = str(info.transcript)
        out.append(data)
    json.dump(out, sys.stdout, indent=1)  # ASCII: JSON escapes controls and surrogates
    sys.stdout.write("\n")


def _print_table(rows: list[SessionInfo], data_dir: Path) -> None:
    if not rows:
        print(f"no sessions in {escape_controls(str(data_dir))}")
        return
    header = ("ID", "STATE", "EXIT", "STARTED", "ENDED", "BYTES", "LINES", "CWD", "COMMAND")
    table = [header]
    for info in rows:
        table.append(
            (
                escape_controls(info.id),
                info.state.value,
                "-" if info.exit_code is None else str(info.exit_code),
                _when(info.started_at),
                _when(info.ended_at),
                str(info.bytes),
                str(info.lines),
                escape_controls(info.spec.cwd or "-"),
                escape_controls(info.spec.command),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        print("  ".join([*cells, row[-1]]))
    sessions = escape_controls(str(data_dir / "sessions"))
    print(f"transcripts: {sessions}/<ID>/transcript.log")


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null, so the interpreter's final flush of what
    is still buffered does not fail again ("Exception ignored ... BrokenPipeError"), as
    Python's signal module documentation recommends."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _with_size(info: SessionInfo) -> SessionInfo:
    """A live session's metadata lags; its transcript's size does not."""
    size = info.transcript.stat().st_size
    return replace(info, bytes=max(size, info.bytes))


async def run_serve(settings: Settings, config: ServeConfig, auth: str = "") -> int:
    """Serve until SIGTERM/SIGINT/SIGHUP; live sessions are killed on the way out.

    `auth` says how clients authenticate (where the token is, never the token).
    """
    from ccx_tui.engine.server.server import CcxServer
    from ccx_tui.engine.sessions.local import LocalEngine

    stop = asyncio.Event()
    with on_stop_signals(lambda _signum: stop.set()):
        async with LocalEngine(settings.engine_config()) as engine:
            server = CcxServer(engine, config)
            try:
                await server.start()
            except OSError as exc:
                print(
                    f"ccx-tui serve: cannot listen on {config.host}:{config.port}: "
                    f"{exc.strerror or exc}",
                    file=sys.stderr,
                )
                return 1
            print(
                f"ccx-tui serve: listening on {config.scheme}://{config.host}:{server.port}"
                f"/ws/mcp{f' ({auth})' if auth else ''}",
                file=sys.stderr,
                flush=True,
            )
            try:
                await stop.wait()
            finally:
                await server.aclose()
        return 0


EXIT_LOST = 255


async def run_remote_exec(settings: Settings, spec: SessionSpec, target: ServerTarget) -> int:
    """`exec --server URL`: like local exec, with the process on a cc_executor server.

    The socket is read continuously into a local transcript; our stdout is fed from
    that transcript by one thread at a time (the follower, then the final copy), so
    a slow reader of our output never stalls the server and no byte goes out twice.
    Returns the command's exit status; 1 if the server cannot be reached, 2 if it
    refuses us (token, certificate).
    """
    from ccx_tui.engine.sessions.linemux import LineMux
    from ccx_tui.engine.transcripts.write_behind import WriteBehind
    from ccx_tui.engine.wire.remote import (  # websockets: only here
        RemoteError,
        RemoteRefused,
        RemoteRun,
    )

    url = target.url

    store = DataStore(settings.data_dir)
    session_id, directory = store.new_session()
    now = time.time()
    info = SessionInfo(
        id=session_id,
        spec=spec,
        state=State.RUNNING,
        directory=directory,
        created_at=now,
        run=1,
        started_at=now,
        location=url,
        ttl_deadline=now + spec.ttl if spec.ttl else None,
    )
    lock = store.lock_session(directory)
    store.write_meta(info)
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    # Written by a thread, as the engine writes its sessions: the socket is read while
    # the disk takes the last chunk (written here, a busy disk stalled the reads).  The
    # socket cannot be paused: past its hard limit, a write waits for the thread.
    writer = WriteBehind(TranscriptWriter(directory), loop, on_written=wake.set)
    mux = LineMux(writer.write, spool_dir=str(directory))
    copier = TranscriptCopier(info.transcript)
    remote = RemoteRun(
        url, token=target.token, kill_grace=settings.kill_grace, ca_file=target.ca_file
    )
    stop_signal: list[int] = []

    def on_signal(signum: int) -> None:
        stop_signal.append(signum)
        remote.cancel("killed")

    def sink(stream: str, data: bytes) -> None:
        mux.feed(1 if stream == "stderr" else 0, data)
        wake.set()  # (written inline if small, else once the thread has written it)

    finished = False

    async def follow() -> None:
        # Never cancelled mid-copy: cancelling the await would not stop the thread,
        # which would then copy the same bytes as the final copy, at the same time.
        while not copier.discards_all:  # (else: nothing to copy, no thread per chunk)
            await wake.wait()
            if finished:
                return
            wake.clear()
            await asyncio.to_thread(copier.copy_to, writer.offset)

    follower = loop.create_task(follow())
    error: str | None = None
    refused = False
    try:
        with on_stop_signals(on_signal):
            outcome = await remote.run(spec, sink)
    except RemoteError as exc:
        error = str(exc)
        refused = isinstance(exc, RemoteRefused)
        outcome = None
    finally:
        finished = True
        wake.set()
        await follower  # its copy in flight, if any, ends first
        mux.flush()
        mux.close()
        await writer.aclose()
        await asyncio.to_thread(copier.copy_to, writer.offset)
    server_loss = None if outcome is None else outcome.server_loss
    if outcome is None:
        state, code, sig, reason = State.FAILED, None, None, error
    else:
        state = State(outcome.state)
        code, sig, reason = outcome.exit_code, outcome.signal, outcome.reason or server_loss
    info = replace(
        info,
        state=state,
        exit_code=code,
        signal=sig,
        reason=reason,
        ended_at=time.time(),
        bytes=writer.offset,
        lines=writer.newlines,
        write_error=writer.error,
        bytes_lost=writer.bytes_lost,
        pid=None,
    )
    with contextlib.suppress(OSError):
        store.write_meta(info)
    store.unlock_session(lock)
    if error is not None:  # server and URL text: never terminal control
        print(f"ccx-tui: {escape_controls(error)}", file=sys.stderr)
        return 2 if refused else 1
    if state is State.LOST:
        print(f"ccx-tui: {escape_controls(reason or 'connection lost')}", file=sys.stderr)
        return EXIT_LOST
    if server_loss is not None:  # its full disk: the output still came here
        print(f"ccx-tui: {escape_controls(server_loss)}", file=sys.stderr)
    return report(info, stop_signal)
