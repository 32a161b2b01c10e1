"""Sans-I/O codec for the cc_executor JSON-RPC 2.0 wire format (see shared/PROTOCOL.md).

`parse()` turns one text frame into a message value and never raises: malformed input
becomes a `ProtocolError`.  `decode_notification()` types the server's notifications.
The `encode_*` functions build frames.  No sockets here: `remote.py` and `server.py`
are thin I/O around this module.

Two extensions carry raw bytes: batched output (`OutputBatch`), a notification that
gives a byte offset and streams, then a binary frame of transcript bytes; and a
session's runs (`RunsPiece`), pieces of its `runs.jsonl` the same way.  Only a ccx-tui
server sends them, and only to a client that asked (see server.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

JSONRPC = "2.0"
CHUNK_CHARS = 65_536
MAX_FRAME_CHARS = 64 * 1024 * 1024  # a frame larger than this is refused unparsed

# Error codes as upstream servers send them (PROTOCOL.md "Errors").
NOT_ALLOWED = -32001
NO_PROCESS = -32002
SESSION_LIMIT = -32003
ALREADY_RUNNING = -32602
INVALID_PARAMS = -32602  # JSON-RPC's own code; upstream reuses it for "already running"
INTERNAL = -32603
METHOD_NOT_FOUND = -32601

Id = int | str | None


@dataclass(frozen=True, slots=True)
class Request:
    """A method call with an id (client -> server, or a server's own request)."""

    method: str
    params: dict[str, Any]
    id: Id


@dataclass(frozen=True, slots=True)
class Notification:
    """A method call without an id (both directions: `ping`, `pong`, `process.*`)."""

    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Result:
    """A successful response."""

    id: Id
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An error response; `id` is None when the server could not tell (or chose not to)."""

    id: Id
    code: int
    message: str
    data: Any = None

    @property
    def session_limit(self) -> bool:
        """True for 'Session limit exceeded', whichever code the server used."""
        return "session limit" in self.message.lower() or (
            self.code == SESSION_LIMIT and "not found" not in self.message.lower()
        )


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """Input that is not a valid message; `reason` says why, for logs and statuses."""

    reason: str


Message = Request | Notification | Result | ErrorResponse


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def parse(frame: str | bytes) -> Message | ProtocolError:
    """Decode one frame.  Never raises."""
    if isinstance(frame, bytes):
        if len(frame) > MAX_FRAME_CHARS * 4:
            return ProtocolError(f"frame too large ({len(frame)} bytes)")
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            return ProtocolError("frame is not valid UTF-8")
    if len(frame) > MAX_FRAME_CHARS:
        return ProtocolError(f"frame too large ({len(frame)} characters)")
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return ProtocolError(f"invalid JSON: {_excerpt(frame)!r}")
    if not isinstance(obj, dict):
        return ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    return _from_object(obj)


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (int, str)) and not isinstance(value, bool))


def _from_object(obj: dict[str, Any]) -> Message | ProtocolError:
    method = obj.get("method")
    msg_id = obj.get("id")
    if not _valid_id(msg_id):
        return ProtocolError(f"bad id: {_excerpt(repr(msg_id))}")
    if method is not None:
        if not isinstance(method, str) or not method:
            return ProtocolError("method must be a non-empty string")
        params = obj.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return ProtocolError(f"params of {method!r} must be an object")
        if "id" in obj:
            return Request(method, params, msg_id)
        return Notification(method, params)
    if "error" in obj:
        err = obj["error"]
        if not isinstance(err, dict):
            return ProtocolError("error must be an object")
        code = err.get("code")
        message = err.get("message", "")
        if not isinstance(code, int) or isinstance(code, bool):
            return ProtocolError("error code must be an integer")
        if not isinstance(message, str):
            message = str(message)
        return ErrorResponse(msg_id, code, message, err.get("data"))
    if "result" in obj:
        return Result(msg_id, obj["result"])
    return ProtocolError("neither a method call nor a response")


# -- typed server notifications --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    session_id: str
    version: str
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ping:
    timestamp: float


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    """process.started / paused / resumed: the process's ids as the server saw them."""

    kind: str  # "started", "paused", "resumed"
    pid: int | None
    pgid: int | None


@dataclass(frozen=True, slots=True)
class ProcessOutput:
    stream: str  # "stdout" or "stderr"
    data: str
    chunk_index: int | None = None
    total_chunks: int | None = None

    @property
    def last_chunk(self) -> bool:
        """True unless this is a chunk of a longer line with more to come."""
        if self.chunk_index is None or self.total_chunks is None:
            return True
        return self.chunk_index >= self.total_chunks - 1


@dataclass(frozen=True, slots=True)
class ProcessEnded:
    """A terminal notification: completed (with exit code), canceled, or error."""

    kind: str  # "completed", "canceled", "error"
    exit_code: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OtherNotification:
    """Anything else a server may send (task.early_completion, hook.warning...)."""

    method: str
    params: dict[str, Any]


# -- batched output: a ccx-tui extension --------------------------------------------
#
# A client that finds BATCH among the `connected` capabilities may send `"batch": true`
# with `execute` or `session.attach`.  Its output then comes in pairs: a notification
#   {"jsonrpc":"2.0","method":"process.output_batch",
#    "params":{"offset":0,"runs":[["stdout",4090],["stderr",6]]}}
# immediately followed by one binary frame holding the server transcript's bytes
# [offset, offset + the sum of the runs) exactly as they are: no decoding, so invalid
# UTF-8 arrives intact, and no JSON escaping.  The runs give each byte's stream.

BATCH = "batch"  # the capability a ccx-tui server announces and the param a client sends
BATCH_METHOD = "process.output_batch"
BATCH_STREAMS = ("stdout", "stderr", "meta")  # meta: bytes the server's transcript added


@dataclass(frozen=True, slots=True)
class OutputBatch:
    """The header of a batch: its payload is the next (binary) frame."""

    offset: int  # server transcript offset of the payload's first byte
    runs: tuple[tuple[str, int], ...]  # (stream, length), covering the payload in order

    @property
    def size(self) -> int:
        return sum(length for _, length in self.runs)

    @property
    def end(self) -> int:
        """The offset just past this batch: where the next one starts."""
        return self.offset + self.size

    def split(self, payload: bytes, skip: int = 0) -> list[tuple[str, bytes]] | ProtocolError:
        """(stream, bytes) per run of `payload`, without its first `skip` bytes (which
        the caller already has).  The server's own `meta` bytes (a separator between
        runs of a restarted session) are left out: a client's transcript adds its own.
        """
        if len(payload) != self.size:
            return ProtocolError(f"batch payload of {len(payload)} bytes, expected {self.size}")
        pieces: list[tuple[str, bytes]] = []
        pos = 0
        for stream, length in self.runs:
            lo, hi = max(pos, skip), pos + length
            pos = hi
            if stream == "meta" or lo >= hi:
                continue
            # One run over the whole payload is the common case: no slice, no copy.
            pieces.append((stream, payload if hi - lo == len(payload) else payload[lo:hi]))
        return pieces


def encode_batch(offset: int, runs: Sequence[tuple[str, int]]) -> str:
    """The `process.output_batch` notification; the payload frame follows it."""
    return encode_notification(
        BATCH_METHOD, {"offset": offset, "runs": [[stream, n] for stream, n in runs]}
    )


# -- output a server lost: a ccx-tui extension -----------------------------------------
#
# When the server's transcript cannot be written (a full disk), its clients get the
# live output from the server's memory; a client that falls further behind than that
# memory keeps loses the bytes in between.  A batch client is told where and how many:
#   {"jsonrpc":"2.0","method":"process.output_lost",
#    "params":{"offset":N,"bytes":n,"reason":"the server's disk is full"}}
# (the next batch starts at N + n); a line client gets `lost_line(n, reason)` as a
# stderr `process.output` line, as upstream's own "[Stream timed out after Ns]".  The
# terminal notification then carries `write_error` and `bytes_lost`: what the server's
# transcript did not keep.  Decoded as an OtherNotification.

LOST_METHOD = "process.output_lost"


def lost_line(count: int, reason: str) -> str:
    """The line that tells the user `count` bytes of output never reached them."""
    return f"[ccx-tui: {count} bytes of output lost: {reason}]\n"


# -- a session's runs: a ccx-tui extension -------------------------------------------
#
# A client that finds RUNS among the capabilities may send `"runs": N` with
# `session.attach`: N is how many bytes of the session's `runs.jsonl` it has (where
# each run of a restarted session begins in the transcript, and how it ended; see
# transcripts/runs.py).  The server then sends the file's complete lines from byte N
# on, as they are written, each piece as a notification
#   {"jsonrpc":"2.0","method":"session.runs","params":{"offset":N,"bytes":n}}
# immediately followed by one binary frame of exactly those n bytes of the file (whole
# lines, the last ending with "\n").  Offsets in the lines are transcript offsets: a
# byte-exact copy of the transcript (batches, meta bytes included) keeps them true.

RUNS = "runs"  # the capability, and the param of `session.attach`
RUNS_METHOD = "session.runs"


@dataclass(frozen=True, slots=True)
class RunsPiece:
    """The header of a piece of `runs.jsonl`: its bytes are the next (binary) frame."""

    offset: int  # where in the server's file the piece starts
    size: int


def encode_runs(offset: int, size: int) -> str:
    """The `session.runs` notification; the piece's bytes follow it."""
    return encode_notification(RUNS_METHOD, {"offset": offset, "bytes": size})


def decode_runs(params: dict[str, Any]) -> RunsPiece | ProtocolError:
    """The header of a `session.runs` notification (decoded as an OtherNotification)."""
    offset, size = _opt_int(params.get("offset")), _opt_int(params.get("bytes"))
    if offset is None or size is None or offset < 0 or size < 0:
        return ProtocolError(f"{RUNS_METHOD} needs an offset and bytes >= 0")
    return RunsPiece(offset, size)


def _decode_batch(p: dict[str, Any]) -> OutputBatch | ProtocolError:
    offset, raw = _opt_int(p.get("offset")), p.get("runs")
    if offset is None or offset < 0 or not isinstance(raw, list):
        return ProtocolError(f"{BATCH_METHOD} needs an offset >= 0 and runs")
    runs: list[tuple[str, int]] = []
    for run in raw:
        if not (isinstance(run, list) and len(run) == 2 and run[0] in BATCH_STREAMS):
            return ProtocolError(f"bad run in {BATCH_METHOD}: {_excerpt(repr(run))}")
        length = _opt_int(run[1])
        if length is None or length < 0:
            return ProtocolError(f"bad run length in {BATCH_METHOD}: {_excerpt(repr(run))}")
        runs.append((run[0], length))
    return OutputBatch(offset, tuple(runs))


ServerEvent = (
    Connected | Ping | ProcessEvent | ProcessOutput | OutputBatch | ProcessEnded | OtherNotification
)


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def decode_notification(note: Notification) -> ServerEvent | ProtocolError:
    """Type a server notification; unknown methods become OtherNotification."""
    p = note.params
    method = note.method
    if method == "connected":
        sid = p.get("session_id")
        if not isinstance(sid, str):
            return ProtocolError("connected without a session_id")
        caps = p.get("capabilities") or []
        return Connected(
            sid,
            str(p.get("version", "")),
            tuple(str(c) for c in caps) if isinstance(caps, list) else (),
        )
    if method == "ping":
        ts = p.get("timestamp", 0.0)
        try:
            return Ping(float(ts) if isinstance(ts, (int, float)) else 0.0)
        except OverflowError:  # an integer too large for a float
            return Ping(0.0)
    if method in ("process.started", "process.paused", "process.resumed"):
        return ProcessEvent(
            method.split(".", 1)[1], _opt_int(p.get("pid")), _opt_int(p.get("pgid"))
        )
    if method == "process.output":
        data = p.get("data")
        stream = p.get("type", "stdout")
        if not isinstance(data, str):
            return ProtocolError("process.output without string data")
        if stream not in ("stdout", "stderr"):
            stream = "stdout"
        index, total = _opt_int(p.get("chunk_index")), _opt_int(p.get("total_chunks"))
        return ProcessOutput(stream, data, index, total)
    if method == "process.completed":
        return ProcessEnded("completed", _opt_int(p.get("exit_code")), None, dict(p))
    if method == "process.canceled":
        return ProcessEnded("canceled", _opt_int(p.get("exit_code")), None, dict(p))
    if method == "process.error":
        return ProcessEnded("error", None, str(p.get("error", "unknown error")), dict(p))
    if method == BATCH_METHOD:
        return _decode_batch(p)
    return OtherNotification(method, p)


# -- encoding ------------------------------------------------------------------------


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def encode_request(method: str, params: dict[str, Any], msg_id: int | str) -> str:
    return _dump({"jsonrpc": JSONRPC, "method": method, "params": params, "id": msg_id})


def encode_notification(method: str, params: dict[str, Any]) -> str:
    return _dump({"jsonrpc": JSONRPC, "method": method, "params": params})


def encode_result(msg_id: Id, result: Any) -> str:
    obj: dict[str, Any] = {"jsonrpc": JSONRPC, "result": result}
    if msg_id is not None:
        obj["id"] = msg_id
    return _dump(obj)


def encode_error(msg_id: Id, code: int, message: str, data: Any = None) -> str:
    obj: dict[str, Any] = {
        "jsonrpc": JSONRPC,
        "error": {"code": code, "message": message, "data": data},
    }
    if msg_id is not None:
        obj["id"] = msg_id
    return _dump(obj)


def process_params(
    status: str,
    pid: int | None,
    pgid: int | None,
    exit_code: int | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    return {"status": status, "pid": pid, "pgid": pgid, "exit_code": exit_code, "error": error}


def encode_output(stream: str, line: str) -> list[str]:
    """`process.output` frames for one line, chunked exactly as upstream does.

    A line longer than CHUNK_CHARS characters is split into consecutive frames with
    `chunk_index`/`total_chunks`; every chunk but the last has `truncated: true`.  An
    ordinary line's `truncated` is `data.endswith("...\\n")` (an upstream quirk kept
    for wire compatibility).
    """
    if len(line) <= CHUNK_CHARS:
        return [
            encode_notification(
                "process.output",
                {
                    "type": stream,
                    "data": line,
                    "truncated": line.endswith("...\n"),
                    "chunk_index": None,
                    "total_chunks": None,
                },
            )
        ]
    total = (len(line) + CHUNK_CHARS - 1) // CHUNK_CHARS
    return [
        encode_notification(
            "process.output",
            {
                "type": stream,
                "data": line[i * CHUNK_CHARS : (i + 1) * CHUNK_CHARS],
                "truncated": i < total - 1,
                "chunk_index": i,
                "total_chunks": total,
            },
        )
        for i in range(total)
    ]


def encode_completed(
    pid: int | None, pgid: int | None, exit_code: int, execution_time: float, **extra: Any
) -> str:
    """`process.completed`; `extra`: extension params (see LOST_METHOD)."""
    params = process_params("completed" if exit_code == 0 else "failed", pid, pgid, exit_code)
    params.update(
        execution_time=execution_time,
        early_completion_detected=False,
        early_completion_time=None,
        time_saved=0,
        completion_marker=None,
        **extra,
    )
    return encode_notification("process.completed", params)


class OutputAssembler:
    """Reassembles chunked `process.output` lines per stream.

    `feed()` returns the text to append for that stream now: chunks pass straight
    through (so memory stays bounded however long the line), and the caller merges
    streams at line boundaries (the engine's LineMux does).  It also tracks
    whether a stream is in the middle of a chunked line, so a frame that breaks the
    chunk sequence is reported rather than silently spliced.
    """

    def __init__(self) -> None:
        self._expect: dict[str, tuple[int, int]] = {}
        self.anomalies = 0

    def feed(self, out: ProcessOutput) -> str:
        if out.chunk_index is None or out.total_chunks is None:
            if out.stream in self._expect:
                self.anomalies += 1
                del self._expect[out.stream]
            return out.data
        expected = self._expect.get(out.stream, (0, out.total_chunks))
        if (out.chunk_index, out.total_chunks) != expected:
            self.anomalies += 1
        if out.last_chunk:
            self._expect.pop(out.stream, None)
        else:
            self._expect[out.stream] = (out.chunk_index + 1, out.total_chunks)
        return out.data

    def in_chunked_line(self, stream: str) -> bool:
        return stream in self._expect
