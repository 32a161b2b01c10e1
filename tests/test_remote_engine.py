"""RemoteEngine: remote sessions behave like local ones (states, TTL, kill, restart,
pause, transcripts), against the fake upstream and our own server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccx_tui.engine.server.server import CcxServer, ServeConfig
from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.transcripts.transcript import SIDECAR_NAME, STDERR, STDOUT, read_segments
from ccx_tui.engine.wire.remote_engine import RemoteEngine
from tests.fake_upstream import FakeUpstream
from tests.helpers import until


def engine_for(url: str, data_dir: Path, **kw: object) -> RemoteEngine:
    kw.setdefault("kill_grace", 0.5)
    config = EngineConfig(data_dir=data_dir, **kw)  # type: ignore[arg-type]
    return RemoteEngine(config, url, token="tok")  # our servers here all want "tok"


async def test_remote_session_like_a_local_one(data_dir: Path) -> None:
    async with FakeUpstream() as fake, engine_for(fake.url, data_dir) as engine:
        info = await engine.start(SessionSpec("echo out; echo err >&2; exit 3"))
        done = await engine.wait(info.id)
        assert done.state is State.EXITED and done.exit_code == 3
        assert done.location == fake.url
        assert sorted(done.transcript.read_bytes().splitlines()) == [b"err", b"out"]
        await until(lambda: engine.status.startswith("connected"), what="health probe")


async def test_remote_ttl_kill_restart(data_dir: Path) -> None:
    async with FakeUpstream(kill_grace=0.3) as fake, engine_for(fake.url, data_dir) as engine:
        expiring = await engine.start(SessionSpec("sleep 1000", ttl=0.5))
        assert (await engine.wait(expiring.id)).state is State.EXPIRED
        info = await engine.start(SessionSpec("echo run; trap '' TERM; sleep 1000"))
        await until(lambda: engine.get(info.id).bytes >= 4)
        await engine.restart(info.id)
        await until(lambda: engine.get(info.id).run == 2 and engine.get(info.id).bytes >= 8)
        await engine.kill(info.id)
        assert engine.get(info.id).state is State.KILLED
        assert info.transcript.read_bytes() == b"run\nrun\n"


async def test_server_session_limit_queues_locally(data_dir: Path) -> None:
    """The server allows one connection: the second session waits `queued` with the
    reason, and starts when the first ends."""
    async with FakeUpstream(max_sessions=1) as fake, engine_for(fake.url, data_dir) as engine:
        first = await engine.start(SessionSpec("sleep 1"))
        await until(lambda: engine.get(first.id).pid is not None)
        second = await engine.start(SessionSpec("echo second"))
        await until(
            lambda: "session limit" in (engine.get(second.id).reason or ""),
            what="requeued with a reason",
        )
        assert engine.get(second.id).state is State.QUEUED
        done = await asyncio.wait_for(engine.wait(second.id), 30)
        assert done.state is State.EXITED
        assert done.transcript.read_bytes() == b"second\n"


async def test_unreachable_server_fails_fast_with_reason(data_dir: Path) -> None:
    async with engine_for("ws://127.0.0.1:9/ws/mcp", data_dir) as engine:
        info = await engine.start(SessionSpec("true"))
        done = await asyncio.wait_for(engine.wait(info.id), 30)
        assert done.state is State.FAILED and "cannot connect" in (done.reason or "")
        await until(lambda: engine.status.startswith("unreachable"))


async def test_pause_resume_against_our_server(data_dir: Path) -> None:
    async with LocalEngine(EngineConfig(data_dir=data_dir / "srv", kill_grace=0.3)) as local:
        async with CcxServer(local, ServeConfig(port=0, token="tok")) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/mcp"
            async with engine_for(url, data_dir / "cli") as engine:
                info = await engine.start(SessionSpec("while true; do echo tick; sleep 0.05; done"))
                await until(lambda: engine.get(info.id).bytes > 0)
                await engine.pause(info.id)
                assert engine.get(info.id).state is State.PAUSED
                await until(lambda: local.sessions()[-1].state is State.PAUSED)
                await engine.resume(info.id)
                await until(lambda: local.sessions()[-1].state is State.RUNNING)
                await engine.kill(info.id)
                assert engine.get(info.id).state is State.KILLED
            await until(lambda: local.sessions()[-1].state.final, what="server side ended")


async def test_streams_survive_into_the_local_transcript(data_dir: Path) -> None:
    """Against our server output comes in batches of raw bytes with the stream of each
    run: the local transcript keeps every line on its stream (stderr stays tinted),
    and invalid UTF-8 stays as it was."""
    command = "for i in $(seq 1 200); do printf 'out-%d\\377\\n' $i; echo err-$i >&2; done"
    async with LocalEngine(EngineConfig(data_dir=data_dir / "srv", kill_grace=0.3)) as local:
        async with CcxServer(local, ServeConfig(port=0, token="tok")) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/mcp"
            async with engine_for(url, data_dir / "cli") as engine:
                info = await engine.start(SessionSpec(command))
                done = await asyncio.wait_for(engine.wait(info.id), 30)
    assert done.state is State.EXITED
    data = done.transcript.read_bytes()
    segments = read_segments(done.transcript.parent / SIDECAR_NAME)
    lines, pos = [], 0
    for line in data.splitlines(keepends=True):
        stream = [seg.stream for seg in segments if seg.offset <= pos][-1]
        lines.append((line, stream))
        pos += len(line)
    assert sorted(line for line, _ in lines) == sorted(
        [b"out-%d\xff\n" % i for i in range(1, 201)] + [b"err-%d\n" % i for i in range(1, 201)]
    )
    assert all((stream == STDERR) == line.startswith(b"err-") for line, stream in lines)
    assert {stream for _, stream in lines} == {STDOUT, STDERR}


async def test_a_wrong_token_shows_as_refused_and_the_load_is_the_servers(
    data_dir: Path, tmp_path: Path
) -> None:
    """Before any session is tried, a server that says the token is wrong shows
    "refused: bad token" (not "connected"); with the right token the status has the
    server's real process count and limit."""
    config = EngineConfig(data_dir=tmp_path / "server", max_sessions=7)
    async with LocalEngine(config) as local:
        async with CcxServer(local, ServeConfig(port=0, token="tok")) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/mcp"
            wrong = RemoteEngine(EngineConfig(data_dir=data_dir), url, token="nope")
            async with wrong:
                await until(lambda: wrong.status == "refused: bad token", what=lambda: wrong.status)
            async with engine_for(url, tmp_path / "client") as right:
                await until(
                    lambda: right.status == "connected (running 0/7)", what=lambda: right.status
                )


async def test_a_dead_servers_sessions_are_lost_within_seconds(
    data_dir: Path, tmp_path: Path
) -> None:
    """The server goes away (nothing listens on its port any more): its sessions turn
    `lost` once reconnecting has been refused for a few seconds, not after every retry
    of a network blip (about 16 s)."""
    local = LocalEngine(EngineConfig(data_dir=tmp_path / "server", kill_grace=0.3))
    await local.open()
    server = CcxServer(local, ServeConfig(port=0, token="tok"))
    await server.__aenter__()
    url = f"ws://127.0.0.1:{server.port}/ws/mcp"
    async with engine_for(url, data_dir) as engine:
        info = await engine.start(SessionSpec("sleep 100"))
        await until(lambda: engine.get(info.id).pid is not None, what="running remotely")
        await server.__aexit__(None, None, None)
        await local.aclose()
        await until(lambda: engine.get(info.id).state is State.LOST, timeout=10)
