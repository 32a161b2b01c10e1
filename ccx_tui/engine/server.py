"""`ccx-tui serve`: the cc_executor wire protocol over a LocalEngine.

Wire-compatible with upstream clients, minus upstream's faults: each connection is fed
from the session's on-disk transcript by its own sender, so a client that stops
reading only lags (the process never blocks, server memory stays flat, nothing is
lost); CANCEL escalates TERM -> KILL; exit codes are true; `cwd`, `env`, `ttl` are
honoured; non-object JSON gets an error instead of a dropped connection.

Extensions, which only a client that asks for them ever sees (`connected` lists them
among its capabilities; upstream clients ignore those):

- `"detachable": true` with `execute`: the session outlives its socket for
  `reattach_grace` seconds; `session.attach` {session_id, offset} replays the
  transcript from a byte offset, and `stream.checkpoint` {offset} notifications say
  where line frames may be resumed from.  `sessions.list` lists the sessions.
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
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hmac
import http
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from ccx_tui import __version__
from ccx_tui.engine import protocol as p
from ccx_tui.engine.events import OutputAppended, SessionUpdated
from ccx_tui.engine.local import LocalEngine
from ccx_tui.engine.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.transcript import META, SIDECAR_NAME, STDERR, STDOUT, read_segments
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
KEEPALIVE_TIMEOUT = 300.0
HOLD_CHARS = 4 * 1024 * 1024  # an unfinished line longer than this goes as it is (bounded)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8003
    token: str | None = None
    max_connections: int = 100
    ping_interval: float = 30.0
    reattach_grace: float = 30.0  # how long a detachable session outlives its socket


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
        self.engine = engine
        self.config = config
        self.started = time.monotonic()
        self._server: Server | None = None
        self._connections: set[ServerConnection] = set()
        self._wakeups: dict[str, set[asyncio.Event]] = {}
        self._detached: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = config.port

    async def __aenter__(self) -> CcxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind and start serving (raises OSError if the address is taken)."""
        self._spawn(self._dispatch_events())
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=MAX_FRAME,
            compression=None,
            # A client that stops reading cannot answer pings either (its pong waits
            # behind our data), so a tight ping timeout would drop slow clients.
            ping_timeout=KEEPALIVE_TIMEOUT,
        )
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

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- HTTP side: health, paths, token ----------------------------------------------

    def health(self) -> dict[str, Any]:
        stats = self.engine.stats
        return {
            "status": "healthy",
            "service": "ccx_tui_serve",
            "version": __version__,
            "active_sessions": len(self._connections),
            "max_sessions": self.config.max_connections,
            "running_processes": stats.live,
            "queued_processes": stats.queued,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
        }

    def _process_request(self, conn: ServerConnection, request: HttpRequest) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            body = json.dumps(self.health()).encode()
            headers = Headers([("Content-Type", "application/json")])
            return Response(200, "OK", headers, body)
        if path not in PATHS:
            return conn.respond(http.HTTPStatus.NOT_FOUND, f"no such endpoint: {path}\n")
        token = self.config.token
        if token is not None:
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
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
            self._connections.discard(ws)
            await conn.closed()

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

    def detach(self, session_id: str) -> None:
        """Keep a live session for `reattach_grace` seconds, then kill it."""
        loop = asyncio.get_running_loop()
        self._detached[session_id] = loop.call_later(
            self.config.reattach_grace,
            lambda: self._spawn(self._kill_detached(session_id)),
        )

    def reattached(self, session_id: str) -> None:
        handle = self._detached.pop(session_id, None)
        if handle is not None:
            handle.cancel()

    async def _kill_detached(self, session_id: str) -> None:
        self._detached.pop(session_id, None)
        with contextlib.suppress(CcxError):
            await self.engine.kill(session_id, reason="client gone")


class _Connection:
    """One WebSocket: at most one session at a time, fed by its own sender task."""

    def __init__(self, server: CcxServer, ws: ServerConnection) -> None:
        self.server = server
        self.engine = server.engine
        self.ws = ws
        self.session_id: str | None = None
        self.detachable = False
        self.canceled = False
        self.batch = False  # the client asked for batched (binary) output
        self.sender: asyncio.Task[None] | None = None
        self.send_lock = asyncio.Lock()

    async def send(self, frame: str) -> None:
        async with self.send_lock:
            await self.ws.send(frame)

    async def run(self) -> None:
        await self.send(
            p.encode_notification(
                "connected",
                {
                    "session_id": str(uuid.uuid4()),
                    "version": __version__,
                    "capabilities": [
                        "execute",
                        "control",
                        "stream",
                        "attach",
                        "sessions",
                        p.BATCH,
                    ],
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
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self.sender
        sid = self.session_id
        if sid is None:
            return
        with contextlib.suppress(CcxError):
            if self.engine.get(sid).state.final:
                return
            if self.detachable:
                self.server.detach(sid)
            else:  # upstream semantics: the socket owns the process
                await self.engine.kill(sid, reason="client disconnected")

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
            result = await self._call(msg.method, msg.params)
        except _RpcError as exc:
            return p.encode_error(msg.id, exc.code, exc.message)
        except CcxError as exc:
            return p.encode_error(msg.id, p.INTERNAL, str(exc))
        return p.encode_result(msg.id, result)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        if method == "execute":
            return await self._execute(params)
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
        raise _RpcError(p.METHOD_NOT_FOUND, f"Method not found: {method}")

    def _busy(self) -> bool:
        if self.session_id is None:
            return False
        return not self.engine.get(self.session_id).state.final or (
            self.sender is not None and not self.sender.done()
        )

    async def _execute(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._busy():
            raise _RpcError(p.ALREADY_RUNNING, "A process is already running")
        command = params.get("command")
        if not isinstance(command, str) or not command.strip():
            raise _RpcError(p.NOT_ALLOWED, "Command not allowed or empty")
        env = params.get("env") or {}
        ttl = params.get("ttl")
        if not isinstance(env, dict) or not (ttl is None or isinstance(ttl, (int, float))):
            raise _RpcError(p.INTERNAL, "env must be an object and ttl a number")
        cwd = params.get("cwd")
        try:
            spec = SessionSpec(
                command=command,
                cwd=str(cwd) if cwd else None,
                env={str(k): str(v) for k, v in env.items()},
                ttl=float(ttl) if ttl else None,
            )
            info = await self.engine.start(spec)
        except InvalidCommand as exc:
            raise _RpcError(p.INTERNAL, str(exc)) from None
        self.session_id = info.id
        self.detachable = bool(params.get("detachable"))
        self.batch = params.get(p.BATCH) is True
        self.canceled = False
        info = await self._until_started(info.id)
        result: dict[str, Any] = {"status": "started", "pid": info.pid, "pgid": info.pid}
        if self.detachable:
            result["session"] = info.id
        self.sender = asyncio.get_running_loop().create_task(self._stream(info.id, 0))
        return result

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
        if not isinstance(session_id, str) or not isinstance(offset, int) or offset < 0:
            raise _RpcError(p.INTERNAL, "session.attach needs session_id and offset >= 0")
        if self._busy():
            raise _RpcError(p.ALREADY_RUNNING, "A process is already running")
        info = self.engine.get(session_id)
        self.server.reattached(info.id)
        self.session_id = info.id
        self.detachable = True
        self.batch = params.get(p.BATCH) is True
        self.sender = asyncio.get_running_loop().create_task(self._stream(info.id, offset))
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
        self.server._spawn(self.engine.kill(sid, reason="canceled by client"))
        return {"status": "canceled"}

    async def _stream(self, session_id: str, offset: int) -> None:
        """Send the transcript from `offset` as frames, following it until the end."""
        info = self.engine.get(session_id)
        pid = info.pid  # the engine forgets it at the end; clients still want it
        wake = self.server.wakeup_for(session_id)
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
                        if self.detachable and feed.idle:
                            # Extension: a point a reattaching client can resume from.
                            await self.send(
                                p.encode_notification("stream.checkpoint", {"offset": pos})
                            )
                        continue
                    if info.state.final:
                        break
                    await wake.wait()
            finally:
                os.close(fd)
            for frame in feed.flush():
                await self.send(frame)
            await self.send(self._terminal(self.engine.get(session_id), pid))
        finally:
            self.server.drop_wakeup(session_id, wake)

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
        if info.state is State.FAILED:
            return p.encode_notification(
                "process.error", {"error": info.reason or "could not start"}
            )
        if self.canceled and info.state is State.KILLED:
            code = -info.signal if info.signal else info.exit_code
            return p.encode_notification(
                "process.canceled", p.process_params("canceled", pid, pid, code)
            )
        code = -info.signal if info.signal else (info.exit_code or 0)
        return p.encode_completed(pid, pid, code, info.elapsed())


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
