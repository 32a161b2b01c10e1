"""EngineClient: the engine interface, served by an engine process.

A thin asyncio loop around client_protocol.EngineProtocol: it moves frames between a
socket and the protocol, resolves requests, and hands the engine's events to
subscribers.  Where the socket goes is a connector's business: the engine process of
our data dir (EngineSocket: a Unix socket; the engine writes transcripts into the
data dir and the views read them there, so the socket carries only the session table
and byte counts, coalesced), or a ccx-tui server on another machine (ServerSocket:
its transcripts are copied here by a TranscriptMirror, see mirror.py, and the views
read the copies).  The app cannot tell the two apart.

Closing a client detaches it: the sessions go on in the engine process.  If the
connection is lost (the engine was killed, or exited idle just as we came), the
client connects again (starting our own engine if need be) and catches up; `status`
says where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ccx_tui.engine.server import manage
from ccx_tui.engine.server.daemon_client import EngineError, ensure_engine
from ccx_tui.engine.server.paths import socket_path
from ccx_tui.engine.sessions.events import Event, OutputAppended, Subscriber
from ccx_tui.engine.sessions.local import EngineStats
from ccx_tui.engine.sessions.process import MARKER_ENV, SECRET_ENV
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec
from ccx_tui.engine.sessions.tap import OutputTap
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.client_protocol import EngineCallError, EngineProtocol, Received, Reply
from ccx_tui.engine.wire.mirror import TranscriptMirror, mirror_root
from ccx_tui.engine.wire.remote import RemoteError, dial
from ccx_tui.engine.wire.unixsock import WS_URI
from ccx_tui.errors import CcxError, UnknownSession

CONNECT_DEADLINE = 30.0
RECONNECT_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)
ENGINE_GONE = "the engine process went away"


class Connector(Protocol):
    """Opens the socket to an engine (raises EngineError, saying why not)."""

    where: str
    """What it connects to, for messages."""
    remote: bool
    """The engine runs on another machine: our environment and directories are not
    its own, and its transcripts must be copied here."""

    async def connect(self) -> ClientConnection: ...


class EngineSocket:
    """The engine process of a data dir, on its Unix socket (started if need be)."""

    remote = False

    def __init__(
        self, data_dir: Path, *, start: bool, idle_exit: float | None, args: tuple[str, ...]
    ) -> None:
        self.data_dir = data_dir
        self.start = start
        self.idle_exit = idle_exit
        self.args = args
        self.where = f"the engine process on {socket_path(data_dir)}"

    async def connect(self) -> ClientConnection:
        if self.start:
            sock = await asyncio.to_thread(
                ensure_engine, self.data_dir, idle_exit=self.idle_exit, args=self.args
            )
        else:
            sock = socket_path(self.data_dir)
        try:
            return await unix_connect(
                str(sock), WS_URI, max_size=None, compression=None, open_timeout=None
            )
        except (OSError, InvalidHandshake) as exc:
            raise EngineError(f"cannot reach the engine process on {sock}: {_why(exc)}") from None


class ServerSocket:
    """A ccx-tui server (`ccx-tui serve`) at a WebSocket URL, with a bearer token."""

    remote = True

    def __init__(self, url: str, *, token: str | None, ca_file: Path | None) -> None:
        self.url = url
        self.token = token
        self.ca_file = ca_file
        self.where = url

    async def connect(self) -> ClientConnection:
        try:
            return await dial(self.url, token=self.token, ca_file=self.ca_file)
        except RemoteError as exc:
            raise EngineError(str(exc)) from None


async def probe(server: ServerSocket, *, deadline: float = CONNECT_DEADLINE) -> tuple[str, ...]:
    """Connect to `server`, read what it says it can do (the capabilities of its
    `connected` greeting; () if it says nothing within `deadline`) and let go.  Raises
    EngineError saying why it cannot be used (a wrong token, a refused connection),
    before any screen is taken."""
    ws = await server.connect()
    caps: tuple[str, ...] = ()
    try:
        async with asyncio.timeout(deadline):
            frame = await ws.recv()
        msg = p.parse(frame)
        if isinstance(msg, p.Notification):
            greeting = p.decode_notification(msg)
            if isinstance(greeting, p.Connected):
                caps = greeting.capabilities
    except (TimeoutError, ConnectionClosed):
        pass
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)
    return caps


def can_attach(capabilities: tuple[str, ...]) -> bool:
    """A server with these capabilities is a ccx-tui server whose engine can be
    attached (every session shown, kept running when we go), not launch-only."""
    return manage.CAPABILITY in capabilities


class EngineClient:
    """Sessions of the engine process of `data_dir` (started on first use).

    `engine_args` are the settings a new engine process starts with (see
    daemon_client.ensure_engine); an engine already running keeps its own.
    `default_ttl` is sent with each session that names none; `scrub_env` names the
    variables of our environment that never reach the engine.  Without
    `start_engine`, `open()` only finds a running engine (EngineError if none).
    """

    survives_detach = True
    """Sessions go on after `aclose()` (the app may offer to detach)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        engine_args: tuple[str, ...] = (),
        default_ttl: float | None = None,
        scrub_env: frozenset[str] = SECRET_ENV,
        idle_exit: float | None = None,
        environ: Mapping[str, str] | None = None,
        start_engine: bool = True,
        server: ServerSocket | None = None,
        name: str | None = None,
    ) -> None:
        """The engine process of `data_dir`, or with `server` the ccx-tui server it
        names (`name`: what the app calls it; its transcripts are copied under
        `data_dir`)."""
        self.data_dir = data_dir.expanduser().absolute()
        self.engine_args = engine_args
        self.default_ttl = default_ttl
        self.scrub_env = scrub_env | SECRET_ENV | {MARKER_ENV}
        self.idle_exit = idle_exit
        self._environ = environ
        self.start_engine = start_engine
        self.connector: Connector = server or EngineSocket(
            self.data_dir, start=start_engine, idle_exit=idle_exit, args=engine_args
        )
        self.name = name or (server.url if server else "local")
        self.location = self.name
        self.reattach = f"ccx-tui attach --server {server.url}" if server else "ccx-tui attach"
        self.status = "connecting"
        """connecting / connected / reconnecting / lost: REASON."""
        self.mirror: TranscriptMirror | None = None
        if server is not None:
            self.mirror = TranscriptMirror(
                server.url,
                mirror_root(self.data_dir, server.url),
                token=server.token,
                ca_file=server.ca_file,
                location=self.location,
                on_output=self._mirrored,
            )
        self._proto = EngineProtocol(localize=self.mirror.localize if self.mirror else None)
        self._ws: ClientConnection | None = None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._subscribers: set[Subscriber] = set()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._taps: dict[str, set[OutputTap]] = {}  # live output the disk did not keep
        self._requests: set[asyncio.Task[None]] = set()  # fire-and-check requests

    # -- lifetime ---------------------------------------------------------------------

    async def open(self) -> None:
        """Start or find the engine process, connect and load the session table.
        Raises EngineError if no engine can be reached."""
        await self._connect()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def aclose(self, reason: str = "detached") -> None:
        """Detach: the sessions go on in the engine process.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for task in [self._reader, *self._requests]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._reader, *self._requests] if t is not None),
            return_exceptions=True,
        )
        for taps in list(self._taps.values()):
            for tap in list(taps):
                tap.close()
        if self.mirror is not None:
            await self.mirror.aclose()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
        self._fail(self._proto.lost("the client closed"))
        for sub in list(self._subscribers):
            sub.close()

    def kill_all_now(self) -> None:
        """Nothing to do: the sessions are the engine process's (HangupGuard's last
        resort is for engines that live in our process)."""

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_DEADLINE):
                ws = await self.connector.connect()
                proto = self._proto
                while not proto.connected:
                    await self._apply(ws, proto.receive(await ws.recv()))
                msg_id, frame = proto.subscribe()
                await ws.send(frame)
                while proto.waiting(msg_id):
                    await self._apply(ws, proto.receive(await ws.recv()))
        except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as exc:
            raise EngineError(f"cannot reach {self.connector.where}: {_why(exc)}") from None
        self._ws = ws
        self.status = "connected"
        if self.mirror is not None:
            for info in self._proto.sessions.values():
                self.mirror.update(info)

    async def _read(self) -> None:
        while True:
            ws = self._ws
            assert ws is not None
            try:
                await self._apply(ws, self._proto.receive(await ws.recv()))
            except ConnectionClosed:
                if not await self._reconnect():
                    return

    async def _reconnect(self) -> bool:
        """The engine is gone: start or find it again, and catch up."""
        self._fail(self._proto.lost(ENGINE_GONE))
        self.status = "reconnecting"
        why = ENGINE_GONE
        for delay in RECONNECT_DELAYS:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except EngineError as exc:
                why = str(exc)
                continue
            for session_id in self._taps:  # the new connection forwards them again
                self._request_soon("session.tap", {"session_id": session_id})
            return True
        self.status = f"lost: {why}"
        return False

    async def _apply(self, ws: ClientConnection, received: Received) -> None:
        """Replies to their callers, events to subscribers, answers (pongs) to `ws`."""
        self._fail(received.replies)
        for event in received.events:
            if self.mirror is not None:
                if isinstance(event, OutputAppended):
                    # A copy that stopped (a blip) starts again; a running one needs no
                    # record (reading the table would merge every session's counts).
                    if not self.mirror.copying(event.session_id):
                        info = self._proto.sessions.get(event.session_id)
                        if info is not None:
                            self.mirror.update(info)
                    continue  # the views read the copy: its own growth is the event
                info = getattr(event, "info", None)
                if isinstance(info, SessionInfo):
                    self.mirror.update(info)
            self._publish(event)
        for session_id, chunk in received.live:
            for tap in self._taps.get(session_id, ()):
                tap.put(chunk.offset, chunk.stream, chunk.data)
        for session_id in received.live_end:
            for tap in list(self._taps.pop(session_id, ())):
                tap.close()
        for frame in received.send:
            await ws.send(frame)

    def _publish(self, event: Event) -> None:
        for sub in self._subscribers:
            sub.put(event)

    def _mirrored(self, session_id: str, size: int, lines: int) -> None:
        """The local copy of a session's transcript grew."""
        self._publish(OutputAppended(session_id, size, lines))

    def _fail(self, replies: list[Reply]) -> None:
        """Resolve the futures of `replies` (results and errors alike)."""
        for reply in replies:
            future = self._waiting.pop(reply.id, None)
            if future is None or future.done():
                continue
            if reply.error is not None:
                future.set_exception(reply.error)
            else:
                future.set_result(reply.result)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        """Send a request and wait for its answer.  Raises the engine's error (a
        CcxError), EngineCallError if the connection is lost meanwhile.  Cancelling
        is safe: the request may still be carried out by the engine."""
        if self._ws is None or self._closed or self.status != "connected":
            raise EngineCallError(f"the engine process is not connected ({self.status})")
        msg_id, frame = self._proto.request(method, params)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        try:
            await self._ws.send(frame)
        except ConnectionClosed:
            self._waiting.pop(msg_id, None)
            raise EngineCallError(ENGINE_GONE) from None
        try:
            return await future
        finally:
            self._waiting.pop(msg_id, None)

    # -- the engine interface ---------------------------------------------------------

    def sessions(self) -> list[SessionInfo]:
        """Every session, oldest first."""
        return [info for _, info in sorted(self._proto.sessions.items())]

    def current(self) -> list[SessionInfo]:
        """The sessions the engine has had since it started, oldest first."""
        table = self._proto.sessions
        return [table[sid] for sid in sorted(self._proto.current) if sid in table]

    def get(self, session_id: str) -> SessionInfo:
        """Raises UnknownSession."""
        info = self._proto.session(session_id)
        if info is None:
            raise UnknownSession(f"no session {session_id!r}")
        return info

    @property
    def stats(self) -> EngineStats:
        return self._proto.stats

    @property
    def engine_pid(self) -> int | None:
        pid = self._proto.engine.get("pid")
        return pid if isinstance(pid, int) else None

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        self._subscribers.discard(sub)

    def tap(self, session_id: str, *, window: int, unkept_only: bool) -> OutputTap | None:
        """The session's output its transcript does not keep (a full or failing disk),
        forwarded by the engine process; views read the rest from the transcript, so
        nothing crosses the socket while the disk keeps it all.  Raises UnknownSession.
        The caller closes the tap."""
        info = self.get(session_id)
        tap = OutputTap(info.bytes, window=window, on_close=self._untap)
        taps = self._taps.setdefault(info.id, set())
        if not taps:
            self._request_soon("session.tap", {"session_id": info.id})
        taps.add(tap)
        return tap

    def _untap(self, tap: OutputTap) -> None:
        for session_id, taps in list(self._taps.items()):
            if tap in taps:
                taps.discard(tap)
                if not taps:
                    del self._taps[session_id]
                    if not self._closed:
                        self._request_soon("session.untap", {"session_id": session_id})

    def _request_soon(self, method: str, params: dict[str, Any]) -> None:
        """Send a request from a task of the client's own (from code that cannot
        wait); a refusal is of no consequence (the session may be gone)."""

        async def request() -> None:
            with contextlib.suppress(CcxError):
                await self._call(method, params)

        task = asyncio.get_running_loop().create_task(request())
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def start(self, spec: SessionSpec, *, autostart: bool = True) -> SessionInfo:
        """Start (or only create) a session in the engine.  The spec is checked here
        first (its cwd is ours).  Raises InvalidCommand, EngineCallError."""
        if spec.ttl is None and self.default_ttl:
            spec = replace(spec, ttl=self.default_ttl)
        params: dict[str, Any] = {"autostart": autostart}
        if not self.connector.remote:  # a server checks the spec and uses its own env
            spec = spec.validated()
            source = os.environ if self._environ is None else self._environ
            params["environ"] = {k: v for k, v in source.items() if k not in self.scrub_env}
        params["spec"] = spec.to_json()
        info = self._proto.localize(
            SessionInfo.from_json(await self._call("session.start", params))
        )
        # Known from now on, as with an engine of our own: its event frame may come later.
        for event in self._proto.learn(info):
            for sub in self._subscribers:
                sub.put(event)
        return info

    async def kill(self, session_id: str, *, force: bool = False, reason: str = "killed") -> None:
        """TERM, grace, KILL (KILL at once with `force`); returns once it ended."""
        await self._call(
            "session.kill", {"session_id": session_id, "force": force, "reason": reason}
        )

    async def restart(self, session_id: str) -> SessionInfo:
        return self._proto.localize(
            SessionInfo.from_json(await self._call("session.restart", {"session_id": session_id}))
        )

    async def pause(self, session_id: str) -> None:
        await self._call("session.pause", {"session_id": session_id})

    async def resume(self, session_id: str) -> None:
        await self._call("session.resume", {"session_id": session_id})

    async def rename(self, session_id: str, name: str) -> SessionInfo:
        """Name the session; raises InvalidCommand for a bad name, EngineCallError."""
        # The engine sends the change (an event frame) before this answer.
        return self._proto.localize(
            SessionInfo.from_json(
                await self._call("session.rename", {"session_id": session_id, "name": name})
            )
        )

    async def send_input(self, session_id: str, data: bytes) -> None:
        """Type into the session's terminal; inputs sent one after another arrive in
        that order.  Raises InvalidTransition (not a terminal, not running, its program
        reads nothing), EngineCallError."""
        text = data.decode("utf-8", "replace")
        await self._call("session.input", {"session_id": session_id, "data": text})

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        await self._call("session.resize", {"session_id": session_id, "cols": cols, "rows": rows})

    async def kill_all(self, reason: str = "killed") -> None:
        """Kill every session of the engine; returns once they have ended."""
        await self._call("engine.kill_all", {"reason": reason})


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
