"""A client of cc_executor servers (upstream, or `ccx-tui serve`): one command per socket.

RemoteRun is a thin loop around run_protocol.RunProtocol (the sans-I/O state of one
command: frames in; output, frames and the outcome out; deadlines), which follows
PROTOCOL.md's advice: answers `ping` with `pong`, sends `timeout: 0` and enforces the
TTL itself (CANCEL, then closing the socket after the grace period so the server
escalates to KILL), waits generously for the execute result.  The loop reads the
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
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.auth import client_tls
from ccx_tui.engine.wire.run_protocol import (
    Reattach,
    RemoteError,
    RemoteOutcome,
    RunProtocol,
    SessionLimitReached,
    Sink,
    remote_command,
)
from ccx_tui.engine.wire.unixsock import WS_URI, unix_path_of
from ccx_tui.errors import ConfigError

CONNECT_DEADLINE = 10.0
REATTACH_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # about 16 s of retries after a blip
DOWN_AFTER = 3.0
"""Seconds of refused reconnects after which a server is taken for dead (its sessions
are lost); a blip that ends sooner is reattached."""


class ServerDown(RemoteError):
    """Nothing listens where the server was (connection refused): it is down, not a
    network blip."""


class RemoteRefused(RemoteError):
    """The server will not take us as we are (bad token, unverified certificate...):
    retrying will not help, changing the token or the CA file will."""


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
        self._proto: RunProtocol | None = None  # the command's protocol state
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

    async def _send(self, method: str, params: dict[str, Any]) -> int:
        assert self._ws is not None and self._proto is not None
        msg_id, frame = self._proto.request(method, params)
        await self._ws.send(frame)
        return msg_id

    async def _session(
        self, spec: SessionSpec | None, sink: Sink, *, attach: str | None = None, offset: int = 0
    ) -> RemoteOutcome:
        """The loop around RunProtocol: frames from the socket in, its frames out."""
        loop = asyncio.get_running_loop()
        proto = self._proto = RunProtocol(
            self.url,
            sink,
            spec=spec,
            attach=attach,
            offset=offset,
            batch=self.batch,
            kill_grace=self.kill_grace,
            now=loop.time(),
        )
        stopper = loop.create_task(self._stop.wait())
        try:
            while True:
                assert self._ws is not None
                if self._stop.is_set() and proto.canceled_at is None:
                    for frame in proto.cancel(self._stop_reason or "killed", loop.time()):
                        with contextlib.suppress(ConnectionClosed):
                            await self._ws.send(frame)
                proto.kill_grace = self.kill_grace  # a forced kill sets it to 0
                wait_until = proto.deadline()
                frame_in: str | bytes | None = None
                closed: ConnectionClosed | None = None
                if wait_until is None or loop.time() < wait_until:
                    # Fast path: a frame already buffered needs no task and no wait
                    # (one per frame made the client the bottleneck of big outputs).
                    try:
                        async with asyncio.timeout(0):
                            frame_in = await self._ws.recv()
                    except TimeoutError:
                        pass
                    except ConnectionClosed as exc:
                        closed = exc
                if frame_in is None and closed is None:
                    proto.idle()  # nothing more buffered: hand over what we have
                    receiver = loop.create_task(self._ws.recv())
                    timeout = None if wait_until is None else max(0.0, wait_until - loop.time())
                    # Once cancelled, the stop is handled: waiting on it again (it is
                    # done for good) would spin until the grace period ends.
                    waiters = {receiver} if proto.canceled_at is not None else {receiver, stopper}
                    try:
                        done, _ = await asyncio.wait(
                            waiters,
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
                        if stopper not in done:
                            step = proto.expire(loop.time())
                            for frame in step.send:
                                with contextlib.suppress(ConnectionClosed):
                                    await self._ws.send(frame)
                            if step.outcome is not None:
                                return step.outcome
                        continue
                    try:
                        frame_in = receiver.result()
                    except ConnectionClosed as exc:
                        closed = exc
                if closed is not None:
                    code = closed.rcvd.code if closed.rcvd is not None else None
                    reason = closed.rcvd.reason if closed.rcvd is not None else None
                    ending = proto.closed(code, reason)
                    if isinstance(ending, Reattach):
                        if await self._reattach(ending.session, ending.offset, batch=ending.batch):
                            proto.reattached()
                            continue
                        return proto.lost(code, reason)
                    return ending
                assert frame_in is not None
                step = proto.receive(frame_in, loop.time())
                self.batched = proto.batched
                self.tty = proto.tty
                for frame in step.send:
                    await self._ws.send(frame)
                if step.abort:
                    self._ws.transport.abort()
                    continue
                if proto.started and not self.started.is_set():
                    self.pid, self.session = proto.pid, proto.session
                    self.started.set()
                if step.outcome is not None:
                    return step.outcome
        finally:
            stopper.cancel()


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


__all__ = [  # the errors and outcome are run_protocol's, offered here with RemoteRun
    "RemoteError",
    "RemoteOutcome",
    "RemoteRefused",
    "RemoteRun",
    "ServerDown",
    "SessionLimitReached",
    "Sink",
    "dial",
    "remote_command",
]
