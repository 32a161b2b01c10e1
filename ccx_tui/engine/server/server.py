"""`ccx-tui serve`: the cc_executor wire protocol over a LocalEngine.

Wire-compatible with upstream clients, minus upstream's faults: each connection is fed
from the session's on-disk transcript by its own sender, so a client that stops
reading only lags (the process never blocks, server memory stays flat, nothing is
lost).  The live output does not depend on the disk: once the transcript stops (a
full disk) the sender goes on from a tap of the engine's output, holding at most
LIVE_WINDOW bytes for a client that lags (never back-pressure: a stuck client must
not stall the job); bytes neither the disk nor that window has are announced (a
stderr line, or `process.output_lost` to a batch client), never skipped silently,
and the terminal notification then carries `write_error` and `bytes_lost`.
CANCEL escalates TERM -> KILL; exit codes are true; `cwd`, `env`, `ttl` are
honoured; non-object JSON and bad params get an error instead of a dropped connection.
Unlike upstream it always checks a bearer token on the handshake (401 otherwise), and
speaks TLS when given a context (see auth.py).

Extensions, which only a client that asks for them ever sees (`connected` lists them
among its capabilities; upstream clients ignore those):

- `cwd`, `env` (an object of strings) and `ttl` (seconds) with `execute`
  (capabilities "cwd", "env", "ttl"): a client that sees them sends secrets in `env`
  rather than in the command line, where every user's `ps` would show them.
- `"detachable": true` with `execute`: the session outlives its socket for
  `reattach_grace` seconds; `session.attach` {session_id, offset} replays the
  transcript from a byte offset, and `stream.checkpoint` {offset} notifications say
  where line frames may be resumed from.  `sessions.list` lists the sessions (never
  their environment).  The connection that ran `execute` owns the session; others
  that attach only watch: the countdown starts when the owner has gone and no other
  connection is attached, so a watcher leaving never ends the owner's job.
- `"batch": true` with `execute` or `session.attach` (capability "batch"): output
  comes not as one `process.output` frame per line but as batches of up to
  BATCH_BYTES of the transcript, each a text notification
  ``{"method":"process.output_batch","params":{"offset":N,"runs":[["stdout",n1],
  ["stderr",n2]]}}`` immediately followed by one binary frame of exactly n1 + n2...
  bytes: the transcript's bytes from offset N, unchanged (invalid UTF-8 included),
  the runs saying which stream each came from ("meta": bytes the server added).
  Batches end after a line terminator whenever more output follows, and every
  batch gives its offset, so a client resumes after a blip from the end of the last
  one it received (no checkpoints are sent).  There is no per-line work on either
  side: one large binary frame instead of thousands of JSON ones.
- `"runs": N` with `session.attach` (capability "runs"): the session's `runs.jsonl`
  (where each run of a restarted session begins in the transcript, and how it ended)
  comes along, complete lines from its byte N on as they are written, each piece a
  `session.runs` {offset, bytes} notification followed by one binary frame of its
  bytes (see protocol.py): a copy of the transcript then shows the same separators.
- `"tty": true` with `execute`, and `cols`, `rows` (capability "tty"): the command
  runs on a pseudo-terminal of that size (one stream: its batches are all
  "stdout"); `session.input` {session_id, data} types into it and `session.resize`
  {session_id, cols, rows} sizes it (see manage.py), from any connection.
- Capability "manage": `engine.subscribe` (a live table of every session, coalesced
  per session), `session.start/kill/restart/pause/resume` by id and
  `engine.kill_all`, on a connection of its own; see manage.py.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hmac
import http
import json
import math
import os
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve, unix_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from ccx_tui import __version__
from ccx_tui.engine.server import manage
from ccx_tui.engine.server.usage_feed import UsageFeed
from ccx_tui.engine.sessions.events import OutputAppended, SessionUpdated
from ccx_tui.engine.sessions.live_backlog import LiveBacklog, loss_reason
from ccx_tui.engine.sessions.local import LocalEngine
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.sessions.tap import OutputTap
from ccx_tui.engine.transcripts.runs import RUNS_NAME
from ccx_tui.engine.transcripts.transcript import META, SIDECAR_NAME, STDERR, STDOUT, read_segments
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.auth import is_loopback
from ccx_tui.engine.wire.unixsock import peer_uid
from ccx_tui.errors import CcxError, InvalidCommand

PATHS = ("/ws/mcp", "/ws")
READ_BYTES = 256 * 1024  # transcript bytes turned into frames per step
# Transcript bytes per batch of output, at most.  Measured on loopback: a websockets
# client that has fallen behind took 3x the CPU to receive 1 MiB frames as 512 KiB
# ones (buffers that large come back as fresh pages for every frame), while 256 KiB
# batches made the whole pipeline slower (twice the frames, sends and wakeups).
BATCH_BYTES = 512 * 1024
MAX_RUNS = 4096  # stream runs per batch: bounds its header however output interleaves
MAX_FRAME = 16 * 1024 * 1024
MAX_OFFSET = 2**62  # past any transcript; bigger numbers would overflow pread
KEEPALIVE_TIMEOUT = 300.0
HOLD_CHARS = 4 * 1024 * 1024  # an unfinished line longer than this goes as it is (bounded)
# Live output a sender holds for its client once the transcript stops (a full disk):
# a client further behind than this loses the oldest of it, and is told so.
LIVE_WINDOW = 8 * 1024 * 1024
RUNS_READ = 64 * 1024  # bytes of runs.jsonl read (and sent) at a time


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """How to serve.  A token is required unless `no_auth` (allowed on loopback only),
    or on a Unix socket (`unix_path`, made 0600: only our uid may connect, checked
    with SO_PEERCRED; host, port and token do not apply)."""

    host: str = "127.0.0.1"
    port: int = 8003
    token: str | None = None
    no_auth: bool = False
    tls: ssl.SSLContext | None = None
    max_connections: int = 100
    ping_interval: float = 30.0
    reattach_grace: float = 30.0  # how long a detachable session outlives its socket
    unix_path: Path | None = None
    keep_sessions: bool = False
    """Sessions outlive their clients, with no deadline (the engine process, daemon.py):
    they live until they end or are killed."""

    @property
    def scheme(self) -> str:
        return "wss" if self.tls is not None else "ws"


CAPABILITIES = (
    "execute",
    "control",
    "stream",
    "cwd",
    "env",
    "ttl",
    "attach",
    "sessions",
    p.BATCH,
    "tty",
    manage.CAPABILITY,
    p.RUNS,
)


class _Feed:
    """Turns transcript bytes of one session into `process.output` frames, per stream."""

    def __init__(self) -> None:
        self._decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        self._lines = {"stdout": "", "stderr": ""}

    def feed(self, stream: str, data: bytes) -> list[str]:
        text = self._lines[stream] + self._decoders[stream].decode(data)
        cut = text.rfind("\n") + 1
        frames: list[str] = []
        for line in text[:cut].splitlines(keepends=True):
            frames.extend(p.encode_output(stream, line))
        rest = text[cut:]
        if len(rest) > HOLD_CHARS:  # a huge unfinished line goes as it comes
            frames.extend(p.encode_output(stream, rest))
            rest = ""
        self._lines[stream] = rest
        return frames

    @property
    def idle(self) -> bool:
        """Nothing held back: every byte fed so far has gone out in frames."""
        if any(self._lines.values()):
            return False
        return all(not d.getstate()[0] for d in self._decoders.values())

    def flush(self) -> list[str]:
        frames: list[str] = []
        for stream, decoder in self._decoders.items():
            rest = self._lines[stream] + decoder.decode(b"", final=True)
            self._lines[stream] = ""
            if rest:
                frames.extend(p.encode_output(stream, rest))
        return frames


class CcxServer:
    """Serves the protocol; `async with CcxServer(engine, config) as server:`."""

    def __init__(self, engine: LocalEngine, config: ServeConfig) -> None:
        """Raises ValueError for a config without a token that is not explicitly open
        (`no_auth`), or open anywhere but on loopback."""
        unix = config.unix_path is not None
        if config.token is None and not config.no_auth and not unix:
            raise ValueError("a token is required (or no_auth, on loopback only)")
        if config.no_auth and not unix and not is_loopback(config.host):
            raise ValueError(f"no_auth is for loopback only, not {config.host}")
        self.engine = engine
        self.config = config
        self.started = time.monotonic()
        self._server: Server | None = None
        self._connections: set[ServerConnection] = set()
        self._wakeups: dict[str, set[asyncio.Event]] = {}
        self._detached: dict[str, asyncio.TimerHandle] = {}
        # The connections following each session (its owner, and any that attached).
        self._followers: dict[str, set[_Connection]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = config.port
        self.usage = UsageFeed()  # shared by the clients that follow the sessions

    async def __aenter__(self) -> CcxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind and start serving (raises OSError if the address is taken)."""
        self._spawn(self._dispatch_events())
        options: dict[str, Any] = {
            "process_request": self._process_request,
            "ssl": self.config.tls,
            "max_size": MAX_FRAME,
            "compression": None,
            # A client that stops reading cannot answer pings either (its pong waits
            # behind our data), so a tight ping timeout would drop slow clients.
            "ping_timeout": KEEPALIVE_TIMEOUT,
        }
        if self.config.unix_path is not None:
            self._server = await unix_serve(self._handle, self.config.unix_path, **options)
            os.chmod(self.config.unix_path, 0o600)  # its directory is 0700 all along
            return
        self._server = await serve(self._handle, self.config.host, self.config.port, **options)
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for handle in self._detached.values():
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.usage.aclose()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- HTTP side: health, paths, token ----------------------------------------------

    def health(self, authorization: str | None = None) -> dict[str, Any]:
        """Upstream's fields (its "sessions" are connections), the engine's process
        counts and limit, and, for a request that sent a token, whether it is the
        right one (a client can say "bad token" before it tries a session)."""
        stats = self.engine.stats
        health: dict[str, Any] = {
            "status": "healthy",
            "service": "ccx_tui_serve",
            "version": __version__,
            "active_sessions": len(self._connections),
            "max_sessions": self.config.max_connections,
            "running_processes": stats.live,
            "queued_processes": stats.queued,
            "max_processes": stats.max_sessions,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
        }
        if authorization is not None and self.config.token is not None:
            health["authorized"] = self._token_ok(authorization)
        return health

    def _token_ok(self, given: str) -> bool:
        expected = f"Bearer {self.config.token}"
        # Both sides as bytes: compare_digest refuses non-ASCII str.
        return hmac.compare_digest(given.encode(errors="replace"), expected.encode())

    def _process_request(self, conn: ServerConnection, request: HttpRequest) -> Response | None:
        if self.config.unix_path is not None:
            uid = peer_uid(conn.transport.get_extra_info("socket"))
            if uid != os.getuid():  # the socket's mode should have kept them out
                return conn.respond(http.HTTPStatus.FORBIDDEN, "another user's engine\n")
        path = request.path.split("?", 1)[0]
        if path == "/health":
            sent = request.headers.get_all("Authorization")
            body = json.dumps(self.health(",".join(sent) if sent else None)).encode()
            headers = Headers([("Content-Type", "application/json")])
            return Response(200, "OK", headers, body)
        if path not in PATHS:
            return conn.respond(http.HTTPStatus.NOT_FOUND, f"no such endpoint: {path}\n")
        if self.config.token is not None:
            given = ",".join(request.headers.get_all("Authorization"))  # two: no match
            if not self._token_ok(given):
                reason = "missing token" if not given else "wrong token"
                return conn.respond(http.HTTPStatus.UNAUTHORIZED, f"{reason}\n")
        return None

    # -- engine events wake the senders ----------------------------------------------

    async def _dispatch_events(self) -> None:
        sub = self.engine.subscribe()
        try:
            while (event := await sub.get()) is not None:
                if isinstance(event, OutputAppended):
                    sid = event.session_id
                elif isinstance(event, SessionUpdated):
                    sid = event.info.id
                else:
                    continue
                for wake in self._wakeups.get(sid, ()):
                    wake.set()
        finally:
            self.engine.unsubscribe(sub)

    # -- one connection ---------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        if len(self._connections) >= self.config.max_connections:
            await ws.send(p.encode_error(None, p.SESSION_LIMIT, "Session limit exceeded"))
            await ws.close(1008, "Session limit exceeded")
            return
        self._connections.add(ws)
        conn = _Connection(self, ws)
        try:
            await conn.run()
        finally:
            try:
                await conn.closed()
            finally:  # counted until its session has been seen to
                self._connections.discard(ws)

    def wakeup_for(self, session_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._wakeups.setdefault(session_id, set()).add(event)
        return event

    def drop_wakeup(self, session_id: str, event: asyncio.Event) -> None:
        events = self._wakeups.get(session_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._wakeups[session_id]

    def follow(self, session_id: str, conn: _Connection) -> None:
        """`conn` follows the session (its owner, or attached): no countdown runs."""
        self._followers.setdefault(session_id, set()).add(conn)
        handle = self._detached.pop(session_id, None)
        if handle is not None:
            handle.cancel()

    def unfollow(self, session_id: str, conn: _Connection, *, gone: bool) -> None:
        """`conn` no longer follows the session (`gone`: its socket closed).

        The owner of a session that is not detachable takes it along (upstream's
        semantics).  Otherwise a live session nobody follows any more gets
        `reattach_grace` seconds for its owner to come back, then is killed.
        """
        followers = self._followers.get(session_id, set())
        followers.discard(conn)
        if not followers:
            self._followers.pop(session_id, None)
        with contextlib.suppress(CcxError):
            if not gone or self.config.keep_sessions or self.engine.get(session_id).state.final:
                return
            if conn.owner and not conn.detachable:
                self._spawn(self._kill(session_id, "client disconnected"))
            elif not followers and session_id not in self._detached:
                self._detached[session_id] = asyncio.get_running_loop().call_later(
                    self.config.reattach_grace, self._grace_over, session_id
                )

    def _grace_over(self, session_id: str) -> None:
        self._detached.pop(session_id, None)
        if not self._followers.get(session_id):
            self._spawn(self._kill(session_id, "client gone"))

    @property
    def clients(self) -> int:
        """Connections open now (each counted until its session has been seen to)."""
        return len(self._connections)

    @property
    def orphaned(self) -> frozenset[str]:
        """Live sessions nobody follows: their reattach-grace countdown is running."""
        return frozenset(self._detached)

    async def _kill(self, session_id: str, reason: str) -> None:
        with contextlib.suppress(CcxError):
            await self.engine.kill(session_id, reason=reason)


class _Connection:
    """One WebSocket: at most one session at a time, fed by its own sender task."""

    def __init__(self, server: CcxServer, ws: ServerConnection) -> None:
        self.server = server
        self.engine = server.engine
        self.ws = ws
        self.session_id: str | None = None
        self.owner = False  # this connection ran the session (rather than attached)
        self.detachable = False
        self.canceled = False
        self.batch = False  # the client asked for batched (binary) output
        # Bytes of the session's runs.jsonl the client has (None: it did not ask for
        # them), and the file's size when last looked at (unchanged: nothing to read).
        self.runs_at: int | None = None
        self.runs_seen = -1
        # The session's live output, from its start (or the attach) on: what the
        # transcript does not keep still reaches the client (see `_stream`).
        self.tap: OutputTap | None = None
        self.starter: asyncio.Task[None] | None = None  # answers a queued execute
        self.sender: asyncio.Task[None] | None = None
        self.send_lock = asyncio.Lock()
        self.manager: manage.Manager | None = None  # made by the first manage request

    async def send(self, frame: str) -> None:
        async with self.send_lock:
            await self.ws.send(frame)

    async def send_frames(self, *frames: str | bytes) -> None:
        """Frames that belong together (a header and its payload), with nothing sent
        in between."""
        async with self.send_lock:
            for frame in frames:
                await self.ws.send(frame)

    async def run(self) -> None:
        await self.send(
            p.encode_notification(
                "connected",
                {
                    "session_id": str(uuid.uuid4()),
                    "version": __version__,
                    "capabilities": list(CAPABILITIES),
                },
            )
        )
        pinger = asyncio.get_running_loop().create_task(self._ping())
        try:
            async for frame in self.ws:
                reply = await self._on_frame(frame)
                if reply is not None:
                    await self.send(reply)
        except ConnectionClosed:
            pass
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _ping(self) -> None:
        # Upstream clients expect these; unlike upstream we never drop a client that
        # forgets to answer (the WebSocket's own pings catch dead peers).
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.server.config.ping_interval)
                await self.send(p.encode_notification("ping", {"timestamp": time.time()}))

    async def closed(self) -> None:
        if self.manager is not None:
            await self.manager.aclose()
        for task in (self.starter, self.sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
        self._set_tap(None)
        sid = self.session_id
        if sid is None:
            return
        with contextlib.suppress(CcxError):
            if (
                self.owner
                and not self.server.config.keep_sessions
                and self.engine.get(sid).state is State.QUEUED
            ):
                # Its client is gone before it started: it never will.
                await self.engine.kill(sid, reason="client disconnected before it started")
        self.server.unfollow(sid, self, gone=True)

    def _switch_to(self, session_id: str, *, owner: bool) -> OutputTap:
        """Follow `session_id` from now on (the previous one has ended); returns the
        tap of its live output, the connection's to close."""
        if self.session_id is not None:
            self.server.unfollow(self.session_id, self, gone=False)
        self.session_id = session_id
        self.owner = owner
        self.server.follow(session_id, self)
        # Tapped at once: `start()` has not yielded, so no byte can be missed.
        tap = self.engine.tap(session_id, window=LIVE_WINDOW, unkept_only=True)
        self._set_tap(tap)
        return tap

    def _set_tap(self, tap: OutputTap | None) -> None:
        if self.tap is not None:
            self.tap.close()
        self.tap = tap

    async def _on_frame(self, frame: str | bytes) -> str | None:
        msg = p.parse(frame)
        if isinstance(msg, p.ProtocolError):
            if msg.reason.startswith("expected a JSON object"):
                return p.encode_error(None, -32600, f"Invalid Request: {msg.reason}")
            return p.encode_error(None, p.INTERNAL, f"Parse error: {msg.reason}")
        if isinstance(msg, p.Notification):
            return None  # pong and anything else a client may notify
        if not isinstance(msg, p.Request):
            return None  # a stray response: nothing to answer
        try:
            result = await self._call(msg.method, msg.params, msg.id)
        except _RpcError as exc:
            return p.encode_error(msg.id, exc.code, exc.message)
        except CcxError as exc:
            return p.encode_error(msg.id, p.INTERNAL, str(exc))
        if result is _LATER:
            return None
        return p.encode_result(msg.id, result)

    async def _call(self, method: str, params: dict[str, Any], msg_id: Any) -> Any:
        if method == "execute":
            return await self._execute(params, msg_id)
        if method == "control":
            return await self._control(params)
        if method == "hook_status":
            return {"enabled": False, "message": "ccx-tui serve runs no hooks"}
        if method == "pong":
            return None
        if method == "sessions.list":
            return [_summary(info) for info in self.engine.sessions()]
        if method == "session.attach":
            return await self._attach(params)
        if method in manage.METHODS:
            if self.manager is None:
                self.manager = manage.Manager(
                    self.engine, self.send, self.send_frames, self.server.usage
                )
            self.manager.call(method, params, msg_id)
            return _LATER
        raise _RpcError(p.METHOD_NOT_FOUND, f"Method not found: {method}")

    def _busy(self) -> bool:
        if self.session_id is None:
            return False
        return not self.engine.get(self.session_id).state.final or any(
            task is not None and not task.done() for task in (self.starter, self.sender)
        )

    async def _execute(self, params: dict[str, Any], msg_id: Any) -> object:
        if self._busy():
            raise _RpcError(p.ALREADY_RUNNING, "A process is already running")
        command = params.get("command")
        if not isinstance(command, str) or not command.strip():
            raise _RpcError(p.NOT_ALLOWED, "Command not allowed or empty")
        env = params.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise _RpcError(p.INVALID_PARAMS, "Invalid params: env must map names to strings")
        cwd = params.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise _RpcError(p.INVALID_PARAMS, "Invalid params: cwd must be a string")
        ttl = _seconds(params, "ttl")
        _seconds(params, "timeout")  # upstream's inactivity timeout: checked, not used
        terminal: dict[str, Any] = {}
        if params.get("tty") is True:
            terminal = {"tty": True}
            terminal.update({k: params[k] for k in ("cols", "rows") if k in params})
        try:
            spec = SessionSpec(
                command=command, cwd=cwd or None, env=dict(env), ttl=ttl or None, **terminal
            )
            info = await self.engine.start(spec)
        except InvalidCommand as exc:
            raise _RpcError(p.INTERNAL, str(exc)) from None
        tap = self._switch_to(info.id, owner=True)
        self.detachable = bool(params.get("detachable"))
        self.batch = params.get(p.BATCH) is True
        self.runs_at = None
        self.canceled = False
        # Queued behind the limit, it may wait long: frames (a CANCEL, the close) must
        # still be read meanwhile, so the answer comes from a task of its own.
        self.starter = asyncio.get_running_loop().create_task(
            self._answer_start(info.id, msg_id, tap)
        )
        return _LATER

    async def _answer_start(self, session_id: str, msg_id: Any, tap: OutputTap) -> None:
        info = await self._until_started(session_id)
        if info.pid is None and info.state is State.KILLED and self.canceled:
            await self.send(p.encode_error(msg_id, p.INTERNAL, "Canceled before it started"))
            return
        result: dict[str, Any] = {"status": "started", "pid": info.pid, "pgid": info.pid}
        if self.detachable:
            result["session"] = info.id
        await self.send(p.encode_result(msg_id, result))
        self.sender = asyncio.get_running_loop().create_task(self._stream(info.id, 0, tap))

    async def _until_started(self, session_id: str) -> SessionInfo:
        """Queued behind the limit: wait (clients give execute a generous deadline)."""
        wake = self.server.wakeup_for(session_id)
        try:
            while True:
                info = self.engine.get(session_id)
                if info.state.final or info.pid is not None:
                    return info
                wake.clear()
                await wake.wait()
        finally:
            self.server.drop_wakeup(session_id, wake)

    async def _attach(self, params: dict[str, Any]) -> dict[str, Any]:
        session_id = params.get("session_id")
        offset = params.get("offset", 0)
        runs = params.get(p.RUNS)
        if (
            not isinstance(session_id, str)
            or not _offset_ok(offset)
            or (runs is not None and not _offset_ok(runs))
        ):
            raise _RpcError(
                p.INVALID_PARAMS,
                "Invalid params: session.attach needs session_id and offset >= 0 (and runs >= 0)",
            )
        if self._busy():
            raise _RpcError(p.ALREADY_RUNNING, "A process is already running")
        info = self.engine.get(session_id)
        tap = self._switch_to(info.id, owner=False)
        self.detachable = True
        self.batch = params.get(p.BATCH) is True
        self.runs_at, self.runs_seen = runs, -1
        self.sender = asyncio.get_running_loop().create_task(self._stream(info.id, offset, tap))
        return {"status": "attached", "pid": info.pid, "pgid": info.pid, "state": info.state}

    async def _control(self, params: dict[str, Any]) -> dict[str, Any]:
        kind = str(params.get("type", "")).upper()
        if kind not in ("PAUSE", "RESUME", "CANCEL"):
            raise _RpcError(p.INTERNAL, f"unknown control type: {params.get('type')!r}")
        sid = self.session_id
        if sid is None or self.engine.get(sid).state.final:
            raise _RpcError(p.NO_PROCESS, "No process is running")
        if kind in _PAUSE_RESUME:
            status = _PAUSE_RESUME[kind]
            action = self.engine.pause if kind == "PAUSE" else self.engine.resume
            await action(sid)
            pid = self.engine.get(sid).pid
            await self.send(
                p.encode_notification(f"process.{status}", p.process_params(status, pid, pid))
            )
            return {"status": status}
        self.canceled = True
        if self.engine.get(sid).state is State.QUEUED:  # dequeued at once: it never starts
            await self.engine.kill(sid, reason="canceled by client before it started")
        else:
            self.server._spawn(self.engine.kill(sid, reason="canceled by client"))
        return {"status": "canceled"}

    async def _stream(self, session_id: str, offset: int, tap: OutputTap) -> None:
        """Send the output from `offset` as frames, following it until the end.

        What the transcript has is read from it; once the transcript stops (a full
        disk), the rest comes from a tap of the live output, at most LIVE_WINDOW bytes
        behind (no back-pressure: a stuck client never stalls the job).  Bytes neither
        has any more (this client fell further behind) are announced, never skipped
        silently.
        """
        info = self.engine.get(session_id)
        pid = info.pid  # the engine forgets it at the end; clients still want it
        wake = self.server.wakeup_for(session_id)
        live = LiveBacklog(LIVE_WINDOW)
        feed = _Feed()
        buffer = bytearray(BATCH_BYTES) if self.batch else bytearray()
        pos = offset
        try:
            if offset == 0:
                await self.send(
                    p.encode_notification(
                        "process.started", p.process_params("started", info.pid, info.pid)
                    )
                )
            fd = os.open(info.transcript, os.O_RDONLY | os.O_CLOEXEC)
            try:
                while True:
                    wake.clear()
                    info = self.engine.get(session_id)
                    end = info.bytes
                    live.add(tap.read_nowait(), kept=end)
                    if pos < end and self.batch:
                        # Every batch carries its offset: no checkpoints needed.
                        stop = min(end, pos + BATCH_BYTES)
                        batch = _batch(fd, info, buffer, pos, stop, more=stop < end)
                        async with self.send_lock:  # the payload follows its header
                            await self.ws.send(batch.header)
                            await self.ws.send(batch.payload)
                        pos += batch.size
                        continue
                    if pos < end:
                        stop = min(end, pos + READ_BYTES)
                        pos = await self._send_range(fd, info, pos, stop, feed)
                        await self._checkpoint(pos, feed)
                        continue
                    if info.write_error is not None and live:  # the disk stopped there
                        pos = await self._send_live(live, pos, feed, info)
                        continue
                    # Caught up: the runs recorded so far (a run's lines are written
                    # before the event that woke us, so none is left for after the end).
                    await self._send_runs(info)
                    if info.state.final:
                        break
                    await wake.wait()
            finally:
                os.close(fd)
            # Attached after the end: what the disk did not keep is gone.
            if info.write_error is not None and pos < info.bytes + info.bytes_lost:
                await self._send_lost(pos, info.bytes + info.bytes_lost - pos, info, feed)
            for frame in feed.flush():
                await self.send(frame)
            await self.send(self._terminal(self.engine.get(session_id), pid))
        finally:
            tap.close()
            self.server.drop_wakeup(session_id, wake)

    async def _send_runs(self, info: SessionInfo) -> None:
        """Send the complete lines the session's runs.jsonl has gained, if the client
        asked for them (a few hundred bytes per run: read here, as the transcript is)."""
        if self.runs_at is None:
            return
        path = info.directory / RUNS_NAME
        try:
            size = os.stat(path).st_size
            if size == self.runs_seen or size <= self.runs_at:
                return
            self.runs_seen = size
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # no runs recorded (yet), or a failing disk: they only decorate
        try:
            while self.runs_at < size:
                data = os.pread(fd, min(RUNS_READ, size - self.runs_at), self.runs_at)
                cut = data.rfind(b"\n") + 1  # a torn last line waits for its end
                if not cut:
                    return
                await self.send_frames(p.encode_runs(self.runs_at, cut), data[:cut])
                self.runs_at += cut
        except OSError:
            return
        finally:
            os.close(fd)

    async def _checkpoint(self, pos: int, feed: _Feed) -> None:
        if self.detachable and feed.idle:
            # Extension: a point a reattaching client can resume from.
            await self.send(p.encode_notification("stream.checkpoint", {"offset": pos}))

    async def _send_live(self, live: LiveBacklog, pos: int, feed: _Feed, info: SessionInfo) -> int:
        """Send the next run of output the transcript did not keep, from memory;
        first the notice of a gap before it, if any.  Returns the new position."""
        start, chunks = live.take(pos, BATCH_BYTES, MAX_RUNS)
        if start > pos:
            await self._send_lost(pos, start - pos, info, feed)
        pos = start
        if self.batch:
            runs: list[tuple[str, int]] = []
            for chunk in chunks:
                stream = _STREAM_NAMES.get(chunk.stream, "stdout")
                if runs and runs[-1][0] == stream:
                    runs[-1] = (stream, runs[-1][1] + len(chunk.data))
                else:
                    runs.append((stream, len(chunk.data)))
            payload = b"".join(chunk.data for chunk in chunks)
            if payload:
                async with self.send_lock:  # the payload follows its header
                    await self.ws.send(p.encode_batch(pos, runs))
                    await self.ws.send(payload)
            return pos + len(payload)
        for chunk in chunks:
            pos += len(chunk.data)
            if chunk.stream == META:
                continue
            stream = "stderr" if chunk.stream == STDERR else "stdout"
            for frame in feed.feed(stream, chunk.data):
                await self.send(frame)
        await self._checkpoint(pos, feed)
        return pos

    async def _send_lost(self, pos: int, count: int, info: SessionInfo, feed: _Feed) -> None:
        """Tell the client that `count` bytes from `pos` will never reach it."""
        reason = loss_reason(info.write_error)
        if self.batch:
            params = {"offset": pos, "bytes": count, "reason": reason}
            await self.send(p.encode_notification(p.LOST_METHOD, params))
            return
        for frame in feed.flush():  # what came before, unfinished lines included
            await self.send(frame)
        for frame in p.encode_output("stderr", p.lost_line(count, reason)):
            await self.send(frame)

    async def _send_range(
        self, fd: int, info: SessionInfo, start: int, stop: int, feed: _Feed
    ) -> int:
        data = os.pread(fd, stop - start, start)
        segments = read_segments(info.directory / SIDECAR_NAME, start, stop)
        for i, seg in enumerate(segments):
            seg_end = segments[i + 1].offset if i + 1 < len(segments) else stop
            lo, hi = max(seg.offset, start), min(seg_end, stop)
            if lo >= hi or seg.stream == META:
                continue
            stream = "stderr" if seg.stream == STDERR else "stdout"
            for frame in feed.feed(stream, data[lo - start : hi - start]):
                await self.send(frame)
        return start + len(data)

    def _terminal(self, info: SessionInfo, pid: int | None) -> str:
        # Extension: what the server's transcript could not keep (a full disk).
        kept: dict[str, Any] = {}
        if info.write_error is not None:
            kept = {"write_error": info.write_error, "bytes_lost": info.bytes_lost}
        if info.state is State.FAILED:
            return p.encode_notification(
                "process.error", {"error": info.reason or "could not start", **kept}
            )
        if self.canceled and info.state is State.KILLED:
            code = -info.signal if info.signal else info.exit_code
            params = p.process_params("canceled", pid, pid, code)
            return p.encode_notification("process.canceled", {**params, **kept})
        code = -info.signal if info.signal else (info.exit_code or 0)
        return p.encode_completed(pid, pid, code, info.elapsed(), **kept)


_PAUSE_RESUME = {"PAUSE": "paused", "RESUME": "resumed"}
_STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr", META: "meta"}


def _batch(
    fd: int, info: SessionInfo, buffer: bytearray, start: int, stop: int, more: bool
) -> _Batch:
    """A batch of transcript bytes [start, stop), or of a prefix of them.

    The bytes are read into `buffer` and the payload is a view of it, valid until the
    next call: websockets serializes (copies) a frame as soon as `send` is called,
    so the buffer is free again once the payload's `send` has returned.  Reusing it
    spares allocating and faulting in a fresh buffer per batch.

    With `more` (the transcript goes on past `stop`) the batch ends after its last
    line terminator, if it has one, so that the client gets whole lines (its line
    merger then hands them on without copying); the rest starts the next batch.
    It also ends early if the bytes switch streams more than MAX_RUNS times.
    """
    read = os.preadv(fd, [memoryview(buffer)[: stop - start]], start)
    stop = start + read  # shorter only if the file is: stay exact anyway
    if more:
        cut = max(buffer.rfind(b"\n", 0, read), buffer.rfind(b"\r", 0, read)) + 1
        if cut:
            stop = start + cut
    segments = read_segments(info.directory / SIDECAR_NAME, start, stop)
    runs: list[tuple[str, int]] = []
    pos = start
    for i, seg in enumerate(segments):
        seg_end = min(segments[i + 1].offset if i + 1 < len(segments) else stop, stop)
        if seg_end <= pos:
            continue
        if seg.offset > pos:  # bytes no record covers (never written so): stdout
            runs.append(("stdout", seg.offset - pos))
            pos = seg.offset
        stream = _STREAM_NAMES.get(seg.stream, "stdout")
        if runs and runs[-1][0] == stream:
            runs[-1] = (stream, runs[-1][1] + seg_end - pos)
        elif len(runs) < MAX_RUNS:
            runs.append((stream, seg_end - pos))
        else:
            stop = pos  # the rest goes in the next batch
            break
        pos = seg_end
    if pos < stop:  # past the last record (cannot happen: it runs to `stop`): stdout
        runs.append(("stdout", stop - pos))
    size = stop - start
    return _Batch(p.encode_batch(start, runs), memoryview(buffer)[:size], size)


@dataclass(frozen=True, slots=True)
class _Batch:
    header: str
    payload: memoryview  # of the caller's buffer
    size: int


_LATER = object()  # a request answered later, by a task


def _offset_ok(value: Any) -> bool:
    """A byte offset a client may give: an int, 0 to MAX_OFFSET."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_OFFSET


def _seconds(params: dict[str, Any], name: str) -> float | None:
    """A param that must be a finite number >= 0 of seconds, if present."""
    value = params.get(name)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        seconds = float(value) if ok else math.nan
    except OverflowError:  # an int of 400 digits
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds >= 0):
        raise _RpcError(
            p.INVALID_PARAMS, f"Invalid params: {name} must be a finite number of seconds >= 0"
        )
    return seconds


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _summary(info: SessionInfo) -> dict[str, Any]:
    return {
        "session": info.id,
        "state": info.state.value,
        "command": info.spec.command,
        "exit_code": info.exit_code,
        "bytes": info.bytes,
        "started_at": info.started_at,
        "ended_at": info.ended_at,
    }
