"""The sans-I/O codec of the cc_executor wire format, tested without sockets.

The literal frames below are copied from shared/PROTOCOL.md, which records what a real
server sends.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccx_tui.engine.wire import protocol
from ccx_tui.engine.wire.protocol import (
    BATCH_METHOD,
    CHUNK_CHARS,
    MAX_FRAME_CHARS,
    Connected,
    ErrorResponse,
    Notification,
    OtherNotification,
    OutputAssembler,
    OutputBatch,
    Ping,
    ProcessEnded,
    ProcessEvent,
    ProcessOutput,
    ProtocolError,
    Request,
    Result,
    decode_notification,
    parse,
)

MESSAGE_TYPES = (Request, Notification, Result, ErrorResponse, ProtocolError)
EVENT_TYPES = (
    Connected,
    Ping,
    ProcessEvent,
    ProcessOutput,
    OutputBatch,
    ProcessEnded,
    OtherNotification,
    ProtocolError,
)


def decode(frame: str | bytes) -> Any:
    """parse() then, for a notification, decode_notification()."""
    message = parse(frame)
    assert isinstance(message, Notification), message
    return decode_notification(message)


# -- the literal examples of PROTOCOL.md -----------------------------------------------

COMPLETED = (
    '{"jsonrpc":"2.0","method":"process.completed","params":{"status":"failed","pid":11016,'
    '"pgid":11016,"exit_code":3,"error":null,"execution_time":0.0014,'
    '"early_completion_detected":false,"early_completion_time":null,"time_saved":0,'
    '"completion_marker":null}}'
)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            '{"jsonrpc":"2.0","method":"connected","params":{"session_id":'
            '"7ed3fdbe-e3d0-4121-85dd-61031d0ac2db","version":"1.0.0",'
            '"capabilities":["execute","control","stream"]}}',
            Connected(
                "7ed3fdbe-e3d0-4121-85dd-61031d0ac2db", "1.0.0", ("execute", "control", "stream")
            ),
        ),
        (
            '{"jsonrpc":"2.0","method":"ping","params":{"timestamp":1795469246.36}}',
            Ping(1795469246.36),
        ),
        (
            '{"jsonrpc":"2.0","method":"process.started","params":{"status":"started",'
            '"pid":9551,"pgid":9551,"exit_code":null,"error":null}}',
            ProcessEvent("started", 9551, 9551),
        ),
        (
            '{"jsonrpc":"2.0","method":"process.output","params":{"type":"stdout",'
            '"data":"hello\\n","truncated":false,"chunk_index":null,"total_chunks":null}}',
            ProcessOutput("stdout", "hello\n", None, None),
        ),
        (
            '{"jsonrpc":"2.0","method":"process.paused","params":{"status":"paused",'
            '"pid":10193,"pgid":10193,"exit_code":null,"error":null}}',
            ProcessEvent("paused", 10193, 10193),
        ),
        (
            '{"jsonrpc":"2.0","method":"process.resumed","params":{"status":"resumed",'
            '"pid":10193,"pgid":10193,"exit_code":null,"error":null}}',
            ProcessEvent("resumed", 10193, 10193),
        ),
    ],
)
def test_literal_notifications_decode(frame: str, expected: Any) -> None:
    assert decode(frame) == expected
    assert decode(frame.encode()) == expected  # bytes frames too


def test_literal_completed() -> None:
    ended = decode(COMPLETED)
    assert isinstance(ended, ProcessEnded)
    assert (ended.kind, ended.exit_code, ended.error) == ("completed", 3, None)
    assert ended.extra["status"] == "failed"
    assert ended.extra["execution_time"] == 0.0014
    assert ended.extra["early_completion_detected"] is False


def test_literal_canceled_and_error() -> None:
    canceled = decode(
        '{"jsonrpc":"2.0","method":"process.canceled","params":{"status":"canceled",'
        '"pid":10193,"pgid":10193,"exit_code":null,"error":null}}'
    )
    assert isinstance(canceled, ProcessEnded)
    assert (canceled.kind, canceled.exit_code, canceled.error) == ("canceled", None, None)
    assert canceled.extra["pid"] == 10193
    error = decode(
        '{"jsonrpc":"2.0","method":"process.error","params":{"error":"<exception text>"}}'
    )
    assert error == ProcessEnded("error", None, "<exception text>", {"error": "<exception text>"})


@pytest.mark.parametrize(
    "method",
    [
        "task.early_completion",
        "error.token_limit_exceeded",
        "error.rate_limit_exceeded",
        "hook.warning",
        "command.validation_warning",
    ],
)
def test_other_notifications_are_accepted(method: str) -> None:
    params = {"session_id": "s", "output_line": "Done!" + "x" * 100_000}
    event = decode(protocol.encode_notification(method, params))
    assert event == OtherNotification(method, params)


def test_literal_request_result_and_errors() -> None:
    assert parse(
        '{"jsonrpc":"2.0","method":"execute","params":{"command":"echo hi"},"id":1}'
    ) == Request("execute", {"command": "echo hi"}, 1)
    assert parse(
        '{"jsonrpc":"2.0","result":{"status":"started","pid":9551,"pgid":null},"id":1}'
    ) == Result(1, {"status": "started", "pid": 9551, "pgid": None})
    assert parse('{"jsonrpc":"2.0","result":{"status":"canceled"},"id":"c"}') == Result(
        "c", {"status": "canceled"}
    )
    assert parse(
        '{"jsonrpc":"2.0","error":{"code":-32602,"message":"A process is already running",'
        '"data":null},"id":5}'
    ) == ErrorResponse(5, -32602, "A process is already running", None)
    limit = parse(
        '{"jsonrpc":"2.0","error":{"code":-32003,"message":"Session limit exceeded","data":null}}'
    )
    assert limit == ErrorResponse(None, -32003, "Session limit exceeded", None)
    assert isinstance(limit, ErrorResponse) and limit.session_limit
    assert parse('{"jsonrpc":"2.0","method":"pong","params":{}}') == Notification("pong", {})


def test_error_without_id_and_without_message() -> None:
    assert parse('{"jsonrpc":"2.0","error":{"code":-32603}}') == ErrorResponse(
        None, -32603, "", None
    )
    assert parse('{"error":{"code":-32603,"message":"x","data":{"k":[1]}},"id":null}') == (
        ErrorResponse(None, -32603, "x", {"k": [1]})
    )
    # A message that is not a string is kept as text rather than refused.
    assert parse('{"error":{"code":1,"message":["a"]}}') == ErrorResponse(None, 1, "['a']")


@pytest.mark.parametrize(
    ("code", "message", "limit"),
    [
        (-32003, "Session limit exceeded", True),  # what servers send
        (-32001, "Session limit exceeded", True),  # what upstream's config module documents
        (-32003, "session limit exceeded (100)", True),
        (-32003, "", True),
        (-32003, "Process not found", False),  # the documented meaning of -32003
        (-32001, "Command not allowed", False),
        (-32001, "Empty command not allowed", False),
        (-32002, "No process is running", False),
        (-32603, "Process group 5 not found", False),
        (-32602, "A process is already running", False),
    ],
)
def test_session_limit_for_both_code_mappings(code: int, message: str, limit: bool) -> None:
    assert ErrorResponse(None, code, message).session_limit is limit


# -- encoders round-trip -----------------------------------------------------------------


@pytest.mark.parametrize("msg_id", [0, 1, -7, 2**53, "abc", ""])
def test_request_round_trip(msg_id: int | str) -> None:
    params = {"command": "echo 'é' \"q\"\n", "timeout": 0, "nested": {"a": [1, None, True]}}
    frame = protocol.encode_request("execute", params, msg_id)
    assert json.loads(frame)["jsonrpc"] == "2.0"
    assert parse(frame) == Request("execute", params, msg_id)


def test_notification_round_trip() -> None:
    frame = protocol.encode_notification("pong", {})
    assert json.loads(frame) == {"jsonrpc": "2.0", "method": "pong", "params": {}}
    assert parse(frame) == Notification("pong", {})
    assert "é" in protocol.encode_notification("x", {"t": "é"})  # not \\u-escaped


@pytest.mark.parametrize("msg_id", [3, "x", None])
def test_result_and_error_round_trip(msg_id: int | str | None) -> None:
    frame = protocol.encode_result(msg_id, {"status": "paused"})
    assert ("id" in json.loads(frame)) is (msg_id is not None)  # null id: no id at all
    assert parse(frame) == Result(msg_id, {"status": "paused"})
    frame = protocol.encode_error(msg_id, protocol.NO_PROCESS, "No process is running")
    obj = json.loads(frame)
    assert obj["error"] == {"code": -32002, "message": "No process is running", "data": None}
    assert ("id" in obj) is (msg_id is not None)
    assert parse(frame) == ErrorResponse(msg_id, -32002, "No process is running")
    frame = protocol.encode_error(msg_id, 7, "m", {"detail": [1]})
    assert parse(frame) == ErrorResponse(msg_id, 7, "m", {"detail": [1]})


def test_error_code_constants() -> None:
    assert (protocol.NOT_ALLOWED, protocol.NO_PROCESS, protocol.SESSION_LIMIT) == (
        -32001,
        -32002,
        -32003,
    )
    assert (protocol.ALREADY_RUNNING, protocol.INTERNAL, protocol.METHOD_NOT_FOUND) == (
        -32602,
        -32603,
        -32601,
    )


def test_process_params_and_completed() -> None:
    assert protocol.process_params("started", 1, None) == {
        "status": "started",
        "pid": 1,
        "pgid": None,
        "exit_code": None,
        "error": None,
    }
    for exit_code, status in [(0, "completed"), (3, "failed"), (-9, "failed"), (-15, "failed")]:
        frame = protocol.encode_completed(10, 10, exit_code, 0.5)
        params = json.loads(frame)["params"]
        assert set(params) == set(json.loads(COMPLETED)["params"])
        assert (params["status"], params["exit_code"]) == (status, exit_code)
        ended = decode(frame)
        assert isinstance(ended, ProcessEnded)
        assert (ended.kind, ended.exit_code) == ("completed", exit_code)


# -- the chunking rule ------------------------------------------------------------------


def output_params(frames: list[str]) -> list[dict[str, Any]]:
    params = []
    for frame in frames:
        obj = json.loads(frame)
        assert obj["method"] == "process.output"
        params.append(obj["params"])
    return params


def test_150000_character_line_is_three_chunks() -> None:
    line = "y" * 150_000 + "\n"
    params = output_params(protocol.encode_output("stdout", line))
    assert [(p["chunk_index"], p["total_chunks"]) for p in params] == [(0, 3), (1, 3), (2, 3)]
    assert [len(p["data"]) for p in params] == [65_536, 65_536, 18_929]
    assert [p["truncated"] for p in params] == [True, True, False]
    assert params[2]["data"].endswith("y\n")
    assert {p["type"] for p in params} == {"stdout"}
    assert "".join(p["data"] for p in params) == line


def test_loading_line_is_truncated_without_chunk_index() -> None:
    """The upstream quirk: an ordinary line ending in "...\\n" says truncated: true."""
    [params] = output_params(protocol.encode_output("stderr", "Loading...\n"))
    assert params == {
        "type": "stderr",
        "data": "Loading...\n",
        "truncated": True,
        "chunk_index": None,
        "total_chunks": None,
    }
    event = decode(protocol.encode_output("stderr", "Loading...\n")[0])
    assert event == ProcessOutput("stderr", "Loading...\n", None, None)
    assert event.last_chunk
    [params] = output_params(protocol.encode_output("stdout", "Loading..."))
    assert params["truncated"] is False  # no newline: the quirk needs "...\n"


def test_line_of_exactly_chunk_size_is_not_chunked() -> None:
    assert CHUNK_CHARS == 65_536
    [params] = output_params(protocol.encode_output("stdout", "z" * 65_535 + "\n"))
    assert (params["chunk_index"], params["total_chunks"], params["truncated"]) == (
        None,
        None,
        False,
    )
    params_list = output_params(protocol.encode_output("stdout", "z" * 65_536 + "\n"))
    assert [(p["chunk_index"], len(p["data"])) for p in params_list] == [(0, 65_536), (1, 1)]


def test_chunks_count_characters_not_bytes() -> None:
    line = "é" * (CHUNK_CHARS + 1)
    params = output_params(protocol.encode_output("stdout", line))
    assert [len(p["data"]) for p in params] == [CHUNK_CHARS, 1]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=3 * CHUNK_CHARS + 2),
    st.sampled_from(["", "\n", "...\n"]),
    st.sampled_from(["stdout", "stderr"]),
)
def test_encode_output_reassembles(length: int, end: str, stream: str) -> None:
    line = "a" * length + end
    frames = protocol.encode_output(stream, line)
    events = [decode(frame) for frame in frames]
    assert all(isinstance(e, ProcessOutput) and e.stream == stream for e in events)
    assert "".join(e.data for e in events) == line
    assembler = OutputAssembler()
    assert "".join(assembler.feed(e) for e in events) == line
    assert assembler.anomalies == 0 and not assembler.in_chunked_line(stream)
    if len(line) <= CHUNK_CHARS:
        assert len(frames) == 1 and events[0].chunk_index is None
    else:
        assert all(len(e.data) == CHUNK_CHARS for e in events[:-1])
        assert [e.last_chunk for e in events] == [False] * (len(events) - 1) + [True]


# -- reassembly per stream ------------------------------------------------------------


def out(stream: str, data: str, index: int | None = None, total: int | None = None) -> Any:
    return ProcessOutput(stream, data, index, total)


def test_assembler_stderr_between_stdout_chunks() -> None:
    assembler = OutputAssembler()
    text = {"stdout": "", "stderr": ""}
    for event in [
        out("stdout", "A" * 3, 0, 3),
        out("stderr", "warn\n"),
        out("stdout", "B" * 3, 1, 3),
        out("stderr", "E1", 0, 2),  # stderr's own chunked line, interleaved
        out("stdout", "C\n", 2, 3),
        out("stderr", "E2\n", 1, 2),
        out("stdout", "next\n"),
    ]:
        text[event.stream] += assembler.feed(event)
        if event.stream == "stdout" and event.chunk_index in (0, 1):
            assert assembler.in_chunked_line("stdout")
    assert text == {"stdout": "AAABBBC\nnext\n", "stderr": "warn\nE1E2\n"}
    assert assembler.anomalies == 0
    assert not assembler.in_chunked_line("stdout") and not assembler.in_chunked_line("stderr")


@pytest.mark.parametrize(
    ("events", "anomalies", "pending"),
    [
        ([out("stdout", "a", 0, 3), out("stdout", "c\n", 2, 3)], 1, False),  # a chunk lost
        ([out("stdout", "a", 0, 3), out("stdout", "plain\n")], 1, False),  # line cut short
        ([out("stdout", "b", 1, 3)], 1, True),  # starts mid-line
        ([out("stdout", "a", 0, 3), out("stdout", "a", 0, 3)], 1, True),  # restarted
        ([out("stdout", "a", 0, 3), out("stdout", "b", 1, 4)], 1, True),  # total changed
        ([out("stdout", "a", 0, 2), out("stdout", "b\n", 1, 2)], 0, False),  # fine
        ([out("stdout", "x", 5, 2)], 1, False),  # index past the end
    ],
)
def test_assembler_counts_broken_sequences(
    events: list[ProcessOutput], anomalies: int, pending: bool
) -> None:
    assembler = OutputAssembler()
    assert "".join(assembler.feed(e) for e in events) == "".join(e.data for e in events)
    assert assembler.anomalies == anomalies
    assert assembler.in_chunked_line("stdout") is pending
    assert not assembler.in_chunked_line("stderr")


# -- malformed input ----------------------------------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize(
    "frame",
    [
        "",
        " ",
        "{",
        "{'a': 1}",
        '{"jsonrpc":"2.0","method":"ping"',
        "nul",
        "[]",
        '[{"jsonrpc":"2.0","method":"execute","params":{"command":"x"},"id":1}]',
        "1",
        "-1.5",
        '"a string"',
        "null",
        "true",
        "{}",
        '{"jsonrpc":"2.0"}',
        '{"jsonrpc":"2.0","id":1}',
        '{"method":1}',
        '{"method":""}',
        '{"method":null,"id":1}',
        '{"method":["execute"]}',
        '{"method":"execute","params":[1]}',
        '{"method":"execute","params":"command"}',
        '{"method":"execute","params":3}',
        '{"method":"execute","params":{},"id":true}',
        '{"method":"execute","params":{},"id":false}',
        '{"method":"execute","params":{},"id":1.5}',
        '{"method":"execute","params":{},"id":[]}',
        '{"method":"execute","params":{},"id":{}}',
        '{"result":1,"id":true}',
        '{"error":"boom","id":1}',
        '{"error":null,"id":1}',
        '{"error":[],"id":1}',
        '{"error":{"message":"no code"},"id":1}',
        '{"error":{"code":"-32603","message":"m"}}',
        '{"error":{"code":true,"message":"m"}}',
        '{"error":{"code":-32603.5,"message":"m"}}',
        '{"error":{"code":null,"message":"m"}}',
        '{"id":' + "9" * 5000 + ',"result":1}',  # over Python's int-digits limit
        "[" * DEEP + "]" * DEEP,
        '{"a":' * DEEP + "1" + "}" * DEEP,
        '{"jsonrpc":"2.0","method":"x","params":{"p":' + "[" * DEEP + "]" * DEEP + "}}",
        '{"result":' + "[" * DEEP,
    ],
)
def test_malformed_frames_are_protocol_errors(frame: str) -> None:
    result = parse(frame)
    assert isinstance(result, ProtocolError), result
    assert result.reason
    assert len(result.reason) < 200  # safe to log: the frame is only excerpted


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff",
        b'{"jsonrpc":"2.0","method":"ping","params":{"t":"\xc3"}}',
        b'{"a":"\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
        b"\xfe\xff\x00{\x00}",
        "é".encode("latin-1"),
    ],
)
def test_invalid_utf8_is_a_protocol_error(frame: bytes) -> None:
    assert isinstance(parse(frame), ProtocolError)


def test_frames_over_the_size_limit_are_refused_unparsed() -> None:
    head, tail = '{"jsonrpc":"2.0","method":"n","params":{"p":"', '"}}'
    ok = head + "x" * (MAX_FRAME_CHARS - len(head) - len(tail)) + tail
    assert len(ok) == MAX_FRAME_CHARS
    assert isinstance(parse(ok), Notification)
    big = head + "x" * (MAX_FRAME_CHARS - len(head) - len(tail) + 1) + tail
    for frame in (big, big.encode()):
        result = parse(frame)
        assert isinstance(result, ProtocolError) and "too large" in result.reason


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("connected", {}),
        ("connected", {"session_id": 7}),
        ("process.output", {"type": "stdout"}),
        ("process.output", {"type": "stdout", "data": None}),
        ("process.output", {"type": "stdout", "data": ["x"]}),
    ],
)
def test_malformed_notifications_are_protocol_errors(method: str, params: dict[str, Any]) -> None:
    assert isinstance(decode_notification(Notification(method, params)), ProtocolError)


def test_lenient_notification_fields() -> None:
    """Odd field values degrade to safe defaults instead of failing the whole frame."""
    connected = decode_notification(
        Notification("connected", {"session_id": "s", "capabilities": "all"})
    )
    assert connected == Connected("s", "", ())
    assert decode_notification(Notification("ping", {})) == Ping(0.0)
    assert decode_notification(Notification("ping", {"timestamp": "now"})) == Ping(0.0)
    started = decode_notification(Notification("process.started", {"pid": True, "pgid": "9"}))
    assert started == ProcessEvent("started", None, None)
    output = decode_notification(
        Notification("process.output", {"type": "tty", "data": "d", "chunk_index": "0"})
    )
    assert output == ProcessOutput("stdout", "d", None, None)
    ended = decode_notification(Notification("process.completed", {"exit_code": "3"}))
    assert isinstance(ended, ProcessEnded) and ended.exit_code is None
    error = decode_notification(Notification("process.error", {}))
    assert isinstance(error, ProcessEnded) and error.error == "unknown error"


def test_ping_with_a_huge_integer_timestamp() -> None:
    """Regression: float() of a >308-digit integer raised OverflowError out of
    decode_notification; now the ping decodes with timestamp 0.0."""
    frame = '{"jsonrpc":"2.0","method":"ping","params":{"timestamp":' + "9" * 400 + "}}"
    assert decode(frame) == Ping(0.0)
    assert decode('{"method":"ping","params":{"timestamp":1e999}}') == Ping(float("inf"))


# -- batched output (a ccx-tui extension) -----------------------------------------------


def batch_of(header: str) -> OutputBatch:
    batch = decode(header)
    assert isinstance(batch, OutputBatch), batch
    return batch


def test_batch_header_literal_and_round_trip() -> None:
    header = protocol.encode_batch(4096, [("stdout", 10), ("stderr", 5), ("stdout", 1)])
    assert json.loads(header) == {
        "jsonrpc": "2.0",
        "method": "process.output_batch",
        "params": {"offset": 4096, "runs": [["stdout", 10], ["stderr", 5], ["stdout", 1]]},
    }
    batch = batch_of(header)
    assert batch == OutputBatch(4096, (("stdout", 10), ("stderr", 5), ("stdout", 1)))
    assert (batch.size, batch.end) == (16, 4112)


def test_batch_split_keeps_streams_and_invalid_utf8_exact() -> None:
    """The payload is raw transcript bytes: invalid UTF-8, NULs and ANSI escapes come
    through unchanged, cut into the runs' streams."""
    payload = b"a\xffb\n" + b"\x1b[31merr\xc3\n" + b"\x00z\n"
    batch = batch_of(protocol.encode_batch(0, [("stdout", 4), ("stderr", 10), ("stdout", 3)]))
    assert batch.split(payload) == [
        ("stdout", b"a\xffb\n"),
        ("stderr", b"\x1b[31merr\xc3\n"),
        ("stdout", b"\x00z\n"),
    ]


def test_batch_split_one_run_is_the_payload_itself() -> None:
    payload = b"x\n" * 1000
    pieces = batch_of(protocol.encode_batch(7, [("stdout", len(payload))])).split(payload)
    assert not isinstance(pieces, ProtocolError)
    assert pieces[0][1] is payload  # no copy of a large payload


def test_batch_split_skips_meta_and_bytes_already_had() -> None:
    """`meta` bytes are the server's own; `skip` drops a replay's overlap exactly."""
    batch = OutputBatch(100, (("stdout", 3), ("meta", 1), ("stderr", 4)))
    payload = b"ab\n\ncd\ne"
    assert batch.split(payload) == [("stdout", b"ab\n"), ("stderr", b"cd\ne")]
    assert batch.split(payload, skip=2) == [("stdout", b"\n"), ("stderr", b"cd\ne")]
    assert batch.split(payload, skip=5) == [("stderr", b"d\ne")]
    assert batch.split(payload, skip=99) == []


@pytest.mark.parametrize("payload", [b"", b"short", b"much too long payload"])
def test_batch_payload_of_the_wrong_size_is_an_error(payload: bytes) -> None:
    batch = OutputBatch(0, (("stdout", 6), ("stderr", 2)))
    assert isinstance(batch.split(payload), ProtocolError)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"offset": 0},
        {"runs": []},
        {"offset": -1, "runs": []},
        {"offset": 1.5, "runs": []},
        {"offset": True, "runs": []},
        {"offset": "0", "runs": []},
        {"offset": 0, "runs": {}},
        {"offset": 0, "runs": [["stdout"]]},
        {"offset": 0, "runs": [["stdout", 1, 2]]},
        {"offset": 0, "runs": [["stdin", 1]]},
        {"offset": 0, "runs": [[1, "stdout"]]},
        {"offset": 0, "runs": [["stdout", -1]]},
        {"offset": 0, "runs": [["stdout", 1.0]]},
        {"offset": 0, "runs": [["stdout", False]]},
        {"offset": 0, "runs": [["stdout", None]]},
        {"offset": 0, "runs": [[["stdout"], 1]]},
        {"offset": 0, "runs": [{"stdout": 1}]},
        {"offset": 0, "runs": ["stdout"]},
    ],
)
def test_malformed_batch_headers_are_protocol_errors(params: dict[str, Any]) -> None:
    result = decode_notification(Notification(BATCH_METHOD, params))
    assert isinstance(result, ProtocolError), result
    assert len(result.reason) < 200


def test_an_empty_batch_is_valid() -> None:
    batch = decode_notification(Notification(BATCH_METHOD, {"offset": 5, "runs": []}))
    assert batch == OutputBatch(5, ())
    assert isinstance(batch, OutputBatch) and batch.split(b"") == []


# -- fuzzing ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**320)  # too big for a float
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
KEYS = ("jsonrpc", "method", "params", "id", "result", "error", "code", "message", "data")
METHODS = (
    "connected",
    "ping",
    "pong",
    "process.started",
    "process.paused",
    "process.resumed",
    "process.output",
    "process.completed",
    "process.canceled",
    "process.error",
    "process.output_batch",
    "task.early_completion",
    "execute",
)
PARAM_KEYS = (
    "session_id",
    "version",
    "capabilities",
    "timestamp",
    "pid",
    "pgid",
    "type",
    "data",
    "truncated",
    "chunk_index",
    "total_chunks",
    "exit_code",
    "error",
    "status",
    "offset",
    "runs",
)
params_like = st.dictionaries(st.sampled_from(PARAM_KEYS) | st.text(max_size=5), json_values)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.just("2.0") | json_values,
        "method": st.sampled_from(METHODS) | json_values,
        "params": params_like | json_values,
        "id": st.integers() | st.text() | json_values,
        "result": json_values,
        "error": st.fixed_dictionaries(
            {}, optional={"code": st.integers() | json_values, "message": json_values}
        )
        | json_values,
    },
)


def check_frame(frame: str | bytes) -> None:
    """parse() and decode_notification() never raise and return a declared type."""
    message = parse(frame)
    assert isinstance(message, MESSAGE_TYPES)
    if isinstance(message, Notification):
        event = decode_notification(message)
        assert isinstance(event, EVENT_TYPES)
        if isinstance(event, ProcessOutput):
            OutputAssembler().feed(event)
            assert isinstance(event.last_chunk, bool)
    if isinstance(message, ErrorResponse):
        assert isinstance(message.session_limit, bool)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_text(text: str) -> None:
    check_frame(text)


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    check_frame(data)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_arbitrary_json_values(value: Any) -> None:
    check_frame(json.dumps(value))


@settings(max_examples=150, deadline=None)
@given(message_like)
def test_fuzz_message_shaped_objects(obj: dict[str, Any]) -> None:
    check_frame(json.dumps(obj))
    check_frame(json.dumps(obj).encode())


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(METHODS) | st.text(min_size=1), params_like)
def test_fuzz_decode_notification(method: str, params: dict[str, Any]) -> None:
    assert isinstance(decode_notification(Notification(method, params)), EVENT_TYPES)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            ProcessOutput,
            st.sampled_from(["stdout", "stderr"]),
            st.text(max_size=3),
            st.none() | st.integers(-2, 5),
            st.none() | st.integers(-2, 5),
        ),
        max_size=20,
    )
)
def test_fuzz_assembler_passes_all_text_through(events: list[ProcessOutput]) -> None:
    assembler = OutputAssembler()
    assert "".join(assembler.feed(e) for e in events) == "".join(e.data for e in events)
    assert 0 <= assembler.anomalies <= len(events)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["execute", "control", "hook_status", "x.y"]),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    st.integers() | st.text(),
)
def test_fuzz_request_round_trip(method: str, params: dict[str, Any], msg_id: int | str) -> None:
    frame = protocol.encode_request(method, params, msg_id)
    parsed = parse(frame)
    assert isinstance(parsed, Request)
    assert (parsed.method, parsed.id) == (method, msg_id)
    assert json.dumps(parsed.params, sort_keys=True) == json.dumps(params, sort_keys=True)


runs_strategy = st.lists(
    st.tuples(st.sampled_from(["stdout", "stderr", "meta"]), st.integers(0, 20)), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(runs_strategy, st.integers(0, 2**63), st.binary(max_size=200), st.integers(0, 200))
def test_fuzz_batch_split(
    runs: list[tuple[str, int]], offset: int, noise: bytes, skip: int
) -> None:
    """A batch's payload splits into exactly its non-meta bytes from `skip` on; a
    payload of any other size is an error, never an exception."""
    header = protocol.encode_batch(offset, runs)
    batch = decode(header)
    assert batch == OutputBatch(offset, tuple(runs))
    payload = (noise * 200)[: batch.size] if noise else bytes(batch.size)
    pieces = batch.split(payload, skip)
    assert not isinstance(pieces, ProtocolError)
    kept, pos = b"", 0
    for stream, length in runs:
        if stream != "meta":
            kept += payload[max(pos, skip) : pos + length]
        pos += length
    assert b"".join(data for _, data in pieces) == kept
    assert all(data and stream in ("stdout", "stderr") for stream, data in pieces)
    assert isinstance(batch.split(payload + b"x"), ProtocolError)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "offset": st.integers() | json_values,
            "runs": st.lists(
                st.lists(st.sampled_from(["stdout", "stderr", "meta", "x"]) | json_values)
                | json_values,
                max_size=4,
            )
            | json_values,
        },
    ),
    st.binary(max_size=50),
)
def test_fuzz_batch_header_decoding(params: dict[str, Any], payload: bytes) -> None:
    """Malformed batch headers and payloads never raise out of the decoder."""
    for frame in (protocol.encode_notification(BATCH_METHOD, params), json.dumps(params)):
        message = parse(frame)
        if isinstance(message, Notification):
            batch = decode_notification(message)
            assert isinstance(batch, EVENT_TYPES)
            if isinstance(batch, OutputBatch):
                assert batch.offset >= 0 and all(n >= 0 for _, n in batch.runs)
                assert isinstance(batch.split(payload), (list, ProtocolError))
