"""The fake upstream behaves as shared/PROTOCOL.md says a real cc_executor server does.

Driven with a raw websockets client, so that these tests check the fake, not our client.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ccx_tui.engine.wire import protocol
from tests.fake_upstream import MARKER_ENV, FakeUpstream
from tests.helpers import until

DEADLINE = 20.0


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next frame as a JSON object (the fake must send one within the deadline)."""
    frame = await asyncio.wait_for(ws.recv(), DEADLINE)
    obj = json.loads(frame)
    assert isinstance(obj, dict)
    return obj


async def recv_until(ws: ClientConnection, done: Any, *, pong: bool = True) -> list[dict[str, Any]]:
    """Frames up to and including the first one for which `done(frame)` holds; pings are
    left out (and answered unless `pong` is false)."""
    frames = []
    while True:
        obj = await recv(ws)
        if obj.get("method") == "ping":
            if pong:
                await ws.send(protocol.encode_notification("pong", {}))
            continue
        frames.append(obj)
        if done(obj):
            return frames


def terminal(obj: dict[str, Any]) -> bool:
    return obj.get("method") in ("process.completed", "process.canceled", "process.error")


def response_to(msg_id: int) -> Any:
    return lambda obj: obj.get("id") == msg_id and "method" not in obj


async def open_session(fake: FakeUpstream) -> ClientConnection:
    ws = await connect(fake.url, max_size=None)
    hello = await recv(ws)
    assert hello["method"] == "connected"
    assert hello["params"]["capabilities"] == ["execute", "control", "stream"]
    return ws


async def execute(
    ws: ClientConnection, command: str, msg_id: int = 1, *, pong: bool = True
) -> dict[str, Any]:
    await ws.send(protocol.encode_request("execute", {"command": command, "timeout": 0}, msg_id))
    result = (await recv_until(ws, response_to(msg_id), pong=pong))[-1]
    assert result["result"]["status"] == "started", result
    return result


def pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def session_processes(session_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER_ENV) == session_id and not pid_gone(proc.pid):
                found.append(proc)
        except psutil.Error:
            pass
    return found


async def test_health_path_and_greeting() -> None:
    async with FakeUpstream(max_sessions=7) as fake:
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(fake.health_url).read())
        health = json.loads(body)
        assert health["status"] == "healthy" and health["max_sessions"] == 7
        assert health["active_sessions"] == 0
        wrong = fake.url.replace("/ws/mcp", "/ws")
        with pytest.raises(InvalidStatus) as info:
            await connect(wrong)
        assert info.value.response.status_code == 403
        async with await open_session(fake):
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(fake.health_url).read())
            assert json.loads(body)["active_sessions"] == 1
        assert fake.connections == 1


async def test_execute_streams_lines_then_one_completed() -> None:
    """Result, process.started, the output lines of both streams, process.completed."""
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        result = await execute(ws, "echo out1; echo err1 >&2; printf 'bad \\377\\n'; printf tail")
        assert result["result"]["status"] == "started"
        pid = result["result"]["pid"]
        assert result["result"]["pgid"] == pid  # its own process group
        frames = await recv_until(ws, terminal)
        assert frames[0]["method"] == "process.started"
        assert frames[0]["params"] == protocol.process_params("started", pid, pid)
        outputs = [f["params"] for f in frames if f["method"] == "process.output"]
        stdout = [p["data"] for p in outputs if p["type"] == "stdout"]
        stderr = [p["data"] for p in outputs if p["type"] == "stderr"]
        assert stdout == ["out1\n", "bad \ufffd\n", "tail"]
        assert stderr == ["err1\n"]
        assert frames[-1]["method"] == "process.completed"
        assert frames[-1]["params"]["status"] == "completed"
        assert frames[-1]["params"]["exit_code"] == 0
        assert [f["method"] for f in frames].count("process.completed") == 1
        assert fake.pids == [pid]


async def test_exit_codes_failed_and_signal_and_loading_quirk() -> None:
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        await execute(ws, "echo Loading...; exit 3", 1)
        frames = await recv_until(ws, terminal)
        output = next(f["params"] for f in frames if f["method"] == "process.output")
        assert output["data"] == "Loading...\n" and output["truncated"] is True
        assert output["chunk_index"] is None
        end = frames[-1]["params"]
        assert (end["status"], end["exit_code"]) == ("failed", 3)
        await execute(ws, "kill -9 $$", 2)
        end = (await recv_until(ws, terminal))[-1]["params"]
        assert (end["status"], end["exit_code"]) == ("failed", -9)


async def test_cancel_gives_canceled_and_never_completed() -> None:
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        # "ready" only once sleep runs: a STOP during sh's vfork leaves sh in D state.
        result = await execute(ws, "sleep 30 & echo ready; wait")
        pid = result["result"]["pid"]
        await recv_until(ws, lambda o: o.get("params", {}).get("data") == "ready\n")
        await ws.send(protocol.encode_request("control", {"type": "PAUSE"}, 2))
        frames = await recv_until(ws, lambda o: o.get("method") == "process.paused")
        assert frames[0] == {"jsonrpc": "2.0", "result": {"status": "paused"}, "id": 2}
        await until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, what="stopped")
        await ws.send(protocol.encode_request("control", {"type": "RESUME"}, 3))
        frames = await recv_until(ws, lambda o: o.get("method") == "process.resumed")
        assert frames[0]["result"] == {"status": "resumed"}
        await ws.send(protocol.encode_request("control", {"type": "CANCEL"}, 4))
        frames = await recv_until(ws, lambda o: o.get("method") == "process.canceled")
        assert frames[0]["result"] == {"status": "canceled"}
        assert frames[-1]["params"] == protocol.process_params("canceled", pid, pid)
        await until(lambda: pid_gone(pid), what="the canceled process to exit")
        # A later round trip proves nothing terminal was queued behind the cancel.
        await ws.send(protocol.encode_request("hook_status", {}, 5))
        frames = await recv_until(ws, response_to(5))
        assert not any(terminal(f) for f in frames), frames
        assert frames[-1]["result"]["enabled"] is False


async def test_error_responses() -> None:
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        await ws.send(protocol.encode_request("control", {"type": "CANCEL"}, 1))
        assert (await recv(ws))["error"]["code"] == protocol.NO_PROCESS
        await ws.send(protocol.encode_request("execute", {"command": "  "}, 2))
        assert (await recv(ws))["error"]["code"] == protocol.NOT_ALLOWED
        await ws.send(protocol.encode_request("execute", {}, 3))
        assert (await recv(ws))["error"]["code"] == protocol.INTERNAL
        await ws.send(protocol.encode_request("nope", {}, 4))
        error = await recv(ws)
        assert error["error"]["code"] == protocol.METHOD_NOT_FOUND and error["id"] == 4
        await execute(ws, "sleep 30", 5)
        await ws.send(protocol.encode_request("execute", {"command": "true"}, 6))
        frames = await recv_until(ws, response_to(6))
        assert frames[-1]["error"] == {
            "code": protocol.ALREADY_RUNNING,
            "message": "A process is already running",
            "data": None,
        }
        # "id": null gets a response with no id at all.
        await ws.send('{"jsonrpc":"2.0","method":"hook_status","params":{},"id":null}')
        frames = await recv_until(ws, lambda o: "result" in o or "error" in o)
        assert "id" not in frames[-1] and "result" in frames[-1]


async def test_control_after_exit_is_internal_error() -> None:
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        result = await execute(ws, "true")
        await recv_until(ws, terminal)
        await ws.send(protocol.encode_request("control", {"type": "PAUSE"}, 2))
        error = (await recv(ws))["error"]
        assert error["code"] == protocol.INTERNAL
        assert error["message"] == f"Process group {result['result']['pgid']} not found"


async def test_invalid_json_gets_error_without_id_and_session_goes_on() -> None:
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        await ws.send('{"jsonrpc":"2.0","method":')
        error = await recv(ws)
        assert error["error"]["code"] == protocol.INTERNAL and "id" not in error
        await ws.send(protocol.encode_request("hook_status", {}, 9))
        assert (await recv(ws))["id"] == 9


@pytest.mark.parametrize("value", ["[]", '[{"jsonrpc":"2.0","method":"hook_status","id":1}]', "7"])
async def test_non_object_drops_connection_without_close_frame(value: str) -> None:
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        await ws.send(value)
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd is None  # no close frame from the server
        assert fake.drops == 1


async def test_session_limit_error_then_close_1008() -> None:
    async with FakeUpstream(max_sessions=1) as fake, await open_session(fake):
        async with connect(fake.url) as second:
            error = await recv(second)
            assert error == {
                "jsonrpc": "2.0",
                "error": {"code": -32003, "message": "Session limit exceeded", "data": None},
            }
            assert protocol.parse(json.dumps(error)).session_limit  # type: ignore[union-attr]
            with pytest.raises(ConnectionClosed):
                await recv(second)
            assert second.close_code == 1008
        assert fake.rejected_sessions == 1 and fake.active_sessions == 1


async def test_heartbeat_drop_without_pong_kills_the_process() -> None:
    async with FakeUpstream(ping_interval=0.05, pong_timeout=0.5, kill_grace=0.5) as fake:
        ws = await open_session(fake)
        session_id = fake.session_ids[-1]
        # The child ignores TERM, so only the KILL after the grace period ends it.
        await execute(ws, "trap '' TERM; echo up; sleep 30 & wait", pong=False)
        pings = 0
        with pytest.raises(ConnectionClosed) as info:
            while True:
                obj = await recv(ws)
                pings += obj.get("method") == "ping"
        assert info.value.rcvd is None  # dropped, not closed
        assert pings >= 1 and fake.pongs == 0 and fake.drops == 1
        await until(lambda: not session_processes(session_id), what="the process group killed")


async def test_pongs_keep_the_connection_alive() -> None:
    async with FakeUpstream(ping_interval=0.05, pong_timeout=0.3) as fake:
        async with await open_session(fake) as ws:
            pings = 0
            while pings < 20:  # 20 intervals = 1 s, over three pong timeouts
                obj = await recv(ws)
                if obj.get("method") == "ping":
                    assert isinstance(obj["params"]["timestamp"], float)
                    pings += 1
                    await ws.send(protocol.encode_notification("pong", {}))
            await ws.send(protocol.encode_request("hook_status", {}, 1))
            await recv_until(ws, response_to(1))
        assert fake.drops == 0 and fake.pongs >= 19


async def test_slow_start_keeps_pinging() -> None:
    async with FakeUpstream(start_delay=0.5, ping_interval=0.05) as fake:
        async with await open_session(fake) as ws:
            await ws.send(protocol.encode_request("execute", {"command": "true"}, 1))
            early = []
            while "id" not in (obj := await recv(ws)):
                early.append(obj["method"])
            assert obj["result"]["status"] == "started"
            assert early and set(early) == {"ping"}


async def test_close_kills_the_process_group() -> None:
    async with FakeUpstream(kill_grace=0.5) as fake:
        ws = await open_session(fake)
        session_id = fake.session_ids[-1]
        await execute(ws, "sleep 30 & sleep 30 & echo started; wait")
        await recv_until(ws, lambda o: o.get("params", {}).get("data") == "started\n")
        assert len(session_processes(session_id)) == 3
        await ws.close()
        await until(lambda: not session_processes(session_id), what="the group killed")
        await until(lambda: fake.active_sessions == 0)


async def test_chunked_long_line_interleaved_with_stderr() -> None:
    """A 150,000-character line arrives as chunks 0/3, 1/3 and 2/3 and reassembles."""
    script = (
        "import sys; sys.stdout.write('x' * 150000 + '\\n'); sys.stdout.flush();"
        "sys.stderr.write('e\\n')"
    )
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        await execute(ws, f'{sys.executable} -c "{script}"')
        frames = await recv_until(ws, terminal)
        chunks = [
            f["params"]
            for f in frames
            if f["method"] == "process.output" and f["params"]["type"] == "stdout"
        ]
        assert [(c["chunk_index"], c["total_chunks"]) for c in chunks] == [(0, 3), (1, 3), (2, 3)]
        assert [len(c["data"]) for c in chunks] == [65_536, 65_536, 18_929]
        assert [c["truncated"] for c in chunks] == [True, True, False]
        assembler = protocol.OutputAssembler()
        text = {"stdout": "", "stderr": ""}
        for f in frames:
            if f["method"] == "process.output":
                note = protocol.parse(json.dumps(f))
                assert isinstance(note, protocol.Notification)
                out = protocol.decode_notification(note)
                assert isinstance(out, protocol.ProcessOutput)
                text[out.stream] += assembler.feed(out)
        assert text == {"stdout": "x" * 150_000 + "\n", "stderr": "e\n"}
        assert assembler.anomalies == 0


async def test_side_notifications_come_before_their_line() -> None:
    async with FakeUpstream() as fake, await open_session(fake) as ws:
        await execute(ws, "echo 'All Done!'; echo 'output truncated'")
        methods = [f["method"] for f in await recv_until(ws, terminal)]
        assert methods == [
            "process.started",
            "task.early_completion",
            "process.output",
            "error.token_limit_exceeded",
            "process.output",
            "process.completed",
        ]


async def test_process_error_notification() -> None:
    async with FakeUpstream(fail_marker="BOOM") as fake, await open_session(fake) as ws:
        await execute(ws, "echo BOOM")
        frames = await recv_until(ws, terminal)
        assert frames[-1]["method"] == "process.error"
        assert "BOOM" in frames[-1]["params"]["error"]


async def test_stream_timeout_quirk() -> None:
    """`timeout` is an inactivity timeout: a synthetic line per stream, then exit code 0."""
    async with FakeUpstream(exit_wait=0.1) as fake, await open_session(fake) as ws:
        await ws.send(protocol.encode_request("execute", {"command": "exit 4", "timeout": 1}, 1))
        await recv(ws)
        frames = await recv_until(ws, terminal)
        assert frames[-1]["params"]["exit_code"] == 4  # a quick exit is reported truly
        await ws.send(protocol.encode_request("execute", {"command": "sleep 30", "timeout": 1}, 2))
        await recv(ws)
        frames = await recv_until(ws, terminal)
        data = sorted(f["params"]["data"] for f in frames if f["method"] == "process.output")
        assert data == ["\n[Stream timed out after 1s]\n"] * 2
        assert frames[-1]["params"]["status"] == "completed"
        assert frames[-1]["params"]["exit_code"] == 0  # while the process still runs
        assert not pid_gone(fake.pids[-1])


async def test_null_pgid_option() -> None:
    """`pgid` may be null upstream; signals then go to the pid alone."""
    async with FakeUpstream(null_pgid=True, kill_grace=0.5) as fake, await open_session(fake) as ws:
        result = await execute(ws, "exec sleep 30")
        assert result["result"]["pgid"] is None
        await ws.send(protocol.encode_request("control", {"type": "PAUSE"}, 2))
        frames = await recv_until(ws, lambda o: o.get("method") == "process.paused")
        assert frames[-1]["params"]["pgid"] is None
        await ws.send(protocol.encode_request("control", {"type": "CANCEL"}, 3))
        frames = await recv_until(ws, lambda o: o.get("method") == "process.canceled")
        assert frames[0]["result"] == {"status": "canceled"}


async def test_http_on_ws_path_without_upgrade_is_refused() -> None:
    async with FakeUpstream() as fake:
        http_url = fake.url.replace("ws://", "http://")
        with pytest.raises(urllib.error.HTTPError):
            await asyncio.to_thread(urllib.request.urlopen, http_url)
