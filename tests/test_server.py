"""`ccx-tui serve` against a raw WebSocket client that speaks upstream's format only.

A server always wants a token now (none given: `serve` makes one), so these clients
send one: the default changed, not what upstream clients see once connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ccx_tui.engine.server.server import BATCH_BYTES, CcxServer, ServeConfig
from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from ccx_tui.engine.transcripts.transcript import SIDECAR_NAME, STDERR, read_segments
from tests.helpers import until, wait_gone

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def connect(uri: str, **options: Any) -> ws_connect:
    """websockets' connect, with the test servers' token unless told otherwise."""
    options.setdefault("additional_headers", AUTH)
    return ws_connect(uri, **options)


@contextlib.asynccontextmanager
async def running_server(data_dir: Path, **options: Any) -> AsyncIterator[CcxServer]:
    engine_opts = {k: options.pop(k) for k in ("max_sessions",) if k in options}
    options.setdefault("token", TOKEN)
    async with LocalEngine(EngineConfig(data_dir=data_dir, kill_grace=0.3, **engine_opts)) as eng:
        async with CcxServer(eng, ServeConfig(port=0, **options)) as server:
            yield server


def url(server: CcxServer, path: str = "/ws/mcp") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def recv(ws: ClientConnection, timeout: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def call(ws: ClientConnection, method: str, params: dict[str, Any], msg_id: int) -> None:
    await ws.send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": msg_id}))


async def until_terminal(ws: ClientConnection) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Messages up to and including the terminal notification."""
    seen = []
    while True:
        msg = await recv(ws)
        seen.append(msg)
        if msg.get("method") in ("process.completed", "process.canceled", "process.error"):
            return seen, msg


async def test_execute_streams_and_completes_like_upstream(data_dir: Path) -> None:
    async with running_server(data_dir) as server, connect(url(server)) as ws:
        hello = await recv(ws)
        assert hello["method"] == "connected" and hello["params"]["session_id"]
        await call(ws, "execute", {"command": "echo hello; echo oops >&2; exit 3"}, 1)
        reply = await recv(ws)
        assert reply["id"] == 1 and reply["result"]["status"] == "started"
        assert isinstance(reply["result"]["pid"], int)
        seen, end = await until_terminal(ws)
        assert seen[0]["method"] == "process.started"
        outputs = [
            (m["params"]["type"], m["params"]["data"])
            for m in seen
            if m["method"] == "process.output"
        ]
        assert sorted(outputs) == [("stderr", "oops\n"), ("stdout", "hello\n")]
        assert end["params"]["status"] == "failed" and end["params"]["exit_code"] == 3


async def test_chunking_and_truncated_quirk(data_dir: Path) -> None:
    """A 150,000-character line arrives as chunks 0/3, 1/3, 2/3; 'Loading...' has
    truncated true without a chunk index, exactly as upstream sends it."""
    command = "printf 'Loading...\\n'; head -c 150000 /dev/zero | tr '\\0' a; echo"
    async with running_server(data_dir) as server, connect(url(server)) as ws:
        await recv(ws)
        await call(ws, "execute", {"command": command}, 7)
        await recv(ws)
        seen, _ = await until_terminal(ws)
        out = [m["params"] for m in seen if m["method"] == "process.output"]
        assert out[0]["data"] == "Loading...\n" and out[0]["truncated"] is True
        assert out[0]["chunk_index"] is None
        chunks = out[1:]
        assert [(c["chunk_index"], c["total_chunks"], c["truncated"]) for c in chunks] == [
            (0, 3, True),
            (1, 3, True),
            (2, 3, False),
        ]
        assert [len(c["data"]) for c in chunks] == [65536, 65536, 18929]


async def test_cancel_sends_canceled_never_completed(data_dir: Path) -> None:
    async with running_server(data_dir) as server, connect(url(server)) as ws:
        await recv(ws)
        await call(ws, "execute", {"command": "trap '' TERM; echo up; sleep 1000"}, 1)
        await recv(ws)
        await call(ws, "control", {"type": "CANCEL"}, 2)
        seen, end = await until_terminal(ws)
        assert {"jsonrpc": "2.0", "result": {"status": "canceled"}, "id": 2} in seen
        assert end["method"] == "process.canceled"
        assert end["params"]["exit_code"] == -9  # TERM was trapped: escalated to KILL
        with pytest.raises(TimeoutError):
            await recv(ws, timeout=0.5)  # and no process.completed follows
        sid = server.engine.sessions()[-1].id
    # Only this session's processes: other test runs may share the machine.
    assert wait_gone(sid) == []


async def test_pause_resume_and_errors(data_dir: Path) -> None:
    async with running_server(data_dir) as server, connect(url(server)) as ws:
        await recv(ws)
        await call(ws, "control", {"type": "PAUSE"}, 1)
        assert (await recv(ws))["error"]["code"] == -32002
        await call(ws, "execute", {"command": "  "}, 2)
        assert (await recv(ws))["error"]["code"] == -32001
        await call(ws, "nope", {}, 3)
        assert (await recv(ws))["error"]["code"] == -32601
        await call(ws, "execute", {"command": "sleep 1000"}, 4)
        await recv(ws)
        await call(ws, "execute", {"command": "true"}, 5)
        msgs = [await recv(ws) for _ in range(2)]
        err = next(m for m in msgs if m.get("id") == 5)
        assert err["error"] == {
            "code": -32602,
            "message": "A process is already running",
            "data": None,
        }
        await call(ws, "control", {"type": "PAUSE"}, 6)
        msgs = [await recv(ws) for _ in range(2)]
        assert {"jsonrpc": "2.0", "result": {"status": "paused"}, "id": 6} in msgs
        assert any(m.get("method") == "process.paused" for m in msgs)
        await call(ws, "control", {"type": "RESUME"}, 7)
        msgs = [await recv(ws) for _ in range(2)]
        assert {"jsonrpc": "2.0", "result": {"status": "resumed"}, "id": 7} in msgs
        await call(ws, "hook_status", {}, 8)
        assert (await recv(ws))["result"]["enabled"] is False
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "pong", "params": {}}))


async def test_garbage_gets_errors_not_a_dropped_connection(data_dir: Path) -> None:
    async with running_server(data_dir) as server, connect(url(server)) as ws:
        await recv(ws)
        await ws.send("{not json")
        err = await recv(ws)
        assert err["error"]["code"] == -32603 and "id" not in err
        await ws.send("[1, 2, 3]")
        err = await recv(ws)
        assert err["error"]["code"] == -32600 and "id" not in err
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "execute", "params": [1], "id": 1}))
        assert "error" in await recv(ws)
        await ws.send(b"\xff\xfe binary garbage")
        assert "error" in await recv(ws)
        await call(ws, "execute", {"command": "echo still-alive"}, 9)
        assert (await recv(ws))["result"]["status"] == "started"
        seen, _ = await until_terminal(ws)
        assert any(m.get("params", {}).get("data") == "still-alive\n" for m in seen)


async def test_oversized_frame_closes_only_that_connection(data_dir: Path) -> None:
    async with running_server(data_dir) as server:
        async with connect(url(server)) as other:
            await recv(other)
            ws = await connect(url(server), max_size=None)
            await recv(ws)
            with contextlib.suppress(ConnectionClosed):
                await ws.send("x" * (17 * 1024 * 1024))
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            await call(other, "execute", {"command": "echo fine"}, 1)
            assert (await recv(other))["result"]["status"] == "started"


async def test_session_limit_closes_with_1008(data_dir: Path) -> None:
    async with running_server(data_dir, max_connections=1) as server:
        async with connect(url(server)) as first:
            await recv(first)
            async with connect(url(server)) as second:
                err = await recv(second)
                assert err == {
                    "jsonrpc": "2.0",
                    "error": {"code": -32003, "message": "Session limit exceeded", "data": None},
                }
                with pytest.raises(ConnectionClosed) as info:
                    await recv(second)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_token_health_and_paths(data_dir: Path) -> None:
    async with running_server(data_dir, token="s3cret") as server:
        with pytest.raises(InvalidStatus) as no_token:
            async with connect(url(server), additional_headers={}):
                pass
        assert no_token.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as wrong:
            async with connect(url(server), additional_headers={"Authorization": "Bearer x"}):
                pass
        assert wrong.value.response.status_code == 401
        async with connect(
            url(server, "/ws"), additional_headers={"Authorization": "Bearer s3cret"}
        ) as ws:
            assert (await recv(ws))["method"] == "connected"
        with pytest.raises(InvalidStatus) as other:
            async with connect(
                url(server, "/elsewhere"), additional_headers={"Authorization": "Bearer s3cret"}
            ):
                pass
        assert other.value.response.status_code == 404
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health").read()
        )
        health = json.loads(body)
        assert health["status"] == "healthy" and "max_sessions" in health


async def test_disconnect_kills_the_process(data_dir: Path) -> None:
    async with running_server(data_dir) as server:
        async with connect(url(server)) as ws:
            await recv(ws)
            await call(ws, "execute", {"command": "echo up; sleep 1000"}, 1)
            await recv(ws)
            sid = server.engine.sessions()[-1].id
        info = await server.engine.wait(sid)
        assert info.state.value == "killed"
    assert wait_gone(sid) == []


async def test_reattach_replays_from_an_offset(data_dir: Path) -> None:
    """Extension: a detachable session survives its socket; a new connection attaches
    and replays from a byte offset, losing nothing."""
    command = "for i in 1 2 3; do echo line$i; done; sleep 0.5; echo after"
    async with running_server(data_dir) as server:
        async with connect(url(server)) as ws:
            await recv(ws)
            await call(ws, "execute", {"command": command, "detachable": True}, 1)
            sid = (await recv(ws))["result"]["session"]
            got = ""
            while got.count("\n") < 3:
                msg = await recv(ws)
                if msg.get("method") == "process.output":
                    got += msg["params"]["data"]
        async with connect(url(server)) as ws:
            await recv(ws)
            await call(ws, "session.attach", {"session_id": sid, "offset": len(got)}, 2)
            assert (await recv(ws))["result"]["status"] == "attached"
            seen, end = await until_terminal(ws)
            rest = "".join(m["params"]["data"] for m in seen if m["method"] == "process.output")
        assert got + rest == "line1\nline2\nline3\nafter\n"
        assert end["params"]["exit_code"] == 0
        await call_list(server)


async def call_list(server: CcxServer) -> None:
    async with connect(url(server)) as ws:
        await recv(ws)
        await call(ws, "sessions.list", {}, 1)
        listing = (await recv(ws))["result"]
        assert listing and listing[0]["state"] == "exited"


def _serve(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """A real `ccx-tui serve` on a free port: (process, port, the token it made)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccx_tui",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert "listening on ws://127.0.0.1:" in line, line
    port = int(line.split("127.0.0.1:")[1].split("/")[0])
    token = (data_dir / "serve" / "token").read_text().strip()
    assert token not in line  # says where the token is, never the token
    return proc, port, token


@pytest.mark.parametrize("batch", [False, True], ids=["line-frames", "batches"])
async def test_slow_client_never_stalls_the_process(data_dir: Path, batch: bool) -> None:
    """Back-pressure, cc_executor's worst fault: a client stops reading while its
    process writes 200 MB.  The process still finishes (it is never blocked), the
    server's memory stays flat, and the client then receives every byte in order;
    with line frames as with batches (whose payloads the server reads into one reused
    buffer: a frame still waiting to be sent must already be a copy, or this breaks)."""
    proc, port, token = _serve(data_dir)
    try:
        server = psutil.Process(proc.pid)
        idle_rss = server.memory_info().rss
        size = 200 * 1024 * 1024
        # Lines of 4 KiB: the wire format sends a frame per line, and 5 million tiny
        # frames would make this a test of JSON speed rather than of back-pressure.
        word = "abcdefghijklmnopqrstuvwxyz0123456789" * 113
        command = f"yes '{word}' | head -c {size}"
        expected = hashlib.sha256()
        line = word.encode() + b"\n"
        expected.update(line * (size // len(line)) + line[: size % len(line)])
        # The client's own keepalive is off: it deliberately reads nothing for a while.
        async with connect(
            f"ws://127.0.0.1:{port}/ws/mcp",
            max_size=None,
            max_queue=1,
            ping_interval=None,
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            await recv(ws)
            await call(ws, "execute", {"command": command, "batch": batch}, 1)
            await recv(ws)
            # Stop reading.  The session must end on the server all the same.
            sessions = data_dir / "sessions"
            peak = 0
            deadline = time.monotonic() + 120
            while True:
                peak = max(peak, server.memory_info().rss)
                metas = list(sessions.glob("*/meta.json"))
                # Blank until its first record (a block reserved for a full disk).
                record = metas[0].read_text().strip() if metas else ""
                if record and json.loads(record)["state"] == "exited":
                    break
                assert time.monotonic() < deadline, "process stalled behind a slow client"
                await asyncio.sleep(0.05)
            assert peak - idle_rss < 64 * 1024 * 1024, (idle_rss, peak)
            got = hashlib.sha256()
            total = 0
            while True:
                msg = await recv(ws, timeout=60)
                method = msg.get("method")
                if method == "process.output":
                    data = msg["params"]["data"].encode()
                    got.update(data)
                    total += len(data)
                elif method == "process.output_batch":
                    async with asyncio.timeout(60):
                        payload = await ws.recv()
                    assert isinstance(payload, bytes)
                    assert msg["params"]["offset"] == total
                    got.update(payload)
                    total += len(payload)
                elif method == "process.completed":
                    assert msg["params"]["exit_code"] == 0
                    break
            assert total == size
            assert got.hexdigest() == expected.hexdigest()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ((), "without TLS"),
        (("--no-auth", "--insecure"), "--no-auth is for loopback only"),
    ],
    ids=["no-tls", "no-auth"],
)
def test_serve_refuses_public_address_without_tls_or_with_no_auth(
    tmp_path: Path, extra: tuple[str, ...], said: str
) -> None:
    """Off loopback a token is not enough (it would cross the network in the clear):
    TLS or an explicit --insecure; and --no-auth never.  (This used to check "refuses
    without --token": every server has a token now, made when none is given.)"""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccx_tui",
            "serve",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "CCX_TUI_TOKEN"},
    )
    assert proc.returncode == 2
    assert said.encode() in proc.stderr and b"Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


async def collect_batches(
    ws: ClientConnection,
) -> tuple[list[tuple[int, list[list[Any]], bytes]], list[dict[str, Any]]]:
    """(offset, runs, payload) of each batch, and the other messages, up to the end.

    Checks on the way that every payload is binary, directly follows its header and
    has the size the runs add up to, and that batches follow each other without gaps
    (but those a `process.output_lost` notice states, exactly).
    """
    batches: list[tuple[int, list[list[Any]], bytes]] = []
    others: list[dict[str, Any]] = []
    skipped = 0  # bytes stated lost since the last batch
    while True:
        async with asyncio.timeout(20):
            frame = await ws.recv()
        assert isinstance(frame, str), "a binary frame without its header"
        msg = json.loads(frame)
        if msg.get("method") == "process.output_batch":
            async with asyncio.timeout(20):
                payload = await ws.recv()
            assert isinstance(payload, bytes)
            offset, runs = msg["params"]["offset"], msg["params"]["runs"]
            assert sum(n for _, n in runs) == len(payload) > 0
            if batches:
                last_offset, _, last_payload = batches[-1]
                assert offset == last_offset + len(last_payload) + skipped
            skipped = 0
            batches.append((offset, runs, payload))
            continue
        assert msg.get("method") != "process.output"  # never both formats at once
        if msg.get("method") == "process.output_lost":
            skipped += msg["params"]["bytes"]
        others.append(msg)
        if msg.get("method") in ("process.completed", "process.canceled", "process.error"):
            return batches, others


def streams_of(batches: list[tuple[int, list[list[Any]], bytes]]) -> dict[str, bytes]:
    out = {"stdout": b"", "stderr": b"", "meta": b""}
    for _, runs, payload in batches:
        pos = 0
        for stream, n in runs:
            out[stream] += payload[pos : pos + n]
            pos += n
    return out


def transcript_streams(data_dir: Path) -> tuple[bytes, dict[str, bytes]]:
    """The server's transcript, and its bytes per stream according to its sidecar."""
    (directory,) = [p.parent for p in (data_dir / "sessions").glob("*/transcript.log")]
    data = (directory / "transcript.log").read_bytes()
    segments = read_segments(directory / SIDECAR_NAME)
    out = {"stdout": b"", "stderr": b""}
    for i, seg in enumerate(segments):
        end = segments[i + 1].offset if i + 1 < len(segments) else len(data)
        out["stderr" if seg.stream == STDERR else "stdout"] += data[seg.offset : end]
    return data, out


async def test_batches_carry_raw_bytes_and_streams(data_dir: Path) -> None:
    """Extension: a client that sends `batch: true` gets the transcript's bytes as they
    are (3 MB of random bytes: invalid UTF-8 of every kind) in large binary frames,
    each after a header giving its offset and the stream of each run, and never a
    `process.output` frame."""
    size = 3_000_000
    command = (
        "echo first-err >&2; sleep 0.1; "
        f"head -c {size} /dev/urandom; echo; sleep 0.1; echo last-err >&2; exit 4"
    )
    async with running_server(data_dir) as server, connect(url(server), max_size=None) as ws:
        hello = await recv(ws)
        assert "batch" in hello["params"]["capabilities"]
        await call(ws, "execute", {"command": command, "batch": True}, 1)
        assert (await recv(ws))["result"]["status"] == "started"
        batches, others = await collect_batches(ws)
    assert others[0]["method"] == "process.started"
    assert others[-1]["method"] == "process.completed"
    assert others[-1]["params"]["exit_code"] == 4
    assert 3 <= len(batches) and batches[0][0] == 0
    assert max(len(payload) for _, _, payload in batches) <= BATCH_BYTES
    transcript, expected = transcript_streams(data_dir)
    assert b"".join(payload for _, _, payload in batches) == transcript
    got = streams_of(batches)
    assert got["stderr"] == expected["stderr"] == b"first-err\nlast-err\n"
    assert got["stdout"] == expected["stdout"]
    assert len(got["stdout"]) == size + 1


async def test_batches_end_on_line_boundaries_while_more_follows(data_dir: Path) -> None:
    """A batch cut at BATCH_BYTES ends after its last newline, so clients get whole
    lines; the rest of the line opens the next batch."""
    command = "yes abcdefghijklmnopqrstuvwxyz0123456789 | head -c 5000000"
    async with running_server(data_dir) as server, connect(url(server), max_size=None) as ws:
        await recv(ws)
        await call(ws, "execute", {"command": command, "batch": True}, 1)
        await recv(ws)
        batches, _ = await collect_batches(ws)
    assert (
        b"".join(payload for _, _, payload in batches)
        == (b"abcdefghijklmnopqrstuvwxyz0123456789\n" * 200_000)[:5_000_000]
    )
    assert all(payload.endswith(b"\n") for _, _, payload in batches[:-1])


async def test_upstream_clients_never_see_batches(data_dir: Path) -> None:
    """An upstream client never sends `batch: true` (or sends something else under
    that name): it gets text frames only, one `process.output` per line, decoded
    with replacement exactly as upstream does, even for a detachable session."""
    command = "printf 'a\\377b\\n'; echo e >&2; head -c 100000 /dev/zero | tr '\\0' x"
    for params in ({}, {"batch": "yes", "detachable": True}, {"batch": 1}):
        async with running_server(data_dir) as server, connect(url(server)) as ws:
            await recv(ws)
            await call(ws, "execute", {"command": command, **params}, 1)
            seen = []
            while True:
                async with asyncio.timeout(20):
                    frame = await ws.recv()
                assert isinstance(frame, str), "a binary frame to an upstream client"
                msg = json.loads(frame)
                seen.append(msg)
                if msg.get("method") == "process.completed":
                    break
        methods = {m.get("method") for m in seen}
        assert "process.output_batch" not in methods
        out = {"stdout": "", "stderr": ""}
        for m in seen:
            if m.get("method") == "process.output":
                out[m["params"]["type"]] += m["params"]["data"]
        assert out == {"stdout": "a\ufffdb\n" + "x" * 100000, "stderr": "e\n"}


async def test_batched_attach_replays_from_any_byte_offset(data_dir: Path) -> None:
    """Extension: with batches a client can resume from any byte it has, even in the
    middle of a line; the replay goes on from exactly that byte, in batches."""
    command = "for i in 1 2 3; do echo line$i; done; sleep 0.5; printf 'after\\n'"
    async with running_server(data_dir) as server:
        async with connect(url(server)) as ws:
            await recv(ws)
            params = {"command": command, "detachable": True, "batch": True}
            await call(ws, "execute", params, 1)
            sid = (await recv(ws))["result"]["session"]
            got = b""
            while got.count(b"\n") < 3:
                msg = await recv(ws)
                if msg.get("method") == "process.output_batch":
                    async with asyncio.timeout(20):
                        payload = await ws.recv()
                    assert isinstance(payload, bytes)
                    got += payload
        assert got == b"line1\nline2\nline3\n"
        async with connect(url(server)) as ws:
            await recv(ws)
            await call(ws, "session.attach", {"session_id": sid, "offset": 8, "batch": True}, 2)
            assert (await recv(ws))["result"]["status"] == "attached"
            batches, others = await collect_batches(ws)
        assert batches[0][0] == 8
        assert got[:8] + b"".join(p for _, _, p in batches) == b"line1\nline2\nline3\nafter\n"
        assert others[-1]["params"]["exit_code"] == 0


async def test_a_watcher_leaving_never_ends_the_owners_job(data_dir: Path, tmp_path: Path) -> None:
    """Regression: a second client attached to a session and left, and 30 s later the
    owner's job was killed.  Now only the owner's leaving starts the reattach-grace
    countdown: you should see no countdown after the watcher leaves, and the job run
    to its own end (exit 0) although the grace here is only 0.05 s."""
    release = tmp_path / "release"
    command = f"echo up; while [ ! -e {release} ]; do sleep 0.01; done; echo done"
    async with running_server(data_dir, reattach_grace=0.05) as server:
        async with connect(url(server)) as owner:
            await recv(owner)
            await call(owner, "execute", {"command": command, "detachable": True}, 1)
            sid = (await recv(owner))["result"]["session"]
            async with connect(url(server)) as watcher:
                await recv(watcher)
                await call(watcher, "session.attach", {"session_id": sid, "offset": 0}, 1)
                assert (await recv(watcher))["result"]["status"] == "attached"
            await until(lambda: server.health()["active_sessions"] == 1, what="watcher gone")
            assert sid not in server.orphaned
            assert server.engine.get(sid).state.live
            release.touch()
            seen, end = await until_terminal(owner)
        assert end["method"] == "process.completed" and end["params"]["exit_code"] == 0
        out = "".join(m["params"]["data"] for m in seen if m["method"] == "process.output")
        assert out == "up\ndone\n"


async def test_the_countdown_starts_once_the_owner_is_gone_and_nobody_watches(
    data_dir: Path,
) -> None:
    """The owner leaves while a watcher is attached: the session lives on (someone
    follows it); when the watcher leaves too, the grace countdown runs and ends it."""
    async with running_server(data_dir, reattach_grace=0.05) as server:
        async with connect(url(server)) as watcher:
            async with connect(url(server)) as owner:
                await recv(owner)
                params = {"command": "echo up; sleep 1000", "detachable": True}
                await call(owner, "execute", params, 1)
                sid = (await recv(owner))["result"]["session"]
                await recv(watcher)
                await call(watcher, "session.attach", {"session_id": sid, "offset": 0}, 1)
                assert (await recv(watcher))["result"]["status"] == "attached"
            await until(lambda: server.health()["active_sessions"] == 1, what="owner gone")
            assert sid not in server.orphaned
            assert server.engine.get(sid).state.live
        info = await asyncio.wait_for(server.engine.wait(sid), 20)
        assert info.state.value == "killed" and info.reason == "client gone"
    assert wait_gone(sid) == []


@pytest.mark.parametrize("how", ["disconnect", "cancel"])
async def test_a_queued_execute_never_starts_once_its_client_is_done_with_it(
    data_dir: Path, tmp_path: Path, how: str
) -> None:
    """Regression: the server at its limit queues an `execute`; its client leaves (or
    sends CANCEL) before a slot frees.  The command used to start all the same when
    the slot freed (its connection could not even read the CANCEL meanwhile).  You
    should see the session end `killed` without ever starting, and its command never
    run; a CANCEL gets its answer, and the execute an error."""
    release, ran = tmp_path / "release", tmp_path / "ran"
    async with running_server(data_dir, max_sessions=1) as server:
        async with connect(url(server)) as first:
            await recv(first)
            command = f"while [ ! -e {release} ]; do sleep 0.01; done"
            await call(first, "execute", {"command": command}, 1)
            assert (await recv(first))["result"]["status"] == "started"
            async with connect(url(server)) as queued:
                await recv(queued)
                await call(queued, "execute", {"command": f"touch {ran}"}, 1)
                await until(lambda: len(server.engine.sessions()) == 2, what="second session")
                sid = server.engine.sessions()[-1].id
                assert server.engine.get(sid).state.value == "queued"
                if how == "cancel":
                    await call(queued, "control", {"type": "CANCEL"}, 2)
                    replies = {m["id"]: m for m in [await recv(queued), await recv(queued)]}
                    assert replies[2]["result"] == {"status": "canceled"}
                    assert replies[1]["error"]["message"] == "Canceled before it started"
            await until(lambda: server.engine.get(sid).state.final, what="queued one dropped")
            release.touch()
            _, end = await until_terminal(first)
            assert end["params"]["exit_code"] == 0
        info = server.engine.get(sid)
        assert info.state.value == "killed" and info.started_at is None
    assert not ran.exists()


async def test_bad_numbers_get_invalid_params_and_the_connection_stays(data_dir: Path) -> None:
    """Regression: a 400-digit `ttl` raised OverflowError and closed the connection
    with 1011.  Every numeric param (ttl, timeout, offset) is checked: you should see a
    -32602 error for each, then the same connection run a command."""
    huge = int("9" * 400)
    bad: list[tuple[str, dict[str, Any]]] = [
        ("execute", {"command": "true", "ttl": huge}),
        ("execute", {"command": "true", "ttl": -1}),
        ("execute", {"command": "true", "ttl": "5"}),
        ("execute", {"command": "true", "ttl": True}),
        ("execute", {"command": "true", "timeout": huge}),
        ("execute", {"command": "true", "timeout": 1e400}),
        ("execute", {"command": "true", "env": {"A": 1}}),
        ("execute", {"command": "true", "cwd": 5}),
        ("session.attach", {"session_id": "x", "offset": huge}),
        ("session.attach", {"session_id": "x", "offset": -1}),
    ]
    async with running_server(data_dir) as server, connect(url(server)) as ws:
        await recv(ws)
        for msg_id, (method, params) in enumerate(bad, 1):
            await call(ws, method, params, msg_id)
            reply = await recv(ws)
            assert reply["id"] == msg_id and reply["error"]["code"] == -32602, (params, reply)
            assert "Invalid params" in reply["error"]["message"]
        await call(ws, "execute", {"command": "echo still-alive", "ttl": 60, "timeout": 0}, 99)
        assert (await recv(ws))["result"]["status"] == "started"
        seen, end = await until_terminal(ws)
        assert any(m.get("params", {}).get("data") == "still-alive\n" for m in seen)
        assert server.engine.sessions()[-1].spec.ttl == 60


async def test_env_is_a_param_and_never_listed(data_dir: Path) -> None:
    """`connected` offers cwd/env/ttl; `env` reaches the process and nowhere else:
    not its command line, not `sessions.list`."""
    async with running_server(data_dir) as server, connect(url(server)) as ws:
        hello = await recv(ws)
        assert {"cwd", "env", "ttl"} <= set(hello["params"]["capabilities"])
        params = {"command": 'echo "$API_KEY"', "env": {"API_KEY": "sekrit-value"}}
        await call(ws, "execute", params, 1)
        await recv(ws)
        seen, _ = await until_terminal(ws)
        assert any(m.get("params", {}).get("data") == "sekrit-value\n" for m in seen)
        await call(ws, "sessions.list", {}, 2)
        listing = await recv(ws)
    assert listing["result"][0]["command"] == 'echo "$API_KEY"'
    assert "sekrit-value" not in json.dumps(listing)
