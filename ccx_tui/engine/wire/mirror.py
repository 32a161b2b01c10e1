"""Local copies of the transcripts of a ccx-tui server's sessions.

A client attached to an engine on another machine (RemoteEngineClient) shows that
engine's sessions with the same views as local ones, and views read transcripts from
disk: so each session's transcript is copied here as it grows, through `session.attach`
from where the copy left off (a reconnect or a new client resumes, never starts over).
A live session is followed on a socket of its own until it ends; a finished one is
caught up a few at a time.  The copy is byte-exact by the server's transcript offsets
(streams kept in the `chunks.bin` sidecar, the server's own bytes between runs
included; arrival times are this machine's), and the session's `runs.jsonl` comes
along (from a server that offers it), so a view of the copy draws the same
separators between the runs of a restarted session.

One exception: bytes the server lost (its disk was full and it no longer held them)
are nowhere, so the copy holds a note in their place ("[ccx-tui: N bytes of output
lost: ...]"), and from there its length is not the server's offset any more.
`mirror.json` beside it (an `Anchor`) says where that is, so that a copy resumes at
the server's offset, not at its own length.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from ccx_tui.engine.sessions.session import SessionInfo, State
from ccx_tui.engine.transcripts.runs import append_copy, runs_size
from ccx_tui.engine.transcripts.transcript import (
    SIDECAR_NAME,
    STDERR,
    TRANSCRIPT_NAME,
    TranscriptWriter,
    trim_sidecar,
)
from ccx_tui.engine.wire.mirror_protocol import Gap, MirrorFollower, Output, Piece
from ccx_tui.engine.wire.remote import REATTACH_DELAYS, RemoteError, RemoteRefused, dial

CATCH_UP_AT_ONCE = 4
"""Finished sessions copied at the same time (live ones are all followed)."""
RETRY_AFTER = 2.0
"""A copy that failed (the server went away) is tried again after this long."""
ANCHOR_NAME = "mirror.json"

OnOutput = Callable[[str, int, int], None]
"""(session id, bytes, lines) of a local copy that grew."""


def mirror_root(data_dir: Path, url: str) -> Path:
    """Where the copies of `url`'s sessions live: one directory per server."""
    parts = urlsplit(url)
    label = "".join(c if c.isalnum() or c in "-." else "_" for c in (parts.hostname or "unix"))
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]  # two servers on one host
    return data_dir / "mirrors" / f"{label}-{parts.port or 0}-{digest}"


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a copy and the server's output last parted (`mirror.json`).

    Byte `local` of the copy is byte `server` of the server's output; there the copy
    holds a note `note` bytes long in place of `lost` bytes nobody has, and after the
    note the two go on byte for byte.  It is written before the note, so a note that
    did not land whole (the client died, or its disk filled) is known as such.
    """

    local: int
    server: int
    note: int
    lost: int


def stream_end(info: SessionInfo) -> int:
    """The server offset where a finished session's output ends (past what its disk
    did not keep, which the server states or still holds)."""
    return info.bytes + (info.bytes_lost if info.write_error is not None else 0)


def resume_point(directory: Path) -> tuple[int, int]:
    """(the bytes of the copy that stand, the server offset they reach): where to go
    on from.  A copy cut inside its note stands up to the note; one cut before its
    anchor (by hand) cannot be placed, and starts over."""
    try:
        size = os.stat(directory / TRANSCRIPT_NAME).st_size
    except OSError:
        size = 0
    anchor = read_anchor(directory)
    if anchor is None:
        return size, size
    past = anchor.local + anchor.note
    if size >= past:
        return size, anchor.server + anchor.lost + size - past
    if size >= anchor.local:
        return anchor.local, anchor.server
    return 0, 0


def read_anchor(directory: Path) -> Anchor | None:
    """The copy's anchor, if it has one (none: the copy is the server's bytes)."""
    try:
        raw = json.loads((directory / ANCHOR_NAME).read_bytes())
        anchor = Anchor(**{name: int(raw[name]) for name in Anchor.__slots__})
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return anchor if min(anchor.local, anchor.server, anchor.note, anchor.lost) >= 0 else None


def write_anchor(directory: Path, anchor: Anchor) -> None:
    """Replace the anchor at once (a reader sees the old one or the new one).
    Raises OSError."""
    tmp = directory / f".{ANCHOR_NAME}.tmp"
    tmp.write_text(json.dumps(asdict(anchor)))
    os.replace(tmp, directory / ANCHOR_NAME)


def open_copy(directory: Path) -> tuple[TranscriptWriter, int]:
    """The copy's writer, at its resume point (what stands past it is cut off), and
    the server offset to go on from.  Blocking (it may count a long copy's lines).
    Raises OSError."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keep, server = resume_point(directory)
    transcript = directory / TRANSCRIPT_NAME
    if keep == 0 and server == 0:  # a fresh copy, or one that starts over
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / ANCHOR_NAME)
    with contextlib.suppress(FileNotFoundError):
        if os.stat(transcript).st_size > keep:
            os.truncate(transcript, keep)
            trim_sidecar(directory / SIDECAR_NAME, keep)
    return TranscriptWriter(directory), server


async def _open_in_thread(directory: Path) -> tuple[TranscriptWriter, int]:
    """`open_copy` off the event loop; a writer opened after we were cancelled is
    closed (never leaked)."""
    opening = asyncio.ensure_future(asyncio.to_thread(open_copy, directory))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(opening: asyncio.Future[tuple[TranscriptWriter, int]]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result()[0].close()


class CopyFailed(Exception):
    """The copy cannot go on (the server refused, or our disk failed): no retry now."""


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
        self._later: dict[str, SessionInfo] = {}  # news of a session while it was copied
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

    def reached(self, session_id: str) -> int:
        """The server offset the copy of a session has reached (on disk)."""
        return resume_point(self.root / session_id)[1]

    def copying(self, session_id: str) -> bool:
        """Whether a copy of the session is under way."""
        return session_id in self._tasks

    def update(self, info: SessionInfo) -> None:
        """The server says this of a session: copy what is missing."""
        if self._closed or info.state is State.QUEUED:
            return
        if info.id in self._tasks:
            # Looked at again once this copy ends: a restart may come just as the
            # stream of the run before ends.
            self._later[info.id] = info
            return
        live = not info.state.final
        if not live and self.reached(info.id) >= stream_end(info):
            return
        failed = self._failed_at.get(info.id)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER:
            return
        task = asyncio.get_running_loop().create_task(self._copy(info.id, live))
        self._tasks[info.id] = task
        task.add_done_callback(lambda _: self._copied(info.id))

    def _copied(self, session_id: str) -> None:
        self._tasks.pop(session_id, None)
        later = self._later.pop(session_id, None)
        if later is not None:
            self.update(later)

    async def _copy(self, session_id: str, live: bool) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if not live:
                await stack.enter_async_context(self._catch_up)
            directory = self.root / session_id
            try:
                writer, offset = await _open_in_thread(directory)
            except OSError as exc:
                self._failed(session_id, f"cannot write {directory}: {exc.strerror or exc}")
                return
            stack.callback(writer.close)
            follower = MirrorFollower(
                self.url, session_id, offset=offset, runs=runs_size(directory)
            )
            delays = iter(REATTACH_DELAYS)
            while True:
                before = follower.offset
                try:
                    await self._follow(follower, writer)
                except (CopyFailed, RemoteRefused) as exc:
                    self._failed(session_id, str(exc))
                    return
                except RemoteError as exc:  # a blip, or the server went away
                    if follower.offset > before:
                        delays = iter(REATTACH_DELAYS)  # it was going: a blip
                    delay = next(delays, None)
                    if delay is None:
                        self._failed(session_id, str(exc))
                        return
                    await asyncio.sleep(delay)
                    continue
                break
            self.errors.pop(session_id, None)
            self._failed_at.pop(session_id, None)

    async def _follow(self, follower: MirrorFollower, writer: TranscriptWriter) -> None:
        """Follow the session on a connection of its own until its stream ends.
        Raises CopyFailed, RemoteRefused, RemoteError (a lost connection)."""
        ws = await dial(self.url, token=self._token, ca_file=self._ca_file)
        follower.connecting()
        try:
            while True:
                step = follower.receive(await ws.recv())
                self._write(follower.session_id, writer, step.pieces)
                for frame in step.send:
                    await ws.send(frame)
                if step.error is not None:
                    raise CopyFailed(step.error)
                if step.done:
                    return
        except ConnectionClosed:
            raise RemoteError(f"connection lost ({self.url})") from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)

    def _write(self, session_id: str, writer: TranscriptWriter, pieces: list[Piece]) -> None:
        """Write what a frame gave into the copy (raises CopyFailed if it cannot)."""
        directory = self.root / session_id
        size = writer.offset
        try:
            for piece in pieces:
                if writer.error is not None:  # it stopped at an exact prefix: resumed there
                    raise CopyFailed(f"cannot write the copy of {session_id}: {writer.error}")
                if isinstance(piece, Output):
                    writer.write(piece.stream, piece.data)
                elif isinstance(piece, Gap):
                    note = piece.note
                    anchor = Anchor(writer.offset, piece.offset, len(note), piece.count)
                    try:  # first: a resume must know where the note is, even a torn one
                        write_anchor(directory, anchor)
                    except OSError as exc:
                        why = exc.strerror or exc
                        raise CopyFailed(f"cannot write {directory}: {why}") from None
                    writer.write(STDERR, note)
                else:  # only decorates the view: a piece not written comes again next time
                    append_copy(directory, piece.offset, piece.data)
            if writer.error is not None:
                raise CopyFailed(f"cannot write the copy of {session_id}: {writer.error}")
        finally:
            if writer.offset != size:
                self._on_output(session_id, writer.offset, writer.newlines)

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
