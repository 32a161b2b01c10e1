"""A client of cc_executor servers (upstream, or `ccx-tui serve`): one command per socket.

Follows PROTOCOL.md's advice: answers `ping` with `pong`, sends `timeout: 0` and
enforces the TTL itself (CANCEL, then closing the socket after the grace period so the
server escalates to KILL), waits generously for the execute result, and reads the
socket continuously (output goes straight to the caller's sink, which spools it to
disk), so it never stalls a server.  cwd and env go to `ccx-tui serve` as the `cwd` and
`env` params (never into the command line, where `ps` and `sessions.list` would show a
secret); only an upstream server, which ignores those params, gets them built into
the command string.  From `ccx-tui serve` it also asks for a detachable session
(reattached after a network blip) and for batched output: raw transcript bytes in
large binary frames instead of a JSON frame per line (see server.py), which keeps
invalid UTF-8 exact.  `wss://` URLs are verified against the system's CAs, or those of
`ca_file`.  A `ws+unix:///abs/path` URL names a Unix socket (the engine process of a
data dir, see daemon.py), where `attach` also follows a session started elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shlex
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.auth import client_tls
from ccx_tui.engine.wire.unixsock import WS_URI, unix_path_of
from ccx_tui.errors import CcxError, ConfigError

EXECUTE_DEADLINE = 60.0  # real servers take 3-15 s to start a process
CONNECT_DEADLINE = 10.0
BURST_BYTES = 256 * 1024
REATTACH_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # about 16 s of retries after a blip
DOWN_AFTER = 3.0
"""Seconds of refused reconnects after which a server is taken for dead (its sessions
are lost); a blip that ends sooner is reattached."""


class RemoteError(CcxError):
    """The server could not be reached or refused us; the message says why."""


class SessionLimitReached(RemoteError):
    """The server is at its session limit (-32003, then close 1008)."""


class ServerDown(RemoteError):
    """Nothing listens where the server was (connection refused): it is down, not a
    network blip."""


class RemoteRefused(RemoteError):
    """The server will not take us as we are (bad token, unverified certificate...):
    retrying will not help, changing the token or the CA file will."""


@dataclass(frozen=True, slots=True)
class RemoteOutcome:
    """How a remote command ended: state is exited, killed, expired, failed or lost."""

    state: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    pid: int | None = None
    server_write_error: str | None = None
    """Why the server's own transcript could not keep all the output (a full disk)."""
    server_bytes_lost: int = 0
    """How many bytes it could not keep (they were sent to us all the same)."""

    @property
    def server_loss(self) -> str | None:
        """One line on what the server's transcript lost, if anything."""
        if self.server_write_error is None:
            return None
        return (
            f"on the server: {self.server_write_error}; "
            f"{self.server_bytes_lost} bytes of output were not kept in its transcript"
        )


Sink = Callable[[str, bytes], None]  # (stream, bytes) for each piece of output


def remote_command(spec: SessionSpec) -> str:
    """Upstream ignores cwd and env: build them into the command line (visible in the
    server's process list: only for a server without the `cwd`/`env` params)."""
    prefix = ""
    if spec.cwd:
        prefix += f"cd {shlex.quote(spec.cwd)} || exit 126; "
    for key, value in spec.env.items():
        prefix += f"export {key}={shlex.quote(value)}; "
    return prefix + spec.command


class RemoteRun:
    """Runs one SessionSpec on a server.  `cancel()` asks it to stop (CANCEL + close).

    With `batch` (the default) output comes in batches of raw bytes from a server
    that offers them (`ccx-tui serve`); without, always as upstream's line frames.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        kill_grace: float = 3.0,
        batch: bool = True,
        ca_file: Path | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.ca_file = ca_file
        self.kill_grace = kill_grace
        self.batch = batch
        self.batched = False
        """Whether the server agreed to send batches (known once it has connected)."""
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._stop_reason: str | None = None
        self._stop = asyncio.Event()
        self.pid: int | None = None
        self.session: str | None = None
        """The server's id of the session (ccx-tui servers; known once it started)."""
        self.started = asyncio.Event()
        self.tty = False
        """Whether the command runs on a terminal we may type into (a ccx-tui server
        that offers "tty", asked for one; known once it has connected)."""

    async def send_input(self, data: bytes) -> None:
        """Type into the remote terminal (answers are read, and ignored, by the
        session loop).  Raises RemoteError if it cannot take input."""
        if not self.tty:
            raise RemoteError(f"{self.url} cannot take input: its command runs on pipes")
        await self._session_call("session.input", {"data": data.decode("utf-8", "replace")})

    async def resize(self, cols: int, rows: int) -> None:
        """Size the remote terminal (nothing without one)."""
        if self.tty:
            await self._session_call("session.resize", {"cols": cols, "rows": rows})

    async def _session_call(self, method: str, params: dict[str, Any]) -> None:
        if self._ws is None or not self.started.is_set() or self.session is None:
            raise RemoteError("the remote process has not started yet")
        try:
            await self._send(method, {"session_id": self.session, **params})
        except ConnectionClosed:
            raise RemoteError("connection lost") from None

    async def control(self, kind: str) -> None:
        """Send PAUSE / RESUME (the reply is read by the running session loop)."""
        if self._ws is None or not self.started.is_set():
            raise RemoteError("the remote process has not started yet")
        try:
            await self._send("control", {"type": kind})
        except ConnectionClosed:
            raise RemoteError("connection lost") from None

    def cancel(self, reason: str = "killed") -> None:
        """Stop the remote process (safe to call at any time, from the loop thread)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    async def _connect(self) -> ClientConnection:
        return await dial(self.url, token=self.token, ca_file=self.ca_file)

    async def run(self, spec: SessionSpec, sink: Sink) -> RemoteOutcome:
        """Run to the end.  Raises RemoteError if the server cannot be used at all."""
        self._ws = await self._connect()
        try:
            return await self._session(spec, sink)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)

    async def attach(self, session_id: str, sink: Sink, *, offset: int = 0) -> RemoteOutcome:
        """Follow a session running on a ccx-tui server from byte `offset` of its
        transcript to its end: `sink` gets the transcript from there, then its live
        output.  `cancel()` kills it.  Raises RemoteError if the server cannot be used
        at all; a server that does not know the session makes it end as "failed".
        Cancelling is safe: it closes our socket only, and the session keeps running."""
        self._ws = await self._connect()
        try:
            return await self._session(None, sink, attach=session_id, offset=offset)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)

    async def _reattach(self, session: str, offset: int, *, batch: bool) -> bool:
        """After a network blip: reconnect and replay from `offset` (a checkpoint, or
        with batched output the end of the last batch)."""
        lost_at = asyncio.get_running_loop().time()
        for delay in REATTACH_DELAYS:
            await asyncio.sleep(delay)
            try:
                ws = await self._connect()
            except ServerDown:
                # Refused, not timed out: the server is gone rather than out of reach
                # for a moment.  Its sessions are lost within seconds, not after every
                # retry.
                if asyncio.get_running_loop().time() - lost_at >= DOWN_AFTER:
                    return False
                continue
            except RemoteError:
                continue
            try:
                async with asyncio.timeout(CONNECT_DEADLINE):
                    await ws.recv()  # connected
                    params: dict[str, Any] = {"session_id": session, "offset": offset}
                    if batch:
                        params[p.BATCH] = True
                    await ws.send(p.encode_request("session.attach", params, 0))
                    # The server answers before its sender's first frame: nothing of
                    # the replay is skipped here.
                    while True:
                        reply = p.parse(await ws.recv())
                        if isinstance(reply, (p.Result, p.ErrorResponse)) and reply.id == 0:
                            break
            except (ConnectionClosed, TimeoutError):
                continue
            if isinstance(reply, p.Result):
                if self._ws is not None:  # the lost one: already closed, just tidy up
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._ws.close(), 1)
                self._ws = ws
                return True
            await ws.close()
            return False
        return False

    async def _send(self, method: str, params: dict[str, Any], *, request: bool = True) -> int:
        assert self._ws is not None
        msg_id = next(self._ids)
        frame = (
            p.encode_request(method, params, msg_id)
            if request
            else p.encode_notification(method, params)
        )
        await self._ws.send(frame)
        return msg_id

    async def _session(
        self, spec: SessionSpec | None, sink: Sink, *, attach: str | None = None, offset: int = 0
    ) -> RemoteOutcome:
        loop = asyncio.get_running_loop()
        execute_id: int | None = None
        pid: int | None = None
        started = False
        assembler = p.OutputAssembler()
        deadline = loop.time() + EXECUTE_DEADLINE
        ttl_at = None
        canceled_at: float | None = None
        stopper = loop.create_task(self._stop.wait())
        # With a ccx-tui server the session survives a network blip.  Batched output
        # carries its transcript offset, so we resume from the end of the last batch;
        # line frames do not, so their output is held until the server's next
        # checkpoint (`hold`), then replayed from there if we reattach.
        resumable = False
        batched = False
        hold = False
        remote_session: str | None = attach
        checkpoint = offset
        received = offset  # batched: the server transcript offset we have everything up to
        batch: p.OutputBatch | None = None  # a batch's header, waiting for its payload
        pending: list[tuple[str, bytes]] = []
        pending_bytes = 0

        def emit(stream: str, data: bytes) -> None:
            # Held, then handed over in runs per stream: one sink call (one write to
            # the transcript) per burst instead of one per line.
            nonlocal pending_bytes
            pending.append((stream, data))
            pending_bytes += len(data)
            if not hold and pending_bytes >= BURST_BYTES:
                commit()

        def commit() -> None:
            nonlocal pending_bytes
            run: list[bytes] = []
            current = ""
            for stream, data in pending:
                if stream != current and run:
                    sink(current, b"".join(run))
                    run = []
                current = stream
                run.append(data)
            if run:
                sink(current, b"".join(run))
            pending.clear()
            pending_bytes = 0

        try:
            while True:
                if self._stop.is_set() and canceled_at is None:
                    canceled_at = loop.time()
                    if started:
                        with contextlib.suppress(ConnectionClosed):
                            await self._send("control", {"type": "CANCEL"})
                wait_until = deadline if not started else None
                if ttl_at is not None:
                    wait_until = ttl_at if wait_until is None else min(wait_until, ttl_at)
                if canceled_at is not None:
                    grace_end = canceled_at + self.kill_grace
                    wait_until = grace_end if wait_until is None else min(wait_until, grace_end)
                assert self._ws is not None
                frame: str | bytes | None = None
                closed: ConnectionClosed | None = None
                if wait_until is None or loop.time() < wait_until:
                    # Fast path: a frame already buffered needs no task and no wait
                    # (one per frame made the client the bottleneck of big outputs).
                    try:
                        async with asyncio.timeout(0):
                            frame = await self._ws.recv()
                    except TimeoutError:
                        pass
                    except ConnectionClosed as exc:
                        closed = exc
                if frame is None and closed is None:
                    if not hold:
                        commit()  # nothing more buffered: hand over what we have
                    receiver = loop.create_task(self._ws.recv())
                    timeout = None if wait_until is None else max(0.0, wait_until - loop.time())
                    try:
                        done, _ = await asyncio.wait(
                            {receiver, stopper},
                            timeout=timeout,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    except asyncio.CancelledError:  # our caller let go: no orphan receive
                        receiver.cancel()
                        receiver.add_done_callback(_retrieve)
                        raise
                    if receiver not in done:
                        receiver.cancel()
                        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                            await receiver
                        now = loop.time()
                        if ttl_at is not None and now >= ttl_at and canceled_at is None:
                            self.cancel("expired")
                        elif canceled_at is not None and now >= canceled_at + self.kill_grace:
                            # Only closing the socket makes a server escalate to SIGKILL.
                            commit()
                            return RemoteOutcome(
                                self._final_state(), reason="closed after grace", pid=pid
                            )
                        elif not started and now >= deadline:
                            raise RemoteError(
                                f"{self.url}: no answer to execute within {EXECUTE_DEADLINE:.0f}s"
                            )
                        continue
                    try:
                        frame = receiver.result()
                    except ConnectionClosed as exc:
                        closed = exc
                if closed is not None:
                    if canceled_at is not None:
                        commit()
                        return RemoteOutcome(self._final_state(), pid=pid)
                    blip = closed.rcvd is None or closed.rcvd.code != 1008
                    if resumable and remote_session and blip:
                        if batched:
                            commit()  # all of it: the server resumes just past it
                        if await self._reattach(
                            remote_session, received if batched else checkpoint, batch=batched
                        ):
                            pending.clear()  # the server replays it from the checkpoint
                            assembler = p.OutputAssembler()
                            batch = None
                            continue
                    commit()
                    rcvd = closed.rcvd
                    reason = rcvd.reason if rcvd and rcvd.reason else "connection lost"
                    if rcvd is not None and rcvd.code == 1008:
                        raise SessionLimitReached(f"{self.url}: session limit reached") from None
                    return RemoteOutcome("lost", reason=f"{reason} ({self.url})", pid=pid)
                assert frame is not None
                if batch is not None:  # this frame must be the payload of that header
                    head, batch = batch, None
                    # A replay after a reattach may overlap what we already have.
                    pieces = (
                        head.split(frame, max(0, received - head.offset))
                        if isinstance(frame, bytes)
                        else p.ProtocolError("batch header without its payload")
                    )
                    if isinstance(pieces, p.ProtocolError):
                        # Never skip bytes: drop the connection, so that we reattach
                        # and the server sends them again from `received`.
                        self._ws.transport.abort()
                        continue
                    for stream, data in pieces:
                        emit(stream, data)
                    received = max(received, head.end)
                    continue
                msg = p.parse(frame)
                if isinstance(msg, p.ErrorResponse):
                    if msg.session_limit:
                        raise SessionLimitReached(f"{self.url}: session limit reached")
                    if msg.id is not None and msg.id == execute_id:
                        return RemoteOutcome("failed", reason=f"server refused: {msg.message}")
                    continue
                if isinstance(msg, p.Result) and msg.id == execute_id:
                    started = True
                    if isinstance(msg.result, dict):
                        session = msg.result.get("session", remote_session)
                        remote_session = session if isinstance(session, str) else None
                        raw_pid = msg.result.get("pid")
                        pid = raw_pid if isinstance(raw_pid, int) else None
                    self.pid = pid
                    self.session = remote_session
                    self.started.set()
                    if spec is not None and spec.ttl:
                        ttl_at = loop.time() + spec.ttl
                    continue
                if not isinstance(msg, p.Notification):
                    continue
                event = p.decode_notification(msg)
                if isinstance(event, p.Connected) and attach is not None:
                    if "attach" not in event.capabilities:
                        raise RemoteError(f"{self.url} cannot attach to sessions")
                    params = {"session_id": attach, "offset": offset}
                    resumable = True
                    hold = True
                    if self.batch and p.BATCH in event.capabilities:
                        params[p.BATCH] = True
                        batched = self.batched = True
                        hold = False
                    execute_id = await self._send("session.attach", params)
                elif isinstance(event, p.Connected):
                    assert spec is not None
                    params = _execute_params(spec, event.capabilities)
                    self.tty = params.get("tty") is True
                    if "attach" in event.capabilities:  # a ccx-tui server: ask to detach
                        params["detachable"] = True
                        resumable = True
                        hold = True
                    if self.batch and p.BATCH in event.capabilities:  # ...and batches
                        params[p.BATCH] = True
                        batched = self.batched = True
                        hold = False
                    execute_id = await self._send("execute", params)
                elif isinstance(event, p.Ping):
                    await self._send("pong", {}, request=False)
                elif isinstance(event, p.ProcessOutput):
                    emit(event.stream, assembler.feed(event).encode("utf-8"))
                elif isinstance(event, p.OutputBatch) and batched:
                    batch = event
                elif isinstance(event, p.ProcessEnded):
                    commit()
                    return self._ended(event, pid)
                elif isinstance(event, p.OtherNotification) and event.method == p.LOST_METHOD:
                    # Output the server could not keep nor still hold: say so, in place.
                    at, count = event.params.get("offset"), event.params.get("bytes")
                    if isinstance(at, int) and isinstance(count, int) and count > 0:
                        why = str(event.params.get("reason") or "the server lost it")
                        emit("stderr", p.lost_line(count, why).encode())
                        received = max(received, at + count)
                elif isinstance(event, p.OtherNotification) and event.method == (
                    "stream.checkpoint"
                ):
                    at = event.params.get("offset")
                    if isinstance(at, int):
                        checkpoint = at
                        commit()
        finally:
            stopper.cancel()

    def _final_state(self) -> str:
        return "expired" if self._stop_reason == "expired" else "killed"

    def _ended(self, event: p.ProcessEnded, pid: int | None) -> RemoteOutcome:
        outcome = self._ending(event, pid)
        error, lost = event.extra.get("write_error"), event.extra.get("bytes_lost")
        if isinstance(error, str):  # a ccx-tui server's transcript lost output
            count = lost if isinstance(lost, int) and not isinstance(lost, bool) else 0
            outcome = replace(outcome, server_write_error=error, server_bytes_lost=count)
        return outcome

    def _ending(self, event: p.ProcessEnded, pid: int | None) -> RemoteOutcome:
        if event.kind == "error":
            return RemoteOutcome("failed", reason=event.error, pid=pid)
        code = event.exit_code
        if event.kind == "canceled" or self._stop_reason is not None:
            sig = -code if code is not None and code < 0 else None
            shell_code = 128 + sig if sig is not None else code
            return RemoteOutcome(self._final_state(), exit_code=shell_code, signal=sig, pid=pid)
        if code is not None and code < 0:
            return RemoteOutcome("exited", exit_code=128 - code, signal=-code, pid=pid)
        return RemoteOutcome("exited", exit_code=code, pid=pid)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Take a finished task's outcome, so that asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


async def dial(url: str, *, token: str | None, ca_file: Path | None) -> ClientConnection:
    """Connect to a server (`ws://`, `wss://` or `ws+unix://`), with the token as a
    bearer.  Raises RemoteRefused (bad token, untrusted certificate), ServerDown
    (refused) or RemoteError (anything else), each saying what to do."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        tls = None
        if urlsplit(url).scheme == "wss":
            try:
                tls = client_tls(ca_file)
            except ConfigError as exc:
                raise RemoteRefused(str(exc)) from None
        unix = unix_path_of(url)
        async with asyncio.timeout(CONNECT_DEADLINE):
            if unix is not None:
                return await unix_connect(
                    unix, WS_URI, max_size=None, open_timeout=CONNECT_DEADLINE, compression=None
                )
            return await connect(
                url,
                additional_headers=headers,
                max_size=None,
                open_timeout=CONNECT_DEADLINE,
                compression=None,
                ssl=tls,
            )
    except InvalidStatus as exc:
        code = exc.response.status_code
        if code == 401:
            why = "bad token" if token else "a token is required (--token-file FILE)"
            raise RemoteRefused(f"{url} refused: {why}") from None
        raise RemoteError(f"{url} refused the connection: HTTP {code}") from None
    except InvalidURI:
        raise RemoteError(f"not a WebSocket URL: {url}") from None
    except ssl.SSLCertVerificationError as exc:
        hint = "" if ca_file else " (a private CA? give its certificate: --ca-file)"
        raise RemoteRefused(
            f"cannot connect to {url}: certificate verify failed: {exc.verify_message}{hint}"
        ) from None
    except ssl.SSLError as exc:
        raise RemoteError(f"cannot connect to {url}: TLS failed: {exc.reason or exc}") from None
    except InvalidHandshake as exc:
        # Typically a ws:// URL for a TLS server: its answer is no HTTP at all.
        hint = " (a TLS server? use wss://)" if url.startswith("ws://") else ""
        raise RemoteError(f"cannot connect to {url}: {exc}{hint}") from None
    except ConnectionRefusedError as exc:
        raise ServerDown(f"cannot connect to {url}: {exc.strerror or exc}") from None
    except (OSError, TimeoutError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or "timed out"
        raise RemoteError(f"cannot connect to {url}: {detail}") from None


def _execute_params(spec: SessionSpec, capabilities: Sequence[str]) -> dict[str, Any]:
    """`execute`'s params: cwd and env as params for a server that takes them."""
    if (spec.cwd or spec.env) and not {"cwd", "env"} <= set(capabilities):
        return {"command": remote_command(spec), "timeout": 0}
    params: dict[str, Any] = {"command": spec.command, "timeout": 0}
    if spec.cwd:
        params["cwd"] = spec.cwd
    if spec.env:
        params["env"] = dict(spec.env)
    if spec.tty and "tty" in capabilities:
        params.update(tty=True, cols=spec.cols, rows=spec.rows)
    return params
