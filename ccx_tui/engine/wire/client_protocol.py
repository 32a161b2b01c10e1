"""The client side of the management channel (manage.py), sans I/O: frames in, events
and frames out, deadlines; no sockets, no clock of its own (tests feed it frames).

A client keeps a table of every session the server knows: filled by the answer to
`engine.subscribe`, then kept up to date by `engine.events` frames, which become the
engine's own events (events.py), so a client looks exactly like an engine to the app.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ccx_tui.engine.server import manage
from ccx_tui.engine.sessions.events import (
    Event,
    OutputAppended,
    SessionAdded,
    SessionRemoved,
    SessionUpdated,
    TreeUsage,
    UsageSampled,
)
from ccx_tui.engine.sessions.local import EngineStats
from ccx_tui.engine.sessions.session import SessionInfo
from ccx_tui.engine.sessions.tap import Chunk
from ccx_tui.engine.wire import protocol as p
from ccx_tui.errors import (
    AmbiguousSession,
    CcxError,
    DataDirError,
    InvalidCommand,
    InvalidTransition,
    UnknownSession,
)

SUBSCRIBE = "engine.subscribe"
# The errors a server names (manage.py's `data.error`) that a client raises as such.
ERRORS: dict[str, type[CcxError]] = {
    cls.__name__: cls
    for cls in (UnknownSession, AmbiguousSession, InvalidCommand, InvalidTransition, DataDirError)
}


class EngineCallError(CcxError):
    """The engine refused or failed a request; the message says why."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to request `id`: its result, or the error to raise."""

    id: int
    result: Any = None
    error: CcxError | None = None


@dataclass(slots=True)
class Received:
    """What one frame (or the time passing) gave: replies to requests, engine events,
    and frames to send back."""

    replies: list[Reply] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    send: list[str] = field(default_factory=list)
    live: list[tuple[str, Chunk]] = field(default_factory=list)
    """Output the disk did not keep, per session (see `session.tap`)."""
    live_end: list[str] = field(default_factory=list)
    """Sessions whose live output is over."""


class EngineProtocol:
    """One connection's protocol state: pending requests and their deadlines, the
    session table, the engine's counts."""

    def __init__(self, *, localize: Callable[[SessionInfo], SessionInfo] | None = None) -> None:
        """`localize` rewrites each session the server names (where its transcript
        is read here, for a server on another machine)."""
        self._localize = localize
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, float | None]] = {}  # id -> (method, deadline)
        self._sessions: dict[str, SessionInfo] = {}
        # Byte and line counts newer than `_sessions`' records, merged when the table is
        # read: output frames come for every busy session many times a second, and a
        # new record per frame (a dataclass copy) took a tenth of the app's time with
        # 100 of them, when it reads the table about once a second.
        self._counts: dict[str, tuple[int, int]] = {}
        self.current: list[str] = []
        """The sessions the engine has had since it started (from the subscription)."""
        self.stats = EngineStats(0, 0, 0, 0)
        self.engine: dict[str, Any] = {}
        """What the engine said of itself: pid, version, data_dir, kill_grace..."""
        self.capabilities: tuple[str, ...] = ()
        self.connected = False
        """The server's `connected` notification has come."""
        self.subscribed = False
        self._resubscribe = False
        self._live_header: tuple[str, int, int] | None = None  # waits for its payload

    @property
    def sessions(self) -> dict[str, SessionInfo]:
        """Every session the engine knows, by id, as of the last frame."""
        for sid in list(self._counts):
            self.session(sid)
        return self._sessions

    def session(self, session_id: str) -> SessionInfo | None:
        """One session as of the last frame, merging its own counts only (a tab switch
        reads one session: merging a hundred busy ones' took a few ms of it)."""
        counts = self._counts.pop(session_id, None)
        had = self._sessions.get(session_id)
        if counts is not None and had is not None and (had.bytes, had.lines) != counts:
            had = self._sessions[session_id] = replace(had, bytes=counts[0], lines=counts[1])
        return had

    # -- requests ---------------------------------------------------------------------

    def request(
        self, method: str, params: dict[str, Any], *, deadline: float | None = None
    ) -> tuple[int, str]:
        """A request's id and frame; its reply comes from `receive` (or `expire`)."""
        msg_id = next(self._ids)
        self._pending[msg_id] = (method, deadline)
        return msg_id, p.encode_request(method, params, msg_id)

    def subscribe(self, *, deadline: float | None = None) -> tuple[int, str]:
        """The subscription request.  Again after a reconnect: the answer then becomes
        events for what changed meanwhile (new, changed and gone sessions)."""
        self._resubscribe = self.subscribed
        return self.request(SUBSCRIBE, {}, deadline=deadline)

    def waiting(self, msg_id: int) -> bool:
        """Whether request `msg_id` still waits for its answer."""
        return msg_id in self._pending

    def next_deadline(self) -> float | None:
        deadlines = [d for _, d in self._pending.values() if d is not None]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[Reply]:
        """Replies (errors) for the requests whose deadline has passed."""
        late = [i for i, (_, d) in self._pending.items() if d is not None and d <= now]
        replies = []
        for msg_id in late:
            method, _ = self._pending.pop(msg_id)
            replies.append(Reply(msg_id, error=EngineCallError(f"no answer to {method} in time")))
        return replies

    def lost(self, why: str) -> list[Reply]:
        """The connection is gone: every pending request fails with `why`."""
        replies = [Reply(i, error=EngineCallError(why)) for i in self._pending]
        self._pending.clear()
        self.connected = False
        return replies

    def localize(self, info: SessionInfo) -> SessionInfo:
        """A session as the server names it, as this side sees it."""
        return info if self._localize is None else self._localize(info)

    def learn(self, info: SessionInfo) -> list[Event]:
        """A session a reply named (one just started): its SessionAdded if new, so
        the event frame that will name it too is an update."""
        if info.id in self.sessions:
            return []
        self._sessions[info.id] = info
        return [SessionAdded(info)]

    # -- frames from the server -------------------------------------------------------

    def receive(self, frame: str | bytes) -> Received:
        """Apply one frame from the server.  Never raises: a frame that makes no sense
        is ignored (the server is ours; a bad frame must still not end the client)."""
        out = Received()
        header, self._live_header = self._live_header, None
        if header is not None:  # the frame after a `session.live` header: its bytes
            if isinstance(frame, bytes):
                session_id, offset, stream = header
                out.live.append((session_id, Chunk(offset, stream, frame)))
                return out
        msg = p.parse(frame)
        if isinstance(msg, p.Result | p.ErrorResponse):
            self._reply(msg, out)
        elif isinstance(msg, p.Notification):
            self._notification(msg, out)
        return out

    def _reply(self, msg: p.Result | p.ErrorResponse, out: Received) -> None:
        if not isinstance(msg.id, int) or msg.id not in self._pending:
            return
        method, _ = self._pending.pop(msg.id)
        if isinstance(msg, p.ErrorResponse):
            name = msg.data.get("error") if isinstance(msg.data, dict) else None
            error_class = ERRORS.get(name, EngineCallError) if isinstance(name, str) else None
            out.replies.append(Reply(msg.id, error=(error_class or EngineCallError)(msg.message)))
            return
        if method == SUBSCRIBE:
            try:
                self._snapshot(msg.result, out)
            except (TypeError, ValueError, KeyError) as exc:
                error = EngineCallError(f"bad answer to {SUBSCRIBE}: {exc}")
                out.replies.append(Reply(msg.id, error=error))
                return
        out.replies.append(Reply(msg.id, msg.result))

    def _snapshot(self, result: Any, out: Received) -> None:
        if not isinstance(result, dict):
            raise TypeError("not an object")
        infos = {info.id: info for info in (self.localize(_info(r)) for r in result["sessions"])}
        self.current = [sid for sid in result.get("current", []) if sid in infos]
        self.stats = _stats(result.get("stats"), self.stats)
        engine = result.get("engine")
        self.engine = engine if isinstance(engine, dict) else {}
        if self._resubscribe:  # what happened while we were away
            for sid, info in infos.items():
                known = self.sessions.get(sid)
                if known is None:
                    out.events.append(SessionAdded(info))
                elif known != info:
                    out.events.append(SessionUpdated(info))
            out.events.extend(SessionRemoved(sid) for sid in self.sessions if sid not in infos)
        self._sessions = infos
        self._counts.clear()
        self.subscribed = True

    def _notification(self, msg: p.Notification, out: Received) -> None:
        if msg.method == "ping":
            out.send.append(p.encode_notification("pong", {}))
        elif msg.method == "connected":
            caps = msg.params.get("capabilities")
            self.capabilities = tuple(c for c in caps if isinstance(c, str)) if caps else ()
            self.connected = True
        elif msg.method == manage.EVENTS_METHOD and self.subscribed:
            self._events(msg.params, out)
        elif msg.method == manage.LIVE_METHOD:
            sid, where = msg.params.get("session_id"), msg.params.get("offset")
            stream = msg.params.get("stream")
            if isinstance(sid, str) and isinstance(where, int) and isinstance(stream, int):
                self._live_header = (sid, where, stream)
        elif msg.method == manage.LIVE_END_METHOD:
            sid = msg.params.get("session_id")
            if isinstance(sid, str):
                out.live_end.append(sid)

    def _events(self, params: dict[str, Any], out: Received) -> None:
        for raw in params.get("sessions") or []:
            try:
                info = self.localize(_info(raw))
            except (TypeError, ValueError, KeyError):
                continue
            known = info.id in self._sessions
            self._sessions[info.id] = info
            self._counts.pop(info.id, None)  # the record is as new as the counts
            out.events.append(SessionUpdated(info) if known else SessionAdded(info))
        output = params.get("output")
        for sid, counts in output.items() if isinstance(output, dict) else ():
            if sid not in self._sessions or not _counts(counts):
                continue
            size, lines = counts
            self._counts[sid] = (size, lines)
            out.events.append(OutputAppended(sid, size, lines))
        for sid in params.get("removed") or []:
            if isinstance(sid, str) and self._sessions.pop(sid, None) is not None:
                self._counts.pop(sid, None)
                out.events.append(SessionRemoved(sid))
        self.stats = _stats(params.get("stats"), self.stats)
        usage = params.get("usage")
        if isinstance(usage, dict):
            out.events.append(UsageSampled(_usage(usage)))


def _usage(raw: dict[str, Any]) -> dict[str, TreeUsage]:
    usage = {}
    for sid, pair in raw.items():
        if isinstance(pair, list) and len(pair) == 2:
            cpu, rss = pair
            if isinstance(cpu, int | float) and isinstance(rss, int):
                usage[sid] = TreeUsage(float(cpu), rss)
    return usage


def _info(raw: Any) -> SessionInfo:
    if not isinstance(raw, dict):
        raise TypeError("a session is not an object")
    return SessionInfo.from_json(raw)


def _counts(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)
    )


def _stats(raw: Any, previous: EngineStats) -> EngineStats:
    names = ("running", "paused", "queued", "max_sessions")
    if not isinstance(raw, dict) or not all(isinstance(raw.get(n), int) for n in names):
        return previous
    return EngineStats(*(int(raw[n]) for n in names))
