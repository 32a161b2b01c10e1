"""Frozen events the engines emit, and a coalescing per-subscriber queue."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from ccx_tui.engine.sessions.session import SessionInfo


@dataclass(frozen=True, slots=True)
class SessionAdded:
    """A new session exists (queued or already running), or was loaded from history."""

    info: SessionInfo


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """A session changed state (or pid, or hit a write error)."""

    info: SessionInfo


@dataclass(frozen=True, slots=True)
class SessionRemoved:
    """A finished session was deleted (retention limit, or closed by the user)."""

    session_id: str


@dataclass(frozen=True, slots=True)
class OutputAppended:
    """The session's transcript has grown to `bytes` bytes holding `lines` newlines.

    High-rate: subscribers keep only the latest one per session.
    """

    session_id: str
    bytes: int
    lines: int


@dataclass(frozen=True, slots=True)
class TreeUsage:
    """CPU in percent of one core since the last sample, resident memory in bytes."""

    cpu: float
    rss: int


@dataclass(frozen=True, slots=True)
class UsageSampled:
    """CPU and memory of each live session's process tree (about once a second, from
    an engine process).  High-rate enough to coalesce: only the latest is kept."""

    usage: Mapping[str, TreeUsage]


Event = SessionAdded | SessionUpdated | SessionRemoved | OutputAppended | UsageSampled


class Subscriber:
    """One consumer's queue.  Output events coalesce per session, so a slow consumer
    costs at most one pending output event per session, never one per chunk."""

    def __init__(self) -> None:
        self._queue: deque[Event] = deque()
        self._output: dict[str, OutputAppended] = {}
        self._usage: UsageSampled | None = None
        self._ready = asyncio.Event()
        self.closed = False

    def put(self, event: Event) -> None:
        if self.closed:
            return
        if isinstance(event, OutputAppended):
            self._output[event.session_id] = event
        elif isinstance(event, UsageSampled):
            self._usage = event
        else:
            sid = event.session_id if isinstance(event, SessionRemoved) else event.info.id
            pending = self._output.pop(sid, None)
            if pending is not None:
                self._queue.append(pending)  # output precedes the state change
            self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def get_nowait(self) -> Event | None:
        if self._queue:
            return self._queue.popleft()
        if self._output:
            key = next(iter(self._output))
            return self._output.pop(key)
        usage, self._usage = self._usage, None
        return usage

    async def get(self) -> Event | None:
        """The next event, or None once the subscriber is closed and drained."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
