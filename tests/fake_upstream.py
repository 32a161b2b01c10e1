"""A faithful fake of an upstream cc_executor server, written from shared/PROTOCOL.md.

It speaks the wire format exactly as a real server does, quirks included, so that client
tests can run against something that misbehaves the way production does:

* `connected` on open; one session and at most one process per connection;
* `execute` runs `/bin/sh -c COMMAND` as a real child in its own process group with stdin
  from /dev/null, replies `{"status":"started",...}`, then `process.started`, one
  `process.output` frame per line (chunked by `protocol.encode_output`, so the
  `truncated`-on-`"...\\n"` quirk holds), then exactly one terminal notification;
* `control` PAUSE/RESUME/CANCEL (SIGSTOP/SIGCONT/SIGTERM to the group; CANCEL never
  escalates and suppresses `process.completed`);
* errors with the codes and messages of PROTOCOL.md, responses to `"id": null` without
  an id, invalid JSON answered by -32603 without id, a non-object value answered by
  dropping the TCP connection without a close frame;
* the session limit (handshake, then the -32003 error without id, then close 1008);
* `ping` notifications every `ping_interval` s and a dropped connection (no close frame,
  process group killed) when no `pong` call arrived within `pong_timeout` s;
* every send is awaited inline, so a client that stops reading stalls the child
  (back-pressure), as upstream does;
* `timeout` is the upstream inactivity timeout quirk (synthetic line, stop reading,
  possibly "completed" with exit code 0 while the process runs);
* `task.early_completion` and `error.token_limit_exceeded` side notifications, sent
  before the stdout line that triggered them.

Usage::

    async with FakeUpstream(ping_interval=0.1, pong_timeout=0.5) as fake:
        async with connect(fake.url) as ws: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ccx_tui.engine.wire import protocol

MARKER_ENV = "CCX_FAKE_UPSTREAM_SESSION"  # set in every child: tests find descendants by it
READ_SIZE = 65_536
# Words that make upstream emit `task.early_completion` (it matches on ordinary words).
EARLY_COMPLETION_MARKERS = ("done!", "task completed", "all done")
_SIGNALS = {"PAUSE": signal.SIGSTOP, "RESUME": signal.SIGCONT, "CANCEL": signal.SIGTERM}
_STATUS = {"PAUSE": "paused", "RESUME": "resumed", "CANCEL": "canceled"}


class _Session:
    """One connection's state: upstream keeps exactly this per session."""

    def __init__(self, ws: ServerConnection) -> None:
        self.id = str(uuid.uuid4())
        self.ws = ws
        self.proc: asyncio.subprocess.Process | None = None
        self.pgid: int | None = None
        self.stream_task: asyncio.Task[None] | None = None
        self.canceled = False
        self.early_completion = False
        self.last_pong = time.monotonic()


class FakeUpstream:
    """An upstream cc_executor server on 127.0.0.1 (random port), as an async context manager.

    Args:
        max_sessions: concurrent sessions allowed; the next connection gets the
            session-limit error and close code 1008.
        ping_interval: seconds between `ping` notifications.
        pong_timeout: seconds without a `pong` call before the connection is dropped.
        start_delay: seconds to wait before starting a process (slow upstream start);
            pings keep flowing meanwhile.
        kill_grace: seconds between TERM and KILL when a connection goes away.
        exit_wait: seconds the server waits for the exit status after a stream timeout
            before it reports exit code 0 anyway (upstream: 5).
        path: the WebSocket path; every other path except `/health` answers HTTP 403.
        fail_marker: if set, a stdout line containing it makes the streaming code raise,
            so the client sees `process.error` (the process keeps running, as upstream).
        null_pgid: report `pgid: null` (upstream does when getpgid() fails); signals then
            go to the pid only, and the close cleanup kills only the leader.

    Counters (all connections together) are plain attributes: `connections` (handshakes
    on the WebSocket path, rejected ones included), `active_sessions`, `rejected_sessions`,
    `pings_sent`, `pongs`, `drops` (connections dropped without a close frame), and the
    lists `session_ids`, `commands` (each `execute` command received), `pids` (each
    started process) and `received` (every text frame received).
    """

    def __init__(
        self,
        *,
        max_sessions: int = 100,
        ping_interval: float = 30.0,
        pong_timeout: float = 60.0,
        start_delay: float = 0.0,
        kill_grace: float = 2.0,
        exit_wait: float = 5.0,
        path: str = "/ws/mcp",
        fail_marker: str | None = None,
        null_pgid: bool = False,
    ) -> None:
        self.max_sessions = max_sessions
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.start_delay = start_delay
        self.kill_grace = kill_grace
        self.exit_wait = exit_wait
        self.path = path
        self.fail_marker = fail_marker
        self.null_pgid = null_pgid
        self.connections = 0
        self.active_sessions = 0
        self.rejected_sessions = 0
        self.pings_sent = 0
        self.pongs = 0
        self.drops = 0
        self.session_ids: list[str] = []
        self.commands: list[str] = []
        self.pids: list[int] = []
        self.received: list[str] = []
        self._sessions: set[_Session] = set()
        self._server: Server | None = None
        self._started = time.monotonic()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    async def __aenter__(self) -> FakeUpstream:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            ping_interval=None,  # the JSON-RPC heartbeat is the one that matters here
            max_size=None,  # upstream accepts frames of any size
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._started = time.monotonic()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()  # handlers return only after killing their groups

    # -- test hooks ----------------------------------------------------------------------

    def drop_all(self) -> None:
        """Drop every open connection without a close frame (a network failure)."""
        for session in list(self._sessions):
            self._drop(session)

    async def send_all(self, frame: str) -> None:
        """Send a raw text frame to every open session (for notifications a test needs)."""
        for session in list(self._sessions):
            with contextlib.suppress(ConnectionClosed):
                await session.ws.send(frame)

    # -- HTTP ----------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            body = json.dumps(
                {
                    "status": "healthy",
                    "service": "cc_executor_mcp",
                    "version": "1.0.0",
                    "active_sessions": self.active_sessions,
                    "max_sessions": self.max_sessions,
                    "uptime_seconds": round(time.monotonic() - self._started, 1),
                }
            )
            response = connection.respond(200, body)
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        if path != self.path:
            return connection.respond(403, "Forbidden\n")
        return None

    # -- one connection --------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        if self.active_sessions >= self.max_sessions:
            self.rejected_sessions += 1
            with contextlib.suppress(ConnectionClosed):
                await ws.send(
                    protocol.encode_error(None, protocol.SESSION_LIMIT, "Session limit exceeded")
                )
                await ws.close(1008, "Session limit exceeded")
            return
        session = _Session(ws)
        self.active_sessions += 1
        self._sessions.add(session)
        self.session_ids.append(session.id)
        heartbeat: asyncio.Task[None] | None = None
        try:
            await ws.send(
                protocol.encode_notification(
                    "connected",
                    {
                        "session_id": session.id,
                        "version": "1.0.0",
                        "capabilities": ["execute", "control", "stream"],
                    },
                )
            )
            heartbeat = asyncio.create_task(self._heartbeat(session))
            while True:
                frame = await ws.recv()
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                self.received.append(text)
                if not await self._handle_frame(session, text):
                    return
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(session)
            self.active_sessions -= 1
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            # Shielded: a server shutting down must still leave no process behind.
            await asyncio.shield(self._cleanup(session))

    def _drop(self, session: _Session) -> None:
        self.drops += 1
        session.ws.transport.abort()  # no close frame, as a crashed handler does

    async def _heartbeat(self, session: _Session) -> None:
        next_ping = time.monotonic() + self.ping_interval
        try:
            while True:
                now = time.monotonic()
                deadline = session.last_pong + self.pong_timeout
                if now >= deadline:
                    self._drop(session)
                    return
                if now >= next_ping:
                    ping = protocol.encode_notification("ping", {"timestamp": time.time()})
                    await session.ws.send(ping)
                    self.pings_sent += 1
                    next_ping = time.monotonic() + self.ping_interval
                await asyncio.sleep(max(0.0, min(next_ping, deadline) - time.monotonic()))
        except ConnectionClosed:
            pass

    async def _cleanup(self, session: _Session) -> None:
        """Upstream's session cleanup: stop streaming, TERM the group, then KILL it."""
        if session.stream_task is not None:
            session.stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.stream_task
        proc = session.proc
        if proc is None:
            return
        _signal_group(proc.pid, session.pgid, signal.SIGTERM)
        await _exited(proc, self.kill_grace)
        _signal_group(proc.pid, session.pgid, signal.SIGKILL)
        await _exited(proc, 10.0)
        # Descendants outside the group may still hold the pipes: stop reading them.
        proc._transport.close()  # type: ignore[attr-defined]

    # -- JSON-RPC ----------------------------------------------------------------------------

    async def _handle_frame(self, session: _Session, text: str) -> bool:
        """Answer one frame; False means the connection was dropped."""
        ws = session.ws
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            await ws.send(protocol.encode_error(None, protocol.INTERNAL, str(exc)))
            return True
        if not isinstance(obj, dict):
            # Upstream's error handler itself crashes on a non-object: the socket just dies.
            self._drop(session)
            return False
        method = obj.get("method")
        params = obj.get("params", {})
        msg_id = obj.get("id")
        if method == "pong":
            self.pongs += 1
            session.last_pong = time.monotonic()
            return True
        if method == "execute":
            await self._execute(session, params, msg_id)
        elif method == "control":
            await self._control(session, params, msg_id)
        elif method == "hook_status":
            result = {"enabled": False, "message": "Hook integration not initialized"}
            await ws.send(protocol.encode_result(msg_id, result))
        else:
            await ws.send(
                protocol.encode_error(
                    msg_id, protocol.METHOD_NOT_FOUND, f"Unknown method: {method}"
                )
            )
        return True

    async def _execute(self, session: _Session, params: Any, msg_id: Any) -> None:
        ws = session.ws
        problem = _validate_execute(params)
        if problem is not None:
            await ws.send(protocol.encode_error(msg_id, protocol.INTERNAL, problem))
            return
        command: str = params["command"]
        self.commands.append(command)
        if not command.strip():
            await ws.send(
                protocol.encode_error(msg_id, protocol.NOT_ALLOWED, "Empty command not allowed")
            )
            return
        if session.proc is not None and session.proc.returncode is None:
            await ws.send(
                protocol.encode_error(
                    msg_id, protocol.ALREADY_RUNNING, "A process is already running"
                )
            )
            return
        if self.start_delay > 0:
            await asyncio.sleep(self.start_delay)  # the server is slow; pings keep flowing
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env={**os.environ, MARKER_ENV: session.id},
            )
        except OSError as exc:
            await ws.send(protocol.encode_error(msg_id, protocol.INTERNAL, str(exc)))
            return
        # start_new_session makes the child its group's leader; upstream asks getpgid(),
        # which fails (null pgid) when the child is already gone: `null_pgid` mimics that.
        pgid = None if self.null_pgid else proc.pid
        session.proc, session.pgid = proc, pgid
        session.canceled = session.early_completion = False
        self.pids.append(proc.pid)
        await ws.send(
            protocol.encode_result(msg_id, {"status": "started", "pid": proc.pid, "pgid": pgid})
        )
        await ws.send(
            protocol.encode_notification(
                "process.started", protocol.process_params("started", proc.pid, pgid)
            )
        )
        timeout = params.get("timeout") or None
        session.stream_task = asyncio.create_task(self._stream(session, proc, pgid, timeout))

    async def _control(self, session: _Session, params: Any, msg_id: Any) -> None:
        ws = session.ws
        kind = params.get("type") if isinstance(params, dict) else None
        if kind not in _SIGNALS:
            message = f"1 validation error for ControlRequest\ntype\n  invalid value {kind!r}"
            await ws.send(protocol.encode_error(msg_id, protocol.INTERNAL, message))
            return
        proc = session.proc
        if proc is None:
            await ws.send(
                protocol.encode_error(msg_id, protocol.NO_PROCESS, "No process is running")
            )
            return
        if kind == "CANCEL":
            session.canceled = True  # from here on no process.completed may be sent
        try:
            if session.pgid is not None:
                os.killpg(session.pgid, _SIGNALS[kind])
            else:
                os.kill(proc.pid, _SIGNALS[kind])
        except ProcessLookupError:
            session.canceled = False
            await ws.send(
                protocol.encode_error(
                    msg_id, protocol.INTERNAL, f"Process group {session.pgid} not found"
                )
            )
            return
        status = _STATUS[kind]
        await ws.send(protocol.encode_result(msg_id, {"status": status}))
        await ws.send(
            protocol.encode_notification(
                f"process.{status}", protocol.process_params(status, proc.pid, session.pgid)
            )
        )
        task = session.stream_task
        if kind == "CANCEL" and task is not None and not task.done():
            # Upstream cancels the streamer: the output stops and nothing terminal follows.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 2.0)

    # -- streaming -----------------------------------------------------------------------

    async def _stream(
        self,
        session: _Session,
        proc: asyncio.subprocess.Process,
        pgid: int | None,
        timeout: float | None,
    ) -> None:
        started = time.monotonic()
        try:
            assert proc.stdout is not None and proc.stderr is not None
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(session, "stdout", proc.stdout, timeout))
                group.create_task(self._pump(session, "stderr", proc.stderr, timeout))
            if timeout is None:
                exit_code = await proc.wait()
            else:
                # Upstream then reports success for a process still running.
                await _exited(proc, self.exit_wait)
                exit_code = proc.returncode if proc.returncode is not None else 0
            if session.canceled:
                return
            frame = protocol.encode_completed(proc.pid, pgid, exit_code, time.monotonic() - started)
            await session.ws.send(frame)
        except Exception as exc:  # noqa: BLE001 - upstream reports any streaming failure
            error = _leaf(exc)
            if isinstance(error, ConnectionClosed):
                return
            with contextlib.suppress(ConnectionClosed):
                await session.ws.send(
                    protocol.encode_notification("process.error", {"error": str(error)})
                )

    async def _pump(
        self, session: _Session, stream: str, reader: asyncio.StreamReader, timeout: float | None
    ) -> None:
        buffer = bytearray()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
            except TimeoutError:
                await self._send_line(session, stream, f"\n[Stream timed out after {timeout}s]\n")
                return
            if not chunk:
                break
            start = len(buffer)
            buffer += chunk
            newline = buffer.find(b"\n", start)
            while newline >= 0:
                line = bytes(buffer[: newline + 1])
                del buffer[: newline + 1]
                await self._send_line(session, stream, line.decode("utf-8", "replace"))
                newline = buffer.find(b"\n")
        if buffer:
            await self._send_line(session, stream, buffer.decode("utf-8", "replace"))

    async def _send_line(self, session: _Session, stream: str, line: str) -> None:
        ws = session.ws
        if stream == "stdout":
            lowered = line.lower()
            if self.fail_marker is not None and self.fail_marker in line:
                raise RuntimeError(f"streaming failed on {self.fail_marker!r}")
            marker = next((m for m in EARLY_COMPLETION_MARKERS if m in lowered), None)
            if marker is not None and not session.early_completion:
                session.early_completion = True
                await ws.send(
                    protocol.encode_notification(
                        "task.early_completion",
                        {"session_id": session.id, "marker": marker, "output_line": line.strip()},
                    )
                )
            if "truncated" in lowered:
                await ws.send(
                    protocol.encode_notification(
                        "error.token_limit_exceeded",
                        {
                            "session_id": session.id,
                            "error_type": "token_limit",
                            "limit": 32000,
                            "error_text": line.strip(),
                            "recoverable": True,
                        },
                    )
                )
        for frame in protocol.encode_output(stream, line):
            await ws.send(frame)  # awaited inline: a stalled client stalls the child


def _validate_execute(params: Any) -> str | None:
    """Upstream's pydantic validation, reduced to its messages' gist."""
    if not isinstance(params, dict):
        return "argument after ** must be a mapping, not " + type(params).__name__
    command = params.get("command")
    if not isinstance(command, str):
        return "1 validation error for ExecuteRequest\ncommand\n  Field required"
    timeout = params.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
        return "1 validation error for ExecuteRequest\ntimeout\n  Input should be a valid integer"
    return None


def _signal_group(pid: int, pgid: int | None, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pgid is not None:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)


async def _exited(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    """Whether `proc` exits within `timeout` s.  Not `proc.wait()`: on Python 3.11 that
    also waits for both pipes to close, which a surviving descendant can delay forever."""
    deadline = time.monotonic() + timeout
    while proc.returncode is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return proc.returncode is not None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
