"""Local copies of the transcripts of a ccx-tui server's sessions.

A client attached to an engine on another machine (RemoteEngineClient) shows that
engine's sessions with the same views as local ones, and views read transcripts from
disk: so each session's transcript is copied here as it grows, through `session.attach`
from the end of the local copy (a reconnect or a new client resumes, never starts
over).  A live session is followed on a socket of its own until it ends; a finished
one is caught up a few at a time.  The copy is byte-exact (streams kept in the
`chunks.bin` sidecar; arrival times are this machine's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from ccx_tui.engine.sessions.session import SessionInfo, State
from ccx_tui.engine.transcripts.transcript import STDERR, STDOUT, TRANSCRIPT_NAME, TranscriptWriter
from ccx_tui.engine.wire.remote import RemoteError, RemoteRun

CATCH_UP_AT_ONCE = 4
"""Finished sessions copied at the same time (live ones are all followed)."""
RETRY_AFTER = 2.0
"""A copy that failed (the server went away) is tried again after this long."""

OnOutput = Callable[[str, int, int], None]
"""(session id, bytes, lines) of a local copy that grew."""


def mirror_root(data_dir: Path, url: str) -> Path:
    """Where the copies of `url`'s sessions live: one directory per server."""
    parts = urlsplit(url)
    label = "".join(c if c.isalnum() or c in "-." else "_" for c in (parts.hostname or "unix"))
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]  # two servers on one host
    return data_dir / "mirrors" / f"{label}-{parts.port or 0}-{digest}"


class TranscriptMirror:
    """Keeps `root/SESSION_ID/transcript.log` up to date with a server's sessions.

    `update(info)` (with the server's view of a session) starts a copy if the local
    one is behind or the session is live; `on_output` hears of every write.  Everything
    runs on the event loop of the caller; `aclose()` stops the copies (the sessions go
    on on the server).
    """

    def __init__(
        self,
        url: str,
        root: Path,
        *,
        token: str | None,
        ca_file: Path | None,
        location: str,
        on_output: OnOutput,
    ) -> None:
        self.url = url
        self.root = root
        self.location = location
        self._token = token
        self._ca_file = ca_file
        self._on_output = on_output
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failed_at: dict[str, float] = {}
        self._catch_up = asyncio.Semaphore(CATCH_UP_AT_ONCE)
        self._closed = False
        self._made: set[str] = set()  # sessions whose copy exists
        self.errors: dict[str, str] = {}
        """The last error copying each session (cleared when a copy succeeds)."""

    def localize(self, info: SessionInfo) -> SessionInfo:
        """The server's record with its directory here (where views read it); the
        copy exists from then on, empty at first, as a local session's transcript does
        from the moment it is known."""
        directory = self.root / info.id
        if info.id not in self._made:
            self._made.add(info.id)
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(directory / TRANSCRIPT_NAME, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                self.errors[info.id] = f"cannot write {directory}: {exc.strerror or exc}"
        return replace(info, directory=directory, location=self.location)

    def local_size(self, session_id: str) -> int:
        try:
            return os.stat(self.root / session_id / TRANSCRIPT_NAME).st_size
        except OSError:
            return 0

    def copying(self, session_id: str) -> bool:
        """Whether a copy of the session is under way."""
        return session_id in self._tasks

    def update(self, info: SessionInfo) -> None:
        """The server says this of a session: copy what is missing."""
        if self._closed or info.id in self._tasks or info.state is State.QUEUED:
            return
        live = not info.state.final
        if not live and self.local_size(info.id) >= info.bytes:
            return
        failed = self._failed_at.get(info.id)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER:
            return
        task = asyncio.get_running_loop().create_task(self._copy(info.id, live))
        self._tasks[info.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(info.id, None))

    async def _copy(self, session_id: str, live: bool) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if not live:
                await stack.enter_async_context(self._catch_up)
            directory = self.root / session_id
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                writer = TranscriptWriter(directory)
            except OSError as exc:
                self._failed(session_id, f"cannot write {directory}: {exc.strerror or exc}")
                return
            stack.callback(writer.close)

            def sink(stream: str, data: bytes) -> None:
                writer.write(STDERR if stream == "stderr" else STDOUT, data)
                self._on_output(session_id, writer.offset, writer.newlines)

            run = RemoteRun(self.url, token=self._token, ca_file=self._ca_file)
            try:
                await run.attach(session_id, sink, offset=writer.offset)
            except RemoteError as exc:
                self._failed(session_id, str(exc))
                return
            self.errors.pop(session_id, None)
            self._failed_at.pop(session_id, None)

    def _failed(self, session_id: str, why: str) -> None:
        self.errors[session_id] = why
        self._failed_at[session_id] = time.monotonic()

    async def aclose(self) -> None:
        """Stop every copy (closing our sockets only).  Safe to call twice."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
