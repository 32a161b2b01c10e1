"""Following one session of a ccx-tui server into a local copy, sans I/O.

Frames go in; what to write into the copy and the frames to send come out, and
whether the stream has ended.  TranscriptMirror (mirror.py) is the loop around it.
Unlike RunProtocol (which runs a command and hands its output to a sink), it keeps
the copy exact by the server's transcript offsets: it asks for batched output, keeps
the server's own `meta` bytes (the newline it puts between two runs of a restarted
session), drops what a replay repeats, and gives each gap the server states
(`process.output_lost`) with the offsets it covers, so that the copy can record
where it holds a note in place of bytes nobody has.  From a server with the "runs"
capability it also asks for the session's runs.jsonl (see protocol.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ccx_tui.engine.transcripts.transcript import META, STDERR, STDOUT
from ccx_tui.engine.wire import protocol as p

ATTACH_ID = 1
STREAMS = {"stdout": STDOUT, "stderr": STDERR, "meta": META}
UNSENT = "the server did not send it"


@dataclass(frozen=True, slots=True)
class Output:
    """Bytes [offset, offset + len(data)) of the server's transcript, from `stream`
    (STDOUT, STDERR or META)."""

    offset: int
    stream: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes [offset, offset + count) of the server's output that nobody has any more
    (its disk did not keep them, and it no longer holds them)."""

    offset: int
    count: int
    reason: str

    @property
    def note(self) -> bytes:
        """The line the copy gets in their place (the one a live client shows)."""
        return p.lost_line(self.count, self.reason).encode()


@dataclass(frozen=True, slots=True)
class Runs:
    """Whole lines of the server's runs.jsonl, from its byte `offset` on."""

    offset: int
    data: bytes


Piece = Output | Gap | Runs


@dataclass(slots=True)
class Step:
    """What one frame gave."""

    send: list[str] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    done: bool = False
    """The stream ended (the session's terminal notification): the copy has all of it."""
    error: str | None = None
    """Why following cannot go on (the server refused, or sent what we cannot use)."""


class MirrorFollower:
    """The state of following one session from server offset `offset`, holding `runs`
    bytes of its runs.jsonl.  Survives reconnects: call `connecting()` before each."""

    def __init__(self, url: str, session_id: str, *, offset: int, runs: int) -> None:
        self.url = url
        self.session_id = session_id
        self.offset = offset
        """The server offset the copy has reached (pieces given so far included)."""
        self.runs = runs
        """Bytes of the server's runs.jsonl given so far."""
        self.runs_offered: bool | None = None
        """Whether the server sends runs (None until it has connected)."""
        self._head: p.OutputBatch | p.RunsPiece | None = None  # its payload comes next

    def connecting(self) -> None:
        """A new connection: whatever the last one was in the middle of is void."""
        self._head = None

    def receive(self, frame: str | bytes) -> Step:
        """Apply one frame from the server."""
        step = Step()
        head, self._head = self._head, None
        if isinstance(frame, bytes):
            if head is None:
                step.error = f"{self.url} sent bytes without a header"
            elif isinstance(head, p.OutputBatch):
                self._batch(head, frame, step)
            else:
                self._runs(head, frame, step)
            return step
        if head is not None:
            step.error = f"{self.url} sent a header without its bytes"
            return step
        msg = p.parse(frame)
        if isinstance(msg, p.ErrorResponse):
            if msg.id in (ATTACH_ID, None):
                step.error = f"{self.url} refused: {msg.message}"
        elif isinstance(msg, p.Notification):
            event = p.decode_notification(msg)
            if isinstance(event, p.ProtocolError):
                step.error = f"{self.url}: {event.reason}"
            else:
                self._notification(event, step)
        return step

    # -- internals --------------------------------------------------------------------

    def _notification(self, event: p.ServerEvent, step: Step) -> None:
        if isinstance(event, p.Connected):
            if "attach" not in event.capabilities or p.BATCH not in event.capabilities:
                step.error = f"{self.url} cannot copy sessions (it has no batched attach)"
            else:
                step.send.append(self._attach(event.capabilities))
        elif isinstance(event, p.Ping):
            step.send.append(p.encode_notification("pong", {}))
        elif isinstance(event, p.OutputBatch):
            self._head = event
        elif isinstance(event, p.ProcessEnded):
            step.done = True
        elif isinstance(event, p.ProcessOutput):
            step.error = f"{self.url} sent line frames where batches were asked for"
        elif isinstance(event, p.OtherNotification) and event.method == p.LOST_METHOD:
            self._lost(event.params, step)
        elif isinstance(event, p.OtherNotification) and event.method == p.RUNS_METHOD:
            piece = p.decode_runs(event.params)
            if isinstance(piece, p.ProtocolError):
                step.error = f"{self.url}: {piece.reason}"
            else:
                self._head = piece

    def _attach(self, capabilities: tuple[str, ...]) -> str:
        self.runs_offered = p.RUNS in capabilities
        params: dict[str, Any] = {
            "session_id": self.session_id,
            "offset": self.offset,
            p.BATCH: True,
        }
        if self.runs_offered:
            params[p.RUNS] = self.runs
        return p.encode_request("session.attach", params, ATTACH_ID)

    def _batch(self, head: p.OutputBatch, payload: bytes, step: Step) -> None:
        if len(payload) != head.size:
            step.error = f"{self.url} sent a batch of {len(payload)} bytes, said {head.size}"
            return
        if head.offset > self.offset:  # never so from a ccx-tui server: say so anyway
            self._gap(head.offset, UNSENT, step)
        pos = head.offset
        for stream, length in head.runs:
            lo, hi = max(pos, self.offset), pos + length
            pos = hi
            if lo < hi:  # (a replay after a reconnect repeats what we have)
                whole = lo == head.offset and hi == head.end
                data = payload if whole else payload[lo - head.offset : hi - head.offset]
                step.pieces.append(Output(lo, STREAMS[stream], data))
                self.offset = hi

    def _runs(self, head: p.RunsPiece, payload: bytes, step: Step) -> None:
        if len(payload) != head.size:
            step.error = f"{self.url} sent {len(payload)} bytes of runs, said {head.size}"
            return
        end = head.offset + head.size
        if head.offset <= self.runs < end:  # what follows ours (and nothing else)
            step.pieces.append(Runs(self.runs, payload[self.runs - head.offset :]))
            self.runs = end

    def _lost(self, params: dict[str, Any], step: Step) -> None:
        at, count = params.get("offset"), params.get("bytes")
        if not (isinstance(at, int) and isinstance(count, int)) or count <= 0:
            return
        self._gap(at + count, str(params.get("reason") or "the server lost it"), step)

    def _gap(self, end: int, reason: str, step: Step) -> None:
        """Nobody has the bytes from where we are to `end`."""
        if end > self.offset:
            step.pieces.append(Gap(self.offset, end - self.offset, reason))
            self.offset = end
