"""The client side of one remote command (`execute`, or `session.attach`), sans I/O.

Frames and the time go in; output for the sink, frames to send, a reattach request
and the outcome come out.  No sockets and no clock of its own: RemoteRun (remote.py)
is the loop around it and tests drive it frame by frame.  It follows PROTOCOL.md:
answers `ping` with `pong`, sends `timeout: 0` and keeps the TTL itself (CANCEL, then
the caller closes the socket once the grace period is over, so that the server
escalates to KILL), waits generously for the execute result, and, with a ccx-tui
server, asks for batched output and a detachable session that survives a blip.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.wire import protocol as p
from ccx_tui.errors import CcxError

EXECUTE_DEADLINE = 60.0  # real servers take 3-15 s to start a process
BURST_BYTES = 256 * 1024

Sink = Callable[[str, bytes], None]  # (stream, bytes) for each piece of output


class RemoteError(CcxError):
    """The server could not be reached or refused us; the message says why."""


class SessionLimitReached(RemoteError):
    """The server is at its session limit (-32003, then close 1008)."""


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


@dataclass(frozen=True, slots=True)
class Reattach:
    """The connection dropped mid-session: reconnect, `session.attach` to `session`
    from `offset` (with batches if `batch`) and call `reattached()`; if that fails,
    the run is `lost()`."""

    session: str
    offset: int
    batch: bool


@dataclass(slots=True)
class Step:
    """What one frame gave."""

    send: list[str] = field(default_factory=list)
    outcome: RemoteOutcome | None = None
    abort: bool = False
    """The connection carries something we cannot use: drop it (a reattach follows)."""


class RunProtocol:
    """One command's protocol state.  Raises RemoteError (the server cannot be used
    for this) and SessionLimitReached."""

    def __init__(
        self,
        url: str,
        sink: Sink,
        *,
        spec: SessionSpec | None,
        attach: str | None = None,
        offset: int = 0,
        batch: bool = True,
        kill_grace: float = 3.0,
        now: float = 0.0,
    ) -> None:
        self.url = url
        self.sink = sink
        self.spec = spec
        self.attach = attach
        self.batch = batch
        self.kill_grace = kill_grace
        self._ids = itertools.count(1)
        self.execute_id: int | None = None
        self.pid: int | None = None
        self.session: str | None = attach
        """The server's id of the session (ccx-tui servers; known once it started)."""
        self.started = False
        self.tty = False
        """Whether the command runs on a terminal we may type into."""
        self.batched = False
        """Whether the server agreed to send batches (known once it has connected)."""
        self.stop_reason: str | None = None
        self.execute_deadline = now + EXECUTE_DEADLINE
        self.ttl_at: float | None = None
        self.canceled_at: float | None = None
        # With a ccx-tui server the session survives a network blip.  Batched output
        # carries its transcript offset, so we resume from the end of the last batch;
        # line frames do not, so their output is held until the server's next
        # checkpoint (`hold`), then replayed from there if we reattach.
        self.resumable = False
        self.hold = False
        self.checkpoint = offset
        self.received = offset  # batched: the server transcript offset we have up to
        self._assembler = p.OutputAssembler()
        self._batch: p.OutputBatch | None = None  # a batch's header, waiting for its payload
        self._pending: list[tuple[str, bytes]] = []
        self._pending_bytes = 0

    # -- frames of our own ------------------------------------------------------------

    def request(self, method: str, params: dict[str, Any]) -> tuple[int, str]:
        msg_id = next(self._ids)
        return msg_id, p.encode_request(method, params, msg_id)

    # -- inputs -----------------------------------------------------------------------

    def cancel(self, reason: str, now: float) -> list[str]:
        """Stop the command: CANCEL now (if it started), the socket closed after the
        grace period (see `deadline`).  Returns the frames to send."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.canceled_at is not None:
            return []
        self.canceled_at = now
        return [self.request("control", {"type": "CANCEL"})[1]] if self.started else []

    def deadline(self) -> float | None:
        """When `expire` must be called if no frame comes first."""
        times = [] if self.started else [self.execute_deadline]
        if self.ttl_at is not None and self.canceled_at is None:  # once: it cancels
            times.append(self.ttl_at)
        if self.canceled_at is not None:
            times.append(self.canceled_at + self.kill_grace)
        return min(times) if times else None

    def expire(self, now: float) -> Step:
        """The deadline passed: the TTL cancels, a cancel's grace period ends the run
        (the caller closes the socket: the server then kills), no execute result
        within EXECUTE_DEADLINE raises."""
        if self.ttl_at is not None and now >= self.ttl_at and self.canceled_at is None:
            return Step(send=self.cancel("expired", now))
        if self.canceled_at is not None and now >= self.canceled_at + self.kill_grace:
            self.commit()
            return Step(
                outcome=RemoteOutcome(
                    self._final_state(), reason="closed after grace", pid=self.pid
                )
            )
        if not self.started and now >= self.execute_deadline:
            raise RemoteError(f"{self.url}: no answer to execute within {EXECUTE_DEADLINE:.0f}s")
        return Step()

    def idle(self) -> None:
        """Nothing more is buffered: hand over what we have (unless it is held for a
        checkpoint)."""
        if not self.hold:
            self.commit()

    def closed(self, code: int | None, reason: str | None) -> RemoteOutcome | Reattach:
        """The connection closed (`code` and `reason`: the close frame's, None if none
        came)."""
        if self.canceled_at is not None:
            self.commit()
            return RemoteOutcome(self._final_state(), pid=self.pid)
        blip = code != 1008
        if self.resumable and self.session and blip:
            if self.batched:
                self.commit()  # all of it: the server resumes just past it
            where = self.received if self.batched else self.checkpoint
            return Reattach(self.session, where, self.batched)
        return self.lost(code, reason)

    def lost(self, code: int | None, reason: str | None) -> RemoteOutcome:
        """The connection is gone for good (no reattach, or it failed)."""
        self.commit()
        if code == 1008:
            raise SessionLimitReached(f"{self.url}: session limit reached")
        return RemoteOutcome(
            "lost", reason=f"{reason or 'connection lost'} ({self.url})", pid=self.pid
        )

    def reattached(self) -> None:
        """A reattach worked: the server replays from the offset it was given."""
        self._pending.clear()
        self._pending_bytes = 0
        self._assembler = p.OutputAssembler()
        self._batch = None

    def receive(self, frame: str | bytes, now: float) -> Step:
        """Apply one frame from the server."""
        step = Step()
        if self._batch is not None:  # this frame must be the payload of that header
            head, self._batch = self._batch, None
            # A replay after a reattach may overlap what we already have.
            pieces = (
                head.split(frame, max(0, self.received - head.offset))
                if isinstance(frame, bytes)
                else p.ProtocolError("batch header without its payload")
            )
            if isinstance(pieces, p.ProtocolError):
                # Never skip bytes: drop the connection, so that we reattach and the
                # server sends them again from `received`.
                step.abort = True
                return step
            for stream, data in pieces:
                self._emit(stream, data)
            self.received = max(self.received, head.end)
            return step
        msg = p.parse(frame)
        if isinstance(msg, p.ErrorResponse):
            if msg.session_limit:
                raise SessionLimitReached(f"{self.url}: session limit reached")
            if msg.id is not None and msg.id == self.execute_id:
                step.outcome = RemoteOutcome("failed", reason=f"server refused: {msg.message}")
            return step
        if isinstance(msg, p.Result) and msg.id == self.execute_id:
            self._started(msg.result, now)
            return step
        if not isinstance(msg, p.Notification):
            return step
        event = p.decode_notification(msg)
        if isinstance(event, p.Connected):
            step.send.append(self._begin(event.capabilities))
        elif isinstance(event, p.Ping):
            step.send.append(p.encode_notification("pong", {}))
        elif isinstance(event, p.ProcessOutput):
            self._emit(event.stream, self._assembler.feed(event).encode("utf-8"))
        elif isinstance(event, p.OutputBatch) and self.batched:
            self._batch = event
        elif isinstance(event, p.ProcessEnded):
            self.commit()
            step.outcome = self._ended(event)
        elif isinstance(event, p.OtherNotification) and event.method == p.LOST_METHOD:
            # Output the server could not keep nor still hold: say so, in place.
            at, count = event.params.get("offset"), event.params.get("bytes")
            if isinstance(at, int) and isinstance(count, int) and count > 0:
                why = str(event.params.get("reason") or "the server lost it")
                self._emit("stderr", p.lost_line(count, why).encode())
                self.received = max(self.received, at + count)
        elif isinstance(event, p.OtherNotification) and event.method == "stream.checkpoint":
            at = event.params.get("offset")
            if isinstance(at, int):
                self.checkpoint = at
                self.commit()
        return step

    # -- internals --------------------------------------------------------------------

    def _begin(self, capabilities: Sequence[str]) -> str:
        """The first request once connected: execute the spec, or attach."""
        if self.attach is not None:
            if "attach" not in capabilities:
                raise RemoteError(f"{self.url} cannot attach to sessions")
            params: dict[str, Any] = {"session_id": self.attach, "offset": self.received}
            method = "session.attach"
        else:
            assert self.spec is not None
            params = execute_params(self.spec, capabilities)
            self.tty = params.get("tty") is True
            method = "execute"
            if "attach" in capabilities:  # a ccx-tui server: ask to detach
                params["detachable"] = True
        if "attach" in capabilities:
            self.resumable = True
            self.hold = True
        if self.batch and p.BATCH in capabilities:  # ...and batches
            params[p.BATCH] = True
            self.batched = True
            self.hold = False
        self.execute_id, frame = self.request(method, params)
        return frame

    def _started(self, result: Any, now: float) -> None:
        self.started = True
        if isinstance(result, dict):
            session = result.get("session", self.session)
            self.session = session if isinstance(session, str) else None
            raw_pid = result.get("pid")
            self.pid = raw_pid if isinstance(raw_pid, int) else None
        if self.spec is not None and self.spec.ttl:
            self.ttl_at = now + self.spec.ttl

    def _emit(self, stream: str, data: bytes) -> None:
        # Held, then handed over in runs per stream: one sink call (one write to the
        # transcript) per burst instead of one per line.
        self._pending.append((stream, data))
        self._pending_bytes += len(data)
        if not self.hold and self._pending_bytes >= BURST_BYTES:
            self.commit()

    def commit(self) -> None:
        """Hand what is pending to the sink."""
        run: list[bytes] = []
        current = ""
        for stream, data in self._pending:
            if stream != current and run:
                self.sink(current, b"".join(run))
                run = []
            current = stream
            run.append(data)
        if run:
            self.sink(current, b"".join(run))
        self._pending.clear()
        self._pending_bytes = 0

    def _final_state(self) -> str:
        return "expired" if self.stop_reason == "expired" else "killed"

    def _ended(self, event: p.ProcessEnded) -> RemoteOutcome:
        outcome = self._ending(event)
        error, lost = event.extra.get("write_error"), event.extra.get("bytes_lost")
        if isinstance(error, str):  # a ccx-tui server's transcript lost output
            count = lost if isinstance(lost, int) and not isinstance(lost, bool) else 0
            outcome = replace(outcome, server_write_error=error, server_bytes_lost=count)
        return outcome

    def _ending(self, event: p.ProcessEnded) -> RemoteOutcome:
        pid = self.pid
        if event.kind == "error":
            return RemoteOutcome("failed", reason=event.error, pid=pid)
        code = event.exit_code
        if event.kind == "canceled" or self.stop_reason is not None:
            sig = -code if code is not None and code < 0 else None
            shell_code = 128 + sig if sig is not None else code
            return RemoteOutcome(self._final_state(), exit_code=shell_code, signal=sig, pid=pid)
        if code is not None and code < 0:
            return RemoteOutcome("exited", exit_code=128 - code, signal=-code, pid=pid)
        return RemoteOutcome("exited", exit_code=code, pid=pid)


def remote_command(spec: SessionSpec) -> str:
    """Upstream ignores cwd and env: build them into the command line (visible in the
    server's process list: only for a server without the `cwd`/`env` params)."""
    prefix = ""
    if spec.cwd:
        prefix += f"cd {shlex.quote(spec.cwd)} || exit 126; "
    for key, value in spec.env.items():
        prefix += f"export {key}={shlex.quote(value)}; "
    return prefix + spec.command


def execute_params(spec: SessionSpec, capabilities: Sequence[str]) -> dict[str, Any]:
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
