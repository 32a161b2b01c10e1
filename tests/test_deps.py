"""Start order and readiness (issue 13): depends_on and ready_when, with real
processes, ports and files."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

from ccx_tui.engine import SessionSpec, State
from ccx_tui.engine.sessions.deps import find_cycle
from tests.helpers import until

PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_dependent_waits_until_its_dependency_is_ready_by_its_log(make_engine) -> None:
    """api waits ("waiting for db (ready)") while db starts, and starts once db's
    output shows the line its ready_when looks for."""
    async with make_engine() as engine:
        db_spec = SessionSpec(
            "echo starting; read go; echo 'db listening'; sleep 100",
            name="db",
            tty=True,
            ready_when={"log": "^db listening$"},
        )
        db = await engine.start(db_spec)
        api = await engine.start(
            SessionSpec("echo api up; sleep 100", name="api", depends_on={"db": "ready"})
        )
        await until(lambda: engine.get(db.id).state is State.RUNNING)
        await until(lambda: b"starting" in db.transcript.read_bytes())
        assert engine.get(api.id).state is State.QUEUED
        assert engine.get(api.id).reason == "waiting for db (ready)"
        assert engine.get(db.id).ready_at is None
        await engine.send_input(db.id, b"\r")
        await until(lambda: engine.get(api.id).state is State.RUNNING, what="api started")
        ready_at = engine.get(db.id).ready_at
        assert ready_at is not None and ready_at <= (engine.get(api.id).started_at or 0)
        await engine.kill_all()


async def test_succeeded_starts_after_exit_0_and_fails_after_exit_1(make_engine) -> None:
    async with make_engine() as engine:
        ok = await engine.start(SessionSpec("sleep 0.3", name="migrate"))
        after = await engine.start(
            SessionSpec("echo served", name="serve", depends_on={"migrate": "succeeded"})
        )
        assert engine.get(after.id).state is State.QUEUED
        done = await engine.wait(after.id)
        assert done.state is State.EXITED
        assert (done.started_at or 0) >= (engine.get(ok.id).ended_at or 0)

        bad = await engine.start(SessionSpec("exit 1", name="check"))
        blocked = await engine.start(
            SessionSpec("echo never", name="deploy", depends_on={"check": "succeeded"})
        )
        failed = await engine.wait(blocked.id)
        assert (await engine.wait(bad.id)).exit_code == 1
        assert failed.state is State.FAILED
        assert failed.reason == "dependency check exited 1"
        assert failed.transcript.read_bytes() == b""


async def test_tcp_http_and_exec_probes(make_engine, tmp_path: Path) -> None:
    tcp_port, http_port = free_port(), free_port()
    flag = tmp_path / "flag"
    async with make_engine() as engine:
        tcp = await engine.start(
            SessionSpec(
                f"sleep 0.3; {PY} -c 'import socket,time; s=socket.socket(); "
                f's.bind(("127.0.0.1",{tcp_port})); s.listen(); time.sleep(100)\'',
                name="tcp",
                ready_when={"tcp": str(tcp_port)},
            )
        )
        http = await engine.start(
            SessionSpec(
                f"{PY} -m http.server --bind 127.0.0.1 {http_port}",
                name="web",
                cwd=str(tmp_path),
                ready_when={"http": f"http://127.0.0.1:{http_port}/"},
            )
        )
        execd = await engine.start(
            SessionSpec("sleep 100", name="flagged", ready_when={"exec": f"test -f {flag}"})
        )
        waiting = await engine.start(
            SessionSpec(
                "echo all up",
                name="all",
                depends_on={"tcp": "ready", "web": "ready", "flagged": "ready"},
            )
        )
        await until(lambda: engine.get(tcp.id).ready_at is not None, what="tcp ready")
        await until(lambda: engine.get(http.id).ready_at is not None, what="http ready")
        assert engine.get(waiting.id).reason == "waiting for flagged (ready)"
        assert engine.get(execd.id).ready_at is None
        await asyncio.to_thread(flag.touch)
        done = await engine.wait(waiting.id)
        assert done.state is State.EXITED
        await engine.kill_all()


async def test_a_missing_dependency_is_waited_for(make_engine) -> None:
    async with make_engine() as engine:
        later = await engine.start(SessionSpec("echo ok", name="b", depends_on={"a": "started"}))
        assert engine.get(later.id).reason == "waiting for a (not started yet)"
        await engine.start(SessionSpec("sleep 100", name="a"))
        assert (await engine.wait(later.id)).state is State.EXITED
        await engine.kill_all()


async def test_kill_all_stops_dependents_first(make_engine) -> None:
    """On quit, what depends on others is gone before what it depends on gets TERM."""
    async with make_engine(kill_grace=1.0) as engine:
        db = await engine.start(SessionSpec("sleep 100", name="db"))
        api = await engine.start(
            SessionSpec(
                "trap 'sleep 0.3; exit 0' TERM; sleep 100 & wait",
                name="api",
                depends_on={"db": "started"},
            )
        )
        await until(lambda: engine.get(api.id).state is State.RUNNING)
        await until(lambda: engine.get(api.id).pid is not None)
        await engine.kill_all()
        api_end, db_end = engine.get(api.id).ended_at, engine.get(db.id).ended_at
        assert api_end is not None and db_end is not None and api_end <= db_end


def test_find_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a"]}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def _load(tmp_path: Path, text: str):  # noqa: ANN202
    from ccx_tui.config_file import load_config

    path = tmp_path / "ccx.toml"
    path.write_text(text)
    return load_config(path)


def test_ccx_toml_declares_start_order_and_readiness(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
[[session]]
name = "db"
command = "postgres"
ready_when = { tcp = 5432 }

[[session]]
name = "api"
command = "python app.py"
depends_on = ["db"]
ready_when = { http = "http://127.0.0.1:8000/health" }

[[session]]
name = "e2e"
command = "pytest e2e"
depends_on = { api = "ready", db = "started" }
""",
    )
    db, api, e2e = (d.spec for d in config.sessions)
    assert db.ready_when == {"tcp": "5432"}
    assert api.depends_on == {"db": "ready"}
    assert api.ready_when == {"http": "http://127.0.0.1:8000/health"}
    assert e2e.depends_on == {"api": "ready", "db": "started"}


def test_bad_dependencies_are_located_errors(tmp_path: Path) -> None:
    import pytest

    from ccx_tui.errors import ConfigError

    cases = [
        ('depends_on = ["dbb"]', ":7: ", "no session named 'dbb' (did you mean 'db'?)"),
        ('depends_on = { db = "healthy" }', ":7: ", "bad condition 'healthy'"),
        ("ready_when = { port = 1 }", ":7: ", "give exactly one of http, tcp, log, exec"),
        ('ready_when = { log = "([" }', ":7: ", "bad regex"),
        ('ready_when = { http = "ws://x" }', ":7: ", "an http:// or https:// URL"),
    ]
    for line, where, message in cases:
        text = (
            '[[session]]\nname = "db"\ncommand = "x"\n\n'
            f'[[session]]\nname = "api"\n{line}\ncommand = "y"\n'
        )
        with pytest.raises(ConfigError) as caught:
            _load(tmp_path, text)
        assert where in str(caught.value) and message in str(caught.value), str(caught.value)
    cycle = (
        '[[session]]\nname = "a"\ncommand = "x"\ndepends_on = ["b"]\n\n'
        '[[session]]\nname = "b"\ncommand = "y"\ndepends_on = ["a"]\n'
    )
    with pytest.raises(ConfigError, match=r"ccx.toml:4: .*a cycle: a -> b -> a"):
        _load(tmp_path, cycle)


async def test_the_app_says_what_a_session_waits_for(data_dir: Path) -> None:
    """Declared sessions: the sidebar says what api waits for and that db is not ready
    yet; ctrl+x stops them all (after asking)."""
    from ccx_tui.app import make_app
    from ccx_tui.config import DeclaredSession, Settings
    from tests.test_app import SIZE, screen_text

    db = SessionSpec(
        "echo booting; sleep 100", name="db", ready_when={"log": "accepting connections"}
    )
    api = SessionSpec("echo api; sleep 100", name="api", depends_on={"db": "ready"})
    app = make_app(
        Settings(data_dir=data_dir, kill_grace=0.3),
        [],
        declared=[DeclaredSession(api), DeclaredSession(db)],
        sample_usage=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: "waiting for db (ready)" in screen_text(app), what="api waits")
        await until(lambda: "not ready yet (log" in screen_text(app), what="db not ready")
        await pilot.press("ctrl+x")
        await until(lambda: "Stop 2 running or queued" in screen_text(app), what="asked")
        await pilot.press("y")
        await until(lambda: all(i.state.final for i in app.engine.current()), what="stopped")


def test_bad_probes_are_refused_when_the_session_is_made() -> None:
    import pytest

    from ccx_tui.errors import InvalidCommand

    for probe in ({"log": "(["}, {"tcp": "port 80"}, {"http": " "}, {"port": "1"}):
        with pytest.raises(InvalidCommand, match="ready_when"):
            SessionSpec("x", ready_when=probe).validated()
    with pytest.raises(InvalidCommand, match="bad condition"):
        SessionSpec("x", depends_on={"db": "healthy"}).validated()
