"""The engine client's protocol state, fed frames by hand: no sockets, no engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccx_tui.engine.server.manage import EVENTS_METHOD, info_to_wire
from ccx_tui.engine.sessions.events import (
    OutputAppended,
    SessionAdded,
    SessionRemoved,
    SessionUpdated,
)
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.client_protocol import EngineCallError, EngineProtocol
from ccx_tui.errors import AmbiguousSession, UnknownSession

STATS = {"running": 1, "paused": 0, "queued": 0, "max_sessions": 16}


def info(sid: str, state: State = State.RUNNING, **changes: Any) -> SessionInfo:
    return SessionInfo(
        id=sid,
        spec=SessionSpec("echo hi", env={"K": "v"}),
        state=state,
        directory=Path("/data") / sid,
        created_at=1.0,
        **changes,
    )


def subscribed(*infos: SessionInfo, current: tuple[str, ...] = ()) -> EngineProtocol:
    proto = EngineProtocol()
    proto.receive(p.encode_notification("connected", {"session_id": "c", "capabilities": []}))
    msg_id, frame = proto.subscribe()
    assert json.loads(frame)["method"] == "engine.subscribe"
    result = {
        "sessions": [info_to_wire(i) for i in infos],
        "current": list(current),
        "stats": STATS,
        "engine": {"pid": 42},
    }
    out = proto.receive(p.encode_result(msg_id, result))
    assert [r.id for r in out.replies] == [msg_id] and out.events == []
    return proto


def events_frame(**params: Any) -> str:
    return p.encode_notification(EVENTS_METHOD, {"stats": STATS, **params})


def test_the_snapshot_fills_the_table() -> None:
    proto = subscribed(info("a"), info("b", State.EXITED), current=("a", "zzz"))
    assert set(proto.sessions) == {"a", "b"}
    assert proto.sessions["a"] == info("a")  # the spec's env comes through whole
    assert proto.current == ["a"]  # an id the table lacks is dropped
    assert proto.stats.running == 1 and proto.engine["pid"] == 42


def test_event_frames_become_engine_events() -> None:
    proto = subscribed(info("a"))
    out = proto.receive(
        events_frame(
            sessions=[info_to_wire(info("a", State.EXITED)), info_to_wire(info("b"))],
            output={"a": [10, 2], "nope": [1, 1], "b": ["x", 1]},
            removed=["a", "unknown"],
        )
    )
    assert out.events == [
        SessionUpdated(info("a", State.EXITED)),
        SessionAdded(info("b")),
        OutputAppended("a", 10, 2),
        SessionRemoved("a"),
    ]
    assert set(proto.sessions) == {"b"}


def test_output_counts_update_the_table() -> None:
    proto = subscribed(info("a"))
    proto.receive(events_frame(output={"a": [5, 1]}))
    assert (proto.sessions["a"].bytes, proto.sessions["a"].lines) == (5, 1)


def test_reading_one_session_merges_its_counts_alone() -> None:
    """`session(id)` (what a tab switch reads) takes that session's newest counts and
    leaves the others' to be merged when the table is read."""
    proto = subscribed(info("a"), info("b"))
    proto.receive(events_frame(output={"a": [5, 1], "b": [7, 2]}))
    got = proto.session("a")
    assert got is not None and (got.bytes, got.lines) == (5, 1)
    assert proto._counts == {"b": (7, 2)}  # not merged yet
    assert proto.session("nope") is None
    proto.receive(events_frame(output={"a": [9, 3]}))
    assert (proto.sessions["a"].bytes, proto.sessions["b"].bytes) == (9, 7)


def test_a_resubscription_reports_what_changed_meanwhile() -> None:
    """After a reconnect the new snapshot is diffed against the table: new sessions,
    changed ones and vanished ones become events (nothing is missed while away)."""
    proto = subscribed(info("a"), info("b"), info("c"))
    msg_id, _ = proto.subscribe()
    changed = info("b", State.KILLED)
    result = {"sessions": [info_to_wire(i) for i in (info("a"), changed, info("d"))]}
    out = proto.receive(p.encode_result(msg_id, {**result, "stats": STATS}))
    assert out.events == [SessionUpdated(changed), SessionAdded(info("d")), SessionRemoved("c")]


def test_learn_makes_the_later_event_an_update() -> None:
    proto = subscribed()
    assert proto.learn(info("a")) == [SessionAdded(info("a"))]
    assert proto.learn(info("a")) == []
    out = proto.receive(events_frame(sessions=[info_to_wire(info("a"))]))
    assert out.events == [SessionUpdated(info("a"))]


@pytest.mark.parametrize(
    ("name", "error"),
    [("UnknownSession", UnknownSession), ("AmbiguousSession", AmbiguousSession)],
)
def test_named_errors_come_back_as_their_class(name: str, error: type[Exception]) -> None:
    proto = subscribed()
    msg_id, _ = proto.request("session.kill", {"session_id": "x"})
    out = proto.receive(p.encode_error(msg_id, p.INTERNAL, "no session 'x'", {"error": name}))
    [reply] = out.replies
    assert type(reply.error) is error and str(reply.error) == "no session 'x'"


def test_unknown_errors_and_lost_connections_are_engine_call_errors() -> None:
    proto = subscribed()
    first, _ = proto.request("session.pause", {"session_id": "x"})
    second, _ = proto.request("session.resume", {"session_id": "x"})
    [reply] = proto.receive(p.encode_error(first, p.INTERNAL, "boom", {"error": "Os"})).replies
    assert type(reply.error) is EngineCallError
    [lost] = proto.lost("the engine process went away")
    assert lost.id == second and "went away" in str(lost.error)
    assert not proto.connected


def test_deadlines() -> None:
    proto = subscribed()
    assert proto.next_deadline() is None
    late, _ = proto.request("engine.kill_all", {}, deadline=5.0)
    proto.request("session.kill", {"session_id": "a"}, deadline=9.0)
    assert proto.next_deadline() == 5.0
    assert proto.expire(4.0) == []
    [expired] = proto.expire(5.0)
    assert expired.id == late and "in time" in str(expired.error)
    assert proto.next_deadline() == 9.0


def test_pings_are_answered_and_garbage_is_ignored() -> None:
    proto = subscribed(info("a"))
    out = proto.receive(p.encode_notification("ping", {"timestamp": 1.0}))
    assert [json.loads(f)["method"] for f in out.send] == ["pong"]
    for frame in ("not json", "[1]", b"\xff", events_frame(sessions=[{"id": 3}, "x"])):
        assert proto.receive(frame).events == []
    assert set(proto.sessions) == {"a"}


def test_a_reply_to_nobody_is_ignored() -> None:
    proto = subscribed()
    assert proto.receive(p.encode_result(999, {})).replies == []


def test_live_output_is_a_header_then_its_bytes() -> None:
    """`session.live` names the session, offset and stream of the binary frame that
    follows it (bytes kept exact, invalid UTF-8 included); a binary frame without a
    header is ignored, and `session.live_end` ends a session's live output."""
    proto = subscribed(info("a"))
    header = p.encode_notification("session.live", {"session_id": "a", "offset": 7, "stream": 1})
    assert proto.receive(header).live == []
    out = proto.receive(b"\xff\xfe raw\n")
    [(sid, chunk)] = out.live
    assert (sid, chunk.offset, chunk.stream, chunk.data) == ("a", 7, 1, b"\xff\xfe raw\n")
    assert proto.receive(b"stray").live == []
    assert proto.receive(
        p.encode_notification("session.live_end", {"session_id": "a"})
    ).live_end == ["a"]
