"""The management channel of a ccx-tui server: a client's live table of every session,
and actions on any session by id (the engine process's clients use it, see client.py).

Extension methods (capability "manage"), on a connection of their own:

- `engine.subscribe` {} -> {"sessions": [INFO...], "current": [ID...], "stats": STATS,
  "engine": {...}}: every session the engine knows (INFO: SessionInfo.to_json), which
  of them it has had since it started (`current`: what an attaching client opens as
  tabs), and its counts.  From then on `engine.events`
  notifications {"sessions": [INFO...], "output": {ID: [BYTES, LINES]},
  "removed": [ID...], "stats": STATS, "usage": {ID: [CPU%, RSS]}} say what changed
  (usage: once a second, the CPU and memory of each live session's tree), at most one every
  FRAME_INTERVAL: a session's latest state replaces any older one not yet sent, so a
  client that reads slowly costs one entry per session, never a queue.
- `session.start` {"spec": SPEC, "autostart": bool, "environ": {...}} -> INFO.
  `environ` is the environment the session inherits instead of the engine's (the
  client's own: a session started from a shell with a venv active sees that venv).
- `session.tap` {"session_id"}: from now on, the session's output that its transcript
  does not keep (a full or failing disk; nothing while the disk keeps it all) comes
  as `session.live` {"session_id", "offset", "stream"} notifications, each followed
  by one binary frame of its bytes, at most LIVE_WINDOW behind; `session.live_end`
  {"session_id"} once the session is over.  `session.untap` stops it.
- `session.rename` {"session_id", "name"} -> INFO ("" removes the name).
- `session.input` {"session_id", "data": TEXT}: typed into the session's terminal
  (answered once written or queued for the program, so inputs sent in order arrive
  in order); `session.resize` {"session_id", "cols", "rows"}: its terminal's size.
- `session.kill` {"session_id", "force", "reason"}, `session.restart` -> INFO,
  `session.pause`, `session.resume` {"session_id"} (ids may be unique prefixes),
  `engine.kill_all` {"reason"}: answered once done, after an `engine.events` frame
  with what the action changed.
Errors carry `data: {"error": NAME}`, the name of the ccx-tui error class
(UnknownSession, AmbiguousSession, InvalidCommand, InvalidTransition, ...).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from websockets.exceptions import ConnectionClosed

from ccx_tui import __version__
from ccx_tui.engine.server.usage_feed import UsageFeed
from ccx_tui.engine.sessions.events import (
    Event,
    OutputAppended,
    SessionAdded,
    SessionRemoved,
    SessionUpdated,
    Subscriber,
    TreeUsage,
)
from ccx_tui.engine.sessions.local import EngineStats, LocalEngine
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec
from ccx_tui.engine.sessions.tap import Chunk, OutputTap
from ccx_tui.engine.wire import protocol as p
from ccx_tui.errors import CcxError

CAPABILITY = "manage"
EVENTS_METHOD = "engine.events"
FRAME_INTERVAL = 0.02  # at most 50 frames a second: a flood costs a client no more
LIVE_METHOD = "session.live"
LIVE_END_METHOD = "session.live_end"
LIVE_WINDOW = 8 * 1024 * 1024  # what a forwarder holds for a client that lags
METHODS = frozenset(
    {
        "engine.subscribe",
        "session.tap",
        "session.untap",
        "engine.kill_all",
        "session.start",
        "session.kill",
        "session.restart",
        "session.pause",
        "session.resume",
        "session.input",
        "session.resize",
        "session.rename",
    }
)

Send = Callable[[str], Awaitable[None]]
SendFrames = Callable[..., Awaitable[None]]


def info_to_wire(info: SessionInfo) -> dict[str, Any]:
    """A session as the wire carries it (its spec's env included: the variables the
    user gave it; never the environment it inherited, see SessionSpec.base_env)."""
    return info.to_json()


def stats_to_wire(stats: EngineStats) -> dict[str, int]:
    return {
        "running": stats.running,
        "paused": stats.paused,
        "queued": stats.queued,
        "max_sessions": stats.max_sessions,
    }


class ManageError(Exception):
    """A request the channel refuses (bad params): its JSON-RPC code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Manager:
    """One connection's management channel.  `call` answers a request (through
    `send`, from a task of its own: a kill that takes its grace period never stops the
    connection reading); `aclose` ends its subscription."""

    def __init__(
        self,
        engine: LocalEngine,
        send: Send,
        send_frames: SendFrames,
        usage: UsageFeed | None = None,
    ) -> None:
        self.engine = engine
        self._usage_feed = usage
        self._usage: dict[str, TreeUsage] | None = None  # a sample not sent yet
        self._send = send
        self._send_frames = send_frames
        self._forwarders: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscriber | None = None
        # What changed since the last frame: latest state per session, bounded.
        self._infos: dict[str, SessionInfo] = {}
        self._output: dict[str, tuple[int, int]] = {}
        self._removed: set[str] = set()
        self._dirty = asyncio.Event()

    def call(self, method: str, params: dict[str, Any], msg_id: p.Id) -> None:
        """Start answering `method` (one of METHODS)."""
        self._spawn(self._answer(method, params, msg_id))

    async def aclose(self) -> None:
        if self._sub is not None:
            self.engine.unsubscribe(self._sub)
        for task in [*self._tasks, *self._forwarders.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._forwarders.values(), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, method: str, params: dict[str, Any], msg_id: p.Id) -> None:
        try:
            if method == "engine.subscribe":
                await self._subscribe(msg_id)
                return
            result = await self._act(method, params)
        except ManageError as exc:
            frame = p.encode_error(msg_id, exc.code, exc.message)
        except CcxError as exc:
            frame = p.encode_error(msg_id, p.INTERNAL, str(exc), {"error": type(exc).__name__})
        else:
            frame = p.encode_result(msg_id, result)
            # What the action changed reaches the client before its answer does: a
            # client sees a kill's end in its table as soon as `kill` returns.
            await self._flush()
        await self._send(frame)

    async def _act(self, method: str, params: dict[str, Any]) -> Any:
        engine = self.engine
        if method == "session.start":
            spec = _spec(params)
            autostart = params.get("autostart", True)
            if not isinstance(autostart, bool):
                raise ManageError(p.INVALID_PARAMS, "Invalid params: autostart must be a boolean")
            info = await engine.start(spec, autostart=autostart)
            # Once a client hears of a session, it is on disk: an engine killed now
            # leaves it for the next one to show (as interrupted) rather than lose it.
            await engine.flush_records()
            return info_to_wire(engine.get(info.id))
        if method == "engine.kill_all":
            await engine.kill_all(_text(params, "reason", "killed"))
            return {}
        session_id = params.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise ManageError(p.INVALID_PARAMS, f"Invalid params: {method} needs session_id")
        if method == "session.tap":
            self.engine.get(session_id)  # raises UnknownSession
            if session_id not in self._forwarders:
                tap = self.engine.tap(session_id, window=LIVE_WINDOW, unkept_only=True)
                task = asyncio.get_running_loop().create_task(self._forward(session_id, tap))
                self._forwarders[session_id] = task
            return {}
        if method == "session.untap":
            forwarder = self._forwarders.pop(session_id, None)
            if forwarder is not None:
                forwarder.cancel()
            return {}
        if method == "session.kill":
            force = params.get("force", False)
            if not isinstance(force, bool):
                raise ManageError(p.INVALID_PARAMS, "Invalid params: force must be a boolean")
            await engine.kill(session_id, force=force, reason=_text(params, "reason", "killed"))
            return {}
        if method == "session.restart":
            return info_to_wire(await engine.restart(session_id))
        if method == "session.pause":
            await engine.pause(session_id)
            return {}
        if method == "session.input":
            data = params.get("data")
            if not isinstance(data, str):
                raise ManageError(p.INVALID_PARAMS, "Invalid params: data must be a string")
            await engine.send_input(session_id, data.encode("utf-8", "replace"))
            return {}
        if method == "session.rename":
            return info_to_wire(await engine.rename(session_id, _text(params, "name", "")))
        if method == "session.resize":
            cols, rows = params.get("cols"), params.get("rows")
            await engine.resize(session_id, cols, rows)  # type: ignore[arg-type]  # checked
            return {}
        await engine.resume(session_id)
        return {}

    # -- live output the disk did not keep ------------------------------------------

    async def _forward(self, session_id: str, tap: OutputTap) -> None:
        """Send the session's output the transcript did not keep (once its disk
        failed; nothing while the disk keeps it all), then `session.live_end`."""
        try:
            while await self.engine.until_unkept(session_id):
                chunks = await tap.read()
                if not chunks:
                    break  # the session is over
                await self._forward_chunks(session_id, chunks)
            # Over: what the tap still holds was not kept either, if the disk failed.
            if self.engine.get(session_id).write_error is not None:
                await self._forward_chunks(session_id, tap.read_nowait())
            await self._send(p.encode_notification(LIVE_END_METHOD, {"session_id": session_id}))
        except (CcxError, ConnectionClosed):
            pass  # the session went (retention), or the client did
        finally:
            tap.close()
            if self._forwarders.get(session_id) is asyncio.current_task():
                del self._forwarders[session_id]

    async def _forward_chunks(self, session_id: str, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            header = p.encode_notification(
                LIVE_METHOD,
                {"session_id": session_id, "offset": chunk.offset, "stream": chunk.stream},
            )
            await self._send_frames(header, chunk.data)

    # -- the subscription -------------------------------------------------------------

    async def _subscribe(self, msg_id: p.Id) -> None:
        if self._sub is not None:
            raise ManageError(p.INVALID_PARAMS, "Invalid params: already subscribed")
        # Subscribed before the snapshot: a change in between comes again as an event.
        sub = self._sub = self.engine.subscribe()
        engine = self.engine
        result = {
            "sessions": [info_to_wire(info) for info in engine.sessions()],
            "current": [info.id for info in engine.current()],
            "stats": stats_to_wire(engine.stats),
            "engine": {
                "pid": os.getpid(),
                "version": __version__,
                "data_dir": str(engine.config.data_dir),
                "kill_grace": engine.config.kill_grace,
                "default_ttl": engine.config.default_ttl,
            },
        }
        # The answer goes out before the first event frame can.
        await self._send(p.encode_result(msg_id, result))
        self._spawn(self._collect(sub))
        self._spawn(self._sender())
        if self._usage_feed is not None:
            self._spawn(self._follow_usage(self._usage_feed))

    async def _follow_usage(self, feed: UsageFeed) -> None:
        async for usage in feed.follow():
            self._usage = usage
            self._dirty.set()

    async def _collect(self, sub: Subscriber) -> None:
        while (event := await sub.get()) is not None:
            self._note(event)
            while (more := sub.get_nowait()) is not None:
                self._note(more)
            self._dirty.set()

    def _note(self, event: Event) -> None:
        if isinstance(event, OutputAppended):
            self._output[event.session_id] = (event.bytes, event.lines)
        elif isinstance(event, (SessionAdded, SessionUpdated)):
            self._infos[event.info.id] = event.info
            self._removed.discard(event.info.id)
        elif isinstance(event, SessionRemoved):
            self._infos.pop(event.session_id, None)
            self._output.pop(event.session_id, None)
            self._removed.add(event.session_id)

    async def _sender(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._flush()
            await asyncio.sleep(FRAME_INTERVAL)  # what comes meanwhile goes in one frame

    async def _flush(self) -> None:
        """Send what changed, if anything, now."""
        if self._sub is None:
            return
        while (event := self._sub.get_nowait()) is not None:
            self._note(event)
        if not (self._infos or self._output or self._removed or self._usage is not None):
            return
        params: dict[str, Any] = {
            "sessions": [info_to_wire(info) for info in self._infos.values()],
            "output": {sid: list(counts) for sid, counts in self._output.items()},
            "removed": sorted(self._removed),
            "stats": stats_to_wire(self.engine.stats),
        }
        if self._usage is not None:
            params["usage"] = {sid: [u.cpu, u.rss] for sid, u in self._usage.items()}
            self._usage = None
        self._infos.clear()
        self._output.clear()
        self._removed.clear()
        await self._send(p.encode_notification(EVENTS_METHOD, params))


def _spec(params: dict[str, Any]) -> SessionSpec:
    raw, environ = params.get("spec"), params.get("environ")
    if not isinstance(raw, dict) or not isinstance(raw.get("command"), str):
        raise ManageError(p.INVALID_PARAMS, "Invalid params: spec must be an object with command")
    if environ is not None and not (
        isinstance(environ, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in environ.items())
    ):
        raise ManageError(p.INVALID_PARAMS, "Invalid params: environ must map names to strings")
    ttl = raw.get("ttl")
    if ttl is not None and (not isinstance(ttl, (int, float)) or isinstance(ttl, bool)):
        raise ManageError(p.INVALID_PARAMS, "Invalid params: ttl must be a number of seconds")
    try:
        spec = SessionSpec.from_json(raw)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ManageError(p.INVALID_PARAMS, f"Invalid params: bad spec ({exc})") from None
    return spec if environ is None else replace(spec, base_env=dict(environ))


def _text(params: dict[str, Any], name: str, default: str) -> str:
    value = params.get(name, default)
    if not isinstance(value, str):
        raise ManageError(p.INVALID_PARAMS, f"Invalid params: {name} must be a string")
    return value
