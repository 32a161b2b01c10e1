"""RunProtocol, the sans-I/O client of one remote command, driven frame by frame and
clock tick by clock tick: no sockets (the loop around it is tested against real
servers in test_remote.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.run_protocol import (
    EXECUTE_DEADLINE,
    Reattach,
    RemoteError,
    RemoteOutcome,
    RunProtocol,
    SessionLimitReached,
)

CCX_CAPS = ["attach", "batch", "cwd", "env", "tty"]


def connected(caps: list[str]) -> str:
    return p.encode_notification("connected", {"session_id": "s", "capabilities": caps})


def sent(frame: str) -> dict[str, Any]:
    data = json.loads(frame)
    assert isinstance(data, dict)
    return data


class Run:
    """A protocol with a sink that records what it is given."""

    def __init__(self, spec: SessionSpec | None = None, **kwargs: Any) -> None:
        self.out: list[tuple[str, bytes]] = []
        self.proto = RunProtocol(
            "ws://x/ws/mcp",
            lambda stream, data: self.out.append((stream, data)),
            spec=spec,
            kill_grace=2.0,
            **kwargs,
        )

    def start(self, caps: list[str], now: float = 0.0) -> dict[str, Any]:
        """Connect and answer the execute/attach request; returns that request."""
        step = self.proto.receive(connected(caps), now)
        (frame,) = step.send
        request = sent(frame)
        self.proto.receive(p.encode_result(request["id"], {"session": "srv-1", "pid": 42}), now)
        return request


def test_execute_on_a_ccx_tui_server_asks_for_batches_and_a_detachable_session() -> None:
    run = Run(SessionSpec("make", cwd="/srv", env={"A": "1"}, tty=False))
    request = run.start(CCX_CAPS)
    assert request["method"] == "execute"
    params = request["params"]
    assert params == {
        "command": "make",
        "timeout": 0,
        "cwd": "/srv",
        "env": {"A": "1"},
        "detachable": True,
        p.BATCH: True,
    }
    proto = run.proto
    assert proto.started and proto.pid == 42 and proto.session == "srv-1" and proto.batched
    header = p.encode_batch(0, [("stdout", 4), ("stderr", 3)])
    assert proto.receive(header, 1.0).send == []
    proto.receive(b"out\nerr", 1.0)
    proto.idle()
    assert run.out == [("stdout", b"out\n"), ("stderr", b"err")]
    ended = proto.receive(p.encode_completed(42, 42, 3, 1.0), 2.0)
    assert ended.outcome == RemoteOutcome("exited", exit_code=3, pid=42)


def test_upstream_gets_cwd_and_env_in_the_command_and_line_frames() -> None:
    """A server without the cwd/env params gets them built into the command line; its
    line frames are held until nothing more is buffered, then handed over per stream."""
    run = Run(SessionSpec("make", cwd="/srv", env={"A": "1 2"}, tty=False))
    request = run.start([])
    assert request["params"] == {
        "command": "cd /srv || exit 126; export A='1 2'; make",
        "timeout": 0,
    }
    proto = run.proto
    for frame in p.encode_output("stdout", "a\n") + p.encode_output("stdout", "b\n"):
        proto.receive(frame, 1.0)
    assert run.out == []
    proto.idle()
    assert run.out == [("stdout", b"a\nb\n")]
    pong = proto.receive(p.encode_notification("ping", {"timestamp": 1}), 1.0).send
    assert [sent(f)["method"] for f in pong] == ["pong"]


def test_ttl_cancels_then_the_grace_period_ends_the_run() -> None:
    """The TTL is ours: at its deadline CANCEL goes out; after the grace period the
    run ends as expired (the caller closes the socket, so the server kills)."""
    run = Run(SessionSpec("sleep 100", ttl=5, tty=False))
    run.start(CCX_CAPS, now=10.0)
    proto = run.proto
    assert proto.deadline() == 15.0
    step = proto.expire(15.0)
    assert [sent(f)["params"] for f in step.send] == [{"type": "CANCEL"}]
    assert proto.deadline() == 17.0
    assert proto.expire(16.0).outcome is None
    outcome = proto.expire(17.0).outcome
    assert outcome == RemoteOutcome("expired", reason="closed after grace", pid=42)


def test_a_user_cancel_ends_as_killed_with_the_servers_code() -> None:
    run = Run(SessionSpec("sleep 100", tty=False))
    run.start(CCX_CAPS)
    assert [sent(f)["params"] for f in run.proto.cancel("killed", 1.0)] == [{"type": "CANCEL"}]
    assert run.proto.cancel("killed", 1.5) == []  # once
    ended = run.proto.receive(p.encode_notification("process.canceled", {"exit_code": -15}), 2.0)
    assert ended.outcome == RemoteOutcome("killed", exit_code=143, signal=15, pid=42)


def test_no_execute_result_in_time_is_an_error() -> None:
    run = Run(SessionSpec("true", tty=False), now=100.0)
    run.proto.receive(connected([]), 100.0)
    assert run.proto.deadline() == 100.0 + EXECUTE_DEADLINE
    with pytest.raises(RemoteError, match="no answer to execute"):
        run.proto.expire(100.0 + EXECUTE_DEADLINE)


def test_a_blip_asks_to_reattach_from_the_last_batch_and_skips_the_overlap() -> None:
    """A dropped connection of a detachable session asks to reattach from the end of
    the last batch; the replay's overlap with what we had is dropped, byte-exact."""
    run = Run(SessionSpec("yes", tty=False))
    run.start(CCX_CAPS)
    proto = run.proto
    proto.receive(p.encode_batch(0, [("stdout", 6)]), 1.0)
    proto.receive(b"01234\n", 1.0)
    ending = proto.closed(None, None)
    assert ending == Reattach("srv-1", 6, True)
    proto.reattached()
    proto.receive(p.encode_batch(3, [("stdout", 7)]), 2.0)  # the server replays from 3
    proto.receive(b"34\n5678", 2.0)
    proto.idle()
    assert b"".join(data for _, data in run.out) == b"01234\n5678"


def test_a_text_frame_where_a_batch_payload_belongs_drops_the_connection() -> None:
    run = Run(SessionSpec("yes", tty=False))
    run.start(CCX_CAPS)
    run.proto.receive(p.encode_batch(0, [("stdout", 3)]), 1.0)
    assert run.proto.receive("not bytes", 1.0).abort


def test_losing_an_upstream_connection_is_lost_with_the_servers_words() -> None:
    run = Run(SessionSpec("true", tty=False))
    run.start([])
    outcome = run.proto.closed(1011, "bye")
    assert outcome == RemoteOutcome("lost", reason="bye (ws://x/ws/mcp)", pid=42)


def test_the_session_limit_is_its_own_error() -> None:
    run = Run(SessionSpec("true", tty=False))
    run.proto.receive(connected([]), 0.0)
    with pytest.raises(SessionLimitReached):
        run.proto.closed(1008, "limit")
    refused = Run(SessionSpec("true", tty=False))
    (frame,) = refused.proto.receive(connected([]), 0.0).send
    answer = p.encode_error(sent(frame)["id"], -32003, "Session limit reached")
    with pytest.raises(SessionLimitReached):
        refused.proto.receive(answer, 0.0)


def test_attach_resumes_from_an_offset_and_needs_the_capability() -> None:
    run = Run(attach="srv-9", offset=1234)
    request = run.start(CCX_CAPS)
    assert request["method"] == "session.attach"
    assert request["params"] == {"session_id": "srv-9", "offset": 1234, p.BATCH: True}
    old = Run(attach="srv-9")
    with pytest.raises(RemoteError, match="cannot attach"):
        old.proto.receive(connected([]), 0.0)
