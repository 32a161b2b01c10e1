"""Sessions on a pseudo-terminal (issue 12): the program sees a real terminal.

Real processes on real PTYs, through LocalEngine: line-buffered output, isatty, the
terminal's size and its changes, typed input, ctrl+c as the terminal's interrupt,
kill/pause/TTL over the whole tree, and the transcript holding exactly what the
program wrote to the terminal.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from pathlib import Path

import pytest

from ccx_tui.engine import SessionSpec, State
from ccx_tui.engine.sessions.local import LocalEngine
from ccx_tui.errors import InvalidCommand, InvalidTransition
from tests.helpers import until, wait_gone_for

PY = sys.executable


def py(code: str) -> str:
    return f"{PY} -c {shlex.quote(code)}"


def tty(command: str, **kwargs: object) -> SessionSpec:
    return SessionSpec(command, tty=True, **kwargs)  # type: ignore[arg-type]


def text(engine: LocalEngine, session_id: str) -> str:
    return engine.get(session_id).transcript.read_bytes().decode(errors="replace")


async def test_a_print_shows_at_once_without_pythonunbuffered(make_engine) -> None:
    """The first thing that broke on pipes: Python block-buffers stdout, so `hello`
    stayed hidden until exit.  On a terminal it is line-buffered: it reaches the
    transcript while the program still runs."""
    code = 'print("hello"); import time; time.sleep(60)'
    async with make_engine() as engine:
        info = await engine.start(tty(py(code), env={"PYTHONUNBUFFERED": ""}))
        await until(lambda: "hello" in text(engine, info.id), what="hello")
        assert engine.get(info.id).state is State.RUNNING
        await engine.kill(info.id)
        assert engine.get(info.id).state is State.KILLED


async def test_the_program_has_a_terminal_of_the_given_size(make_engine) -> None:
    """stdin and stdout are terminals, stderr shares them, TERM is set, `tput cols`
    and `tput lines` are the size asked for, and the terminal is the session's
    controlling terminal (the shell is its foreground job)."""
    command = (
        "test -t 0 -a -t 1 -a -t 2 && echo istty; echo err >&2; echo term=$TERM; "
        "echo cols=$(tput cols) lines=$(tput lines); ps -o stat= -p $$"
    )
    async with make_engine() as engine:
        info = await engine.start(tty(command, cols=123, rows=45))
        info = await engine.wait(info.id)
    out = info.transcript.read_bytes()
    assert info.exit_code == 0
    assert b"istty\r\nerr\r\nterm=xterm-256color\r\ncols=123 lines=45\r\n" in out
    assert b"+" in out.splitlines()[-1]  # ps: in the foreground group of its terminal


async def test_a_resize_reaches_the_program_as_sigwinch(make_engine) -> None:
    """The view resizes the terminal: the program gets SIGWINCH and sees the size."""
    command = (
        "trap 'echo now=$(tput cols)x$(tput lines)' WINCH; echo ready; while :; do sleep 0.05; done"
    )
    async with make_engine() as engine:
        info = await engine.start(tty(command))
        await until(lambda: "ready" in text(engine, info.id))
        await engine.resize(info.id, 100, 30)
        shown = lambda: text(engine, info.id)  # noqa: E731
        await until(lambda: "now=100x30" in shown(), what=shown)
        await engine.kill(info.id)


async def test_typed_input_answers_a_prompt(make_engine) -> None:
    """`read -p` waits for the user (on pipes it got EOF at once); what is typed
    reaches it, and the terminal echoes it into the transcript as any terminal does."""
    command = 'printf "Continue? [y/N] "; read answer; echo "answer=$answer"'
    async with make_engine() as engine:
        info = await engine.start(tty(command))
        await until(lambda: "Continue?" in text(engine, info.id))
        assert engine.get(info.id).state is State.RUNNING
        await engine.send_input(info.id, b"yes\r")
        info = await engine.wait(info.id)
    assert info.exit_code == 0
    assert info.transcript.read_bytes() == b"Continue? [y/N] yes\r\nanswer=yes\r\n"


async def test_ctrl_c_typed_interrupts_the_foreground_job(make_engine) -> None:
    """ctrl+c is the terminal's interrupt: the foreground job gets SIGINT."""
    command = "trap 'echo caught; exit 7' INT; echo ready; while :; do sleep 0.05; done"
    async with make_engine() as engine:
        info = await engine.start(tty(command))
        await until(lambda: "ready" in text(engine, info.id))
        await engine.send_input(info.id, b"\x03")
        info = await engine.wait(info.id)
    assert info.state is State.EXITED and info.exit_code == 7
    assert b"caught" in info.transcript.read_bytes()


async def test_input_to_a_session_on_pipes_says_why_not(make_engine) -> None:
    async with make_engine() as engine:
        info = await engine.start(SessionSpec("sleep 30"))
        with pytest.raises(InvalidTransition, match="runs on pipes"):
            await engine.send_input(info.id, b"x")
        await engine.resize(info.id, 100, 30)  # nothing to resize: not an error
        await engine.kill(info.id)
        done = await engine.start(tty("true"))
        await engine.wait(done.id)
        with pytest.raises(InvalidTransition, match="exited"):
            await engine.send_input(done.id, b"x")
        with pytest.raises(InvalidCommand, match="columns"):
            await engine.resize(done.id, 0, 30)


async def test_bad_sizes_are_refused() -> None:
    for cols, rows in ((0, 24), (80, -1), (5000, 24), ("80", 24), (True, 24)):
        with pytest.raises(InvalidCommand, match="bad terminal"):
            tty("true", cols=cols, rows=rows).validated()


async def test_kill_pause_and_ttl_cover_the_whole_tree(make_engine, data_dir: Path) -> None:
    """Background jobs, a process that left the group, a paused tree: nothing
    survives a kill or a TTL, as with pipes."""
    command = "sleep 300 & setsid sleep 300 & echo started; sleep 300"
    async with make_engine() as engine:
        info = await engine.start(tty(command))
        await until(lambda: "started" in text(engine, info.id))
        await engine.pause(info.id)
        assert engine.get(info.id).state is State.PAUSED
        await engine.resume(info.id)
        await engine.kill(info.id)
        assert engine.get(info.id).state is State.KILLED
        expiring = await engine.start(tty(command, ttl=0.5))
        expiring = await engine.wait(expiring.id)
        assert expiring.state is State.EXPIRED
    assert wait_gone_for(data_dir) == []


async def test_the_shell_starts_in_the_cwd_and_a_missing_one_fails_clearly(
    make_engine, tmp_path: Path
) -> None:
    work = tmp_path / "work dir"
    work.mkdir()
    async with make_engine(max_sessions=1) as engine:
        info = await engine.start(tty("pwd", cwd=str(work)))
        info = await engine.wait(info.id)
        assert info.transcript.read_bytes() == str(work).encode() + b"\r\n"
        gone = tmp_path / "gone"
        gone.mkdir()
        blocker = await engine.start(tty("sleep 300"))
        queued = await engine.start(tty("pwd", cwd=str(gone)))  # checked now, run later
        assert queued.state is State.QUEUED
        gone.rmdir()
        await engine.kill(blocker.id)
        failed = await engine.wait(queued.id)
    assert failed.state is State.FAILED
    assert failed.reason == f"cannot enter directory {gone}: No such file or directory"


async def test_a_restart_runs_on_a_new_terminal_of_the_last_size(make_engine) -> None:
    command = "echo cols=$(tput cols); sleep 300"
    async with make_engine() as engine:
        info = await engine.start(tty(command, cols=90))
        await until(lambda: "cols=90" in text(engine, info.id))
        await engine.resize(info.id, 70, 20)
        await engine.restart(info.id)
        await until(lambda: "cols=70" in text(engine, info.id), what=lambda: text(engine, info.id))
        await engine.kill(info.id)


async def test_a_flood_through_the_terminal_is_byte_exact(make_engine, tmp_path: Path) -> None:
    """1 GiB of every byte value through the terminal, its output processing off
    (`stty raw`, as full-screen programs set it): the transcript holds exactly the
    bytes written, in order (bench/ measures its speed)."""
    code = (
        "import sys,hashlib,random\n"
        "r=random.Random(5); h=hashlib.sha256(); out=sys.stdout.buffer\n"
        "for _ in range(1024):\n"
        "    b=r.randbytes(1<<20); out.write(b); h.update(b)\n"
        "out.flush(); open(sys.argv[1],'w').write(h.hexdigest())\n"
    )
    async with make_engine() as engine:
        command = "stty raw -echo; " + py(code) + " digest"
        info = await engine.start(tty(command, cwd=str(tmp_path)))
        info = await engine.wait(info.id)
    assert info.exit_code == 0
    h = hashlib.sha256()
    with info.transcript.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    assert info.bytes == 1 << 30
    assert h.hexdigest() == (tmp_path / "digest").read_text()


async def test_a_ccx_tui_server_runs_a_terminal_session_and_takes_input(
    tmp_path: Path,
) -> None:
    """Remote: a ccx-tui server offers "tty"; its terminal has the size asked for,
    typed input reaches it, resize too.  An upstream server (pipes) says it cannot
    take input."""
    from ccx_tui.engine.sessions.local import EngineConfig
    from ccx_tui.engine.wire.remote_engine import RemoteEngine
    from tests.fake_upstream import FakeUpstream
    from tests.test_server import TOKEN, running_server, url

    command = (
        "trap 'echo now=$(tput cols)' WINCH; echo cols=$(tput cols); read answer; "
        "echo answer=$answer; while :; do sleep 0.05; done"
    )
    config = EngineConfig(data_dir=tmp_path / "client", kill_grace=0.5)
    async with running_server(tmp_path / "server") as server:
        async with RemoteEngine(config, url(server), token=TOKEN) as engine:
            info = await engine.start(tty(command, cols=77))
            shown = lambda: text(engine, info.id)  # noqa: E731
            await until(lambda: "cols=77" in shown(), what=shown)
            await engine.send_input(info.id, b"over the wire\r")
            await until(lambda: "answer=over the wire" in shown(), what=shown)
            await engine.resize(info.id, 66, 20)
            await until(lambda: "now=66" in shown(), what=shown)
            await engine.kill(info.id)
    async with FakeUpstream() as fake:
        async with RemoteEngine(config, fake.url, token="tok") as engine:
            info = await engine.start(tty("sleep 30"))
            await until(lambda: engine.get(info.id).pid is not None)
            with pytest.raises(InvalidTransition, match="cannot take input"):
                await engine.send_input(info.id, b"x")
            await engine.kill(info.id)


async def test_the_engine_says_while_a_program_uses_the_alternate_screen(make_engine) -> None:
    """A full-screen program's switch to the alternate screen is in the session's info
    (where it entered, so a view can show its screen from there), and cleared when it
    leaves, or when the run ends inside it."""
    command = (
        r"printf 'before\n\033[?1049hon the screen'; read go; printf '\033[?1049lafter\n'; "
        r"printf '\033[?1049hagain'; read go"
    )
    async with make_engine() as engine:
        info = await engine.start(tty(command))
        await until(lambda: engine.get(info.id).alt_screen is not None)
        data = engine.get(info.id).transcript.read_bytes()
        at = engine.get(info.id).alt_screen
        assert data[:at].endswith(b"\x1b[?1049h") and data[at:].startswith(b"on the screen")
        await engine.send_input(info.id, b"\r")
        await until(lambda: b"again" in engine.get(info.id).transcript.read_bytes())
        second = engine.get(info.id).alt_screen
        assert second is not None and second > at
        await engine.kill(info.id)
        assert engine.get(info.id).alt_screen is None
