"""Clients of a real engine process (ccx-tui engine) over its Unix socket."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import unix_connect

from ccx_tui.app import make_app
from ccx_tui.config import Settings
from ccx_tui.engine.server.paths import engine_pid, socket_path
from ccx_tui.engine.sessions.events import SessionAdded, UsageSampled
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.client import EngineClient
from ccx_tui.engine.wire.unixsock import WS_URI
from tests.helpers import until, wait_gone_for


def client(data_dir: Path, **options: object) -> EngineClient:
    return EngineClient(data_dir, engine_args=("--kill-grace", "0.3"), **options)  # type: ignore[arg-type]


async def test_two_clients_see_the_same_sessions(data_dir: Path) -> None:
    """A session started by one client appears in the other, with its output counts;
    a kill from the second shows in the first."""
    first, second = client(data_dir), client(data_dir)
    await first.open()
    await second.open()
    try:
        sub = second.subscribe()
        info = await first.start(SessionSpec("echo shared; sleep 1000"))
        added = await asyncio.wait_for(sub.get(), 10)
        while isinstance(added, UsageSampled):  # the engine's figures may come first
            added = await asyncio.wait_for(sub.get(), 10)
        assert isinstance(added, SessionAdded) and added.info.id == info.id
        await until(lambda: second.get(info.id).bytes == len(b"shared\n"), what="output count")
        await second.kill(info.id)
        assert second.get(info.id).state is State.KILLED  # known when kill returns
        await until(lambda: first.get(info.id).state is State.KILLED, what="first sees it")
        assert first.engine_pid == second.engine_pid == engine_pid(data_dir)
    finally:
        await first.aclose()
        await second.aclose()
    assert wait_gone_for(data_dir) == []


async def test_sessions_get_the_clients_environment_minus_secrets(data_dir: Path) -> None:
    """The engine process was started by someone else, with another environment: a
    session still sees its own client's variables (a venv's PATH), never a secret."""
    environ = {"PATH": os.environ["PATH"], "FROM_CLIENT": "yes", "CCX_TUI_TOKEN": "s3cret"}
    engine = client(data_dir, environ=environ, scrub_env=frozenset({"MY_TOKEN"}))
    await engine.open()
    try:
        environ["MY_TOKEN"] = "hidden"
        info = await engine.start(SessionSpec("echo [$FROM_CLIENT][$CCX_TUI_TOKEN][$MY_TOKEN]"))
        await until(lambda: engine.get(info.id).state.final, what="done")
        assert info.transcript.read_bytes() == b"[yes][][]\n"
    finally:
        await engine.aclose()


async def test_a_client_that_reads_nothing_never_stalls_the_engine(data_dir: Path) -> None:
    """A subscriber that never reads while a session floods output: the session still
    runs to its end at full speed, byte-exact, and other clients are served."""
    sock = socket_path(data_dir)
    engine = client(data_dir)
    await engine.open()
    stuck = await unix_connect(str(sock), WS_URI, max_size=None, compression=None)
    try:
        await stuck.send(p.encode_request("engine.subscribe", {}, 1))
        stuck.transport.pause_reading()  # reads nothing from now on
        info = await engine.start(SessionSpec("seq 1 400000"))
        await until(lambda: engine.get(info.id).state.final, what="the flood ends", timeout=60)
        expected = "".join(f"{i}\n" for i in range(1, 400001)).encode()
        assert info.transcript.read_bytes() == expected
        other = await engine.start(SessionSpec("echo still-served"))
        await until(lambda: engine.get(other.id).state.final, what="another session")
    finally:
        stuck.transport.abort()
        await engine.aclose()


async def test_a_killed_engine_is_replaced_and_its_sessions_accounted_for(
    data_dir: Path,
) -> None:
    """SIGKILL the engine process: the client starts a new one and catches up; the
    session shows as interrupted and none of its processes is left running."""
    engine = client(data_dir)
    await engine.open()
    try:
        info = await engine.start(SessionSpec("sleep 1000"))
        old = engine.engine_pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await until(
            lambda: engine.engine_pid not in (None, old) and engine.status == "connected",
            what="a new engine",
            timeout=30,
        )
        await until(lambda: engine.get(info.id).state is State.INTERRUPTED, what="interrupted")
        assert wait_gone_for(data_dir) == []
    finally:
        await engine.aclose()


async def test_a_crash_in_the_ui_leaves_every_session_running(data_dir: Path) -> None:
    """An exception in a widget ends the app (Textual's rule), but the sessions are
    the engine process's: they run on, and the next app attaches to them."""
    settings = Settings(data_dir=data_dir, kill_grace=0.3)
    app = make_app(settings, ["echo survivor; sleep 1000"], sample_usage=False)

    def boom() -> None:
        raise RuntimeError("a bug in a widget")

    with pytest.raises(RuntimeError, match="a bug in a widget"):
        async with app.run_test():
            await until(lambda: len(app._open) == 1 and app.engine.stats.running == 1)
            sid = app._open[0]
            app._sidebar.call_later(boom)
            await until(lambda: not app.is_running, what="the app died")
    again = client(data_dir)
    await again.open()
    try:
        assert again.get(sid).state is State.RUNNING
        assert [i.id for i in again.current()] == [sid]
        assert again.get(sid).transcript.read_bytes() == b"survivor\r\n"  # a terminal's
        await again.kill_all()
    finally:
        await again.aclose()


async def test_cpu_and_memory_come_from_the_engine_process(data_dir: Path) -> None:
    """The engine samples its sessions' trees once a second and sends the figures to
    subscribed clients: the app no longer walks /proc itself (a fifth of its CPU with
    100 sessions)."""
    engine = client(data_dir)
    await engine.open()
    try:
        sub = engine.subscribe()
        info = await engine.start(SessionSpec("sleep 1000"))
        while True:
            event = await asyncio.wait_for(sub.get(), 10)
            if isinstance(event, UsageSampled) and info.id in event.usage:
                break
        assert event.usage[info.id].rss > 0
        await engine.kill(info.id)
    finally:
        await engine.aclose()
