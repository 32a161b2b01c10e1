"""Headless commands: `ccx-tui exec` and `ccx-tui sessions`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ccx_tui.config import Settings
from ccx_tui.engine.events import OutputAppended, SessionUpdated
from ccx_tui.engine.linemux import LineMux
from ccx_tui.engine.local import LocalEngine
from ccx_tui.engine.session import SessionInfo, SessionSpec, State, new_session_id
from ccx_tui.engine.store import DataStore
from ccx_tui.engine.transcript import (
    META,
    SIDECAR_NAME,
    STDERR,
    TranscriptWriter,
    read_segments,
)

if TYPE_CHECKING:  # the server (and websockets) load only for `serve`
    from ccx_tui.engine.server import ServeConfig

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

EXIT_TTL = 124
EXIT_CANNOT_RUN = 127
_COPY = 1024 * 1024


class TranscriptCopier:
    """Copies a transcript's new bytes to our stdout/stderr, split by stream.

    Runs in a thread (blocking writes to a slow pipe never stall the engine, which
    keeps spooling the process's output to disk).  Stops echoing, silently, if the
    reader of our stdout goes away (EPIPE); the transcript keeps everything.
    """

    def __init__(self, transcript: Path) -> None:
        self.transcript = transcript
        self.sidecar = transcript.with_name(SIDECAR_NAME)
        self.pos = 0
        self.broken = False

    def copy_to(self, end: int) -> None:
        if end <= self.pos:
            return
        segments = read_segments(self.sidecar, self.pos, end)
        with open(self.transcript, "rb") as f:
            for i, seg in enumerate(segments):
                seg_end = segments[i + 1].offset if i + 1 < len(segments) else end
                start, stop = max(seg.offset, self.pos), min(seg_end, end)
                if start >= stop:
                    continue
                fd = 2 if seg.stream == STDERR else 1
                f.seek(start)
                while start < stop:
                    data = f.read(min(_COPY, stop - start))
                    if not data:
                        return
                    if seg.stream != META:
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


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Call `handler(signum)` on SIGINT/SIGTERM/SIGHUP while the block runs."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, handler, signum)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def report(info: SessionInfo, stop_signal: list[int]) -> int:
    """Say what went wrong on stderr (if anything); return `exec`'s exit status."""
    if info.state is State.FAILED:
        print(f"ccx-tui: {info.reason}", file=sys.stderr)
    if info.write_error:
        print(
            f"ccx-tui: {info.write_error}; {info.bytes_lost} bytes of output were not kept",
            file=sys.stderr,
        )
    return exit_code_for(info, stop_signal[0] if stop_signal else None)


async def run_exec(settings: Settings, spec: SessionSpec) -> int:
    """Run one session, echo its output as it arrives, return the exit status."""
    config = settings.engine_config(max_sessions=1, load_history=False)
    engine = LocalEngine(config)
    loop = asyncio.get_running_loop()
    stop_signal: list[int] = []
    async with engine:
        sub = engine.subscribe()
        info = await engine.start(spec)
        copier = TranscriptCopier(info.transcript)

        def on_signal(signum: int) -> None:
            if not stop_signal:
                stop_signal.append(signum)
                engine_task = loop.create_task(engine.kill(info.id, reason=f"signal {signum}"))
                tasks.add(engine_task)

        tasks: set[asyncio.Task[None]] = set()
        with on_stop_signals(on_signal):
            copied = 0
            while True:
                event = await sub.get()
                if event is None:
                    break
                if isinstance(event, OutputAppended) and event.session_id == info.id:
                    if event.bytes > copied:
                        copied = event.bytes
                        await asyncio.to_thread(copier.copy_to, copied)
                elif isinstance(event, SessionUpdated) and event.info.id == info.id:
                    if event.info.state.final:
                        info = event.info
                        break
            await asyncio.to_thread(copier.copy_to, info.bytes)
            await asyncio.gather(*tasks, return_exceptions=True)
    return report(info, stop_signal)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def list_sessions(settings: Settings, *, as_json: bool) -> int:
    """Print every session in the data directory, oldest first."""
    store = DataStore(settings.data_dir)
    infos = store.load_history(include_foreign=True)
    rows = []
    for info in infos:
        with contextlib.suppress(OSError):
            info = _with_size(info)
        rows.append(info)
    if as_json:
        out = []
        for info in rows:
            data = info.to_json()
            data["transcript"] = str(info.transcript)
            out.append(data)
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print(f"no sessions in {settings.data_dir}")
        return 0
    header = ("ID", "STATE", "EXIT", "STARTED", "ENDED", "BYTES", "LINES", "CWD", "COMMAND")
    table = [header]
    for info in rows:
        table.append(
            (
                info.id,
                info.state.value,
                "-" if info.exit_code is None else str(info.exit_code),
                _when(info.started_at),
                _when(info.ended_at),
                str(info.bytes),
                str(info.lines),
                info.spec.cwd or "-",
                info.spec.command.replace("\n", " "),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        print("  ".join([*cells, row[-1]]))
    print(f"transcripts: {settings.data_dir / 'sessions'}/<ID>/transcript.log")
    return 0


def _with_size(info: SessionInfo) -> SessionInfo:
    """A live session's metadata lags; its transcript's size does not."""
    size = info.transcript.stat().st_size
    return replace(info, bytes=max(size, info.bytes))


async def run_serve(settings: Settings, config: ServeConfig) -> int:
    """Serve until SIGTERM/SIGINT/SIGHUP; live sessions are killed on the way out."""
    from ccx_tui.engine.server import CcxServer

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
                f"ccx-tui serve: listening on ws://{config.host}:{server.port}/ws/mcp"
                f"{' (token required)' if config.token else ''}",
                file=sys.stderr,
                flush=True,
            )
            try:
                await stop.wait()
            finally:
                await server.aclose()
        return 0


EXIT_LOST = 255


async def run_remote_exec(
    settings: Settings, spec: SessionSpec, url: str, token: str | None
) -> int:
    """`exec --server URL`: like local exec, with the process on a cc_executor server.

    The socket is read continuously into a local transcript; our stdout is fed from
    that transcript by a thread, so a slow reader of our output never stalls the
    server.
    """
    from ccx_tui.engine.remote import RemoteError, RemoteRun  # websockets: only here

    store = DataStore(settings.data_dir)
    session_id = new_session_id()
    directory = store.create_session_dir(session_id)
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
    writer = TranscriptWriter(directory)
    mux = LineMux(writer.write, spool_dir=str(directory))
    copier = TranscriptCopier(info.transcript)
    remote = RemoteRun(url, token=token, kill_grace=settings.kill_grace)
    wake = asyncio.Event()
    stop_signal: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        stop_signal.append(signum)
        remote.cancel("killed")

    def sink(stream: str, data: bytes) -> None:
        mux.feed(1 if stream == "stderr" else 0, data)
        wake.set()

    async def follow() -> None:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.to_thread(copier.copy_to, writer.offset)

    follower = loop.create_task(follow())
    error: str | None = None
    try:
        with on_stop_signals(on_signal):
            outcome = await remote.run(spec, sink)
    except RemoteError as exc:
        error = str(exc)
        outcome = None
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        mux.flush()
        mux.close()
        writer.close()
        await asyncio.to_thread(copier.copy_to, writer.offset)
    if outcome is None:
        state, code, sig, reason = State.FAILED, None, None, error
    else:
        state = State(outcome.state)
        code, sig, reason = outcome.exit_code, outcome.signal, outcome.reason
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
    if error is not None:
        print(f"ccx-tui: {error}", file=sys.stderr)
        return 1
    if state is State.LOST:
        print(f"ccx-tui: {reason}", file=sys.stderr)
        return EXIT_LOST
    return report(info, stop_signal)
