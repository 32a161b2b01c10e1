"""The engine process of a data dir: started on first use, sessions outlive clients."""

from __future__ import annotations

import asyncio
import json
import os
import pkgutil
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, unix_connect

import ccx_tui.engine
from ccx_tui.engine.server.daemon_client import engine_url, ensure_engine
from ccx_tui.engine.server.paths import EXIT_RUNNING, engine_pid, socket_path
from ccx_tui.engine.sessions.local import EngineConfig
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.transcripts.store import DataStore
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.remote import RemoteOutcome, RemoteRun
from ccx_tui.engine.wire.remote_engine import RemoteEngine
from ccx_tui.engine.wire.unixsock import WS_URI, get_health
from tests.helpers import marked_processes, until, wait_gone_for
from tests.serving import CLEAN

# Lines printed before the session waits for its go file, then one more after it.
SCRIPT = (
    "import os, sys, time\n"
    "for i in range(200): print(f'line {i}', flush=True)\n"
    "print('waiting', file=sys.stderr, flush=True)\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
    "print('live after the go', flush=True)\n"
)
BEFORE = "".join(f"line {i}\n" for i in range(200)).encode()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short data dir (a Unix socket path has at most 107 bytes); on the way out
    every engine process that served it is stopped and its sessions are gone."""
    root = Path(tempfile.mkdtemp(prefix="ccxd-", dir="/tmp"))
    directory = root / "data"
    seen: set[int] = set()
    watcher_stop = threading.Event()

    def watch() -> None:  # remember every engine, even one a test forgets about
        while not watcher_stop.is_set():
            pid = engine_pid(directory)
            if pid is not None:
                seen.add(pid)
            watcher_stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield directory
    finally:
        watcher_stop.set()
        watcher.join()
        pid = engine_pid(directory)
        if pid is not None:
            seen.add(pid)
        for pid in seen:
            if not _gone(pid):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not all(_gone(pid) for pid in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = wait_gone_for(directory)
        for proc in left:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)
        assert all(_gone(pid) for pid in seen), "an engine process outlived its test"
        assert not left, f"session processes outlived the test: {left}"


async def start_engine(data_dir: Path, idle_exit: float = 30.0) -> int:
    """ensure_engine, as the app would call it; the engine's pid."""
    await asyncio.to_thread(ensure_engine, data_dir, idle_exit=idle_exit)
    pid = engine_pid(data_dir)
    assert pid is not None
    return pid


def spec(go: Path) -> SessionSpec:
    return SessionSpec(command=f"{sys.executable} -c {_quote(SCRIPT)} {go}")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


class Sink:
    def __init__(self) -> None:
        self.streams: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def __call__(self, stream: str, data: bytes) -> None:
        self.streams[stream] += data


async def disconnect(task: asyncio.Task[RemoteOutcome]) -> None:
    """The client goes away without a word: its socket just closes."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def started_and_left(data_dir: Path, go: Path) -> str:
    """A session started by a client that then disconnected; its id."""
    first = Sink()
    run = RemoteRun(engine_url(data_dir))
    task = asyncio.create_task(run.run(spec(go), first))
    await until(lambda: bytes(first.streams["stdout"]) == BEFORE, what="the first client's output")
    assert run.session is not None
    await disconnect(task)
    return run.session


async def raw_client(data_dir: Path) -> ClientConnection:
    ws = await unix_connect(str(socket_path(data_dir)), WS_URI)
    hello = json.loads(await ws.recv())
    assert hello["method"] == "connected"
    return ws


async def sessions_list(data_dir: Path) -> list[dict[str, object]]:
    ws = await raw_client(data_dir)
    try:
        await ws.send(p.encode_request("sessions.list", {}, 1))
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("id") == 1:
                result: list[dict[str, object]] = msg["result"]
                return result
    finally:
        await ws.close()


async def test_a_session_outlives_its_client_and_another_gets_all_of_it(
    data_dir: Path, tmp_path: Path
) -> None:
    """A client starts a session and disconnects: the process runs on.  A second
    client attaches and gets the whole transcript from byte 0, then the live output,
    byte-exact, and sees the true end."""
    await start_engine(data_dir)
    go = tmp_path / "go"
    session = await started_and_left(data_dir, go)
    assert marked_processes(session), "the session died with its client"

    second = Sink()
    watcher = RemoteRun(engine_url(data_dir))
    task = asyncio.create_task(watcher.attach(session, second))
    await until(lambda: bytes(second.streams["stdout"]) == BEFORE, what="the replay")
    go.touch()
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.state == "exited" and outcome.exit_code == 0
    assert bytes(second.streams["stdout"]) == BEFORE + b"live after the go\n"
    assert bytes(second.streams["stderr"]) == b"waiting\n"
    [listed] = await sessions_list(data_dir)
    assert listed["session"] == session and listed["state"] == "exited"
    late = Sink()  # attaching once it has ended: the whole of it, and its end
    outcome = await asyncio.wait_for(RemoteRun(engine_url(data_dir)).attach(session, late), 30)
    assert outcome.state == "exited" and outcome.exit_code == 0
    assert late.streams == second.streams


async def test_no_client_leaving_ends_a_session_not_even_an_upstream_one(
    data_dir: Path, tmp_path: Path
) -> None:
    """A client that never asked for a detachable session (as upstream's clients do)
    and goes: the engine process keeps the session anyway (`serve` kills it then),
    with no deadline; it runs to its own end."""
    await start_engine(data_dir)
    go = tmp_path / "go"
    ws = await raw_client(data_dir)
    await ws.send(p.encode_request("execute", {"command": spec(go).command}, 1))
    while (msg := json.loads(await ws.recv())).get("id") != 1:
        pass
    pid = msg["result"]["pid"]
    await ws.close()

    def clients() -> int:
        return int(get_health(socket_path(data_dir))["active_sessions"])

    await until(lambda: clients() == 0, what="the engine to be done with the client")
    [listed] = await sessions_list(data_dir)
    session = str(listed["session"])
    watcher = RemoteRun(engine_url(data_dir))
    task = asyncio.create_task(watcher.attach(session, sink := Sink()))
    await until(lambda: bytes(sink.streams["stdout"]) == BEFORE, what="the replay")
    go.touch()
    outcome = await asyncio.wait_for(task, 30)
    assert (outcome.state, outcome.exit_code, outcome.pid) == ("exited", 0, pid)


async def test_a_client_kills_a_session_it_attached_to(data_dir: Path, tmp_path: Path) -> None:
    """CANCEL from a client that attached (not the one that started it) kills the
    session's whole tree, and the engine records it as killed."""
    await start_engine(data_dir)
    session = await started_and_left(data_dir, tmp_path / "never")
    killer = RemoteRun(engine_url(data_dir), kill_grace=10)
    task = asyncio.create_task(killer.attach(session, Sink()))
    await asyncio.wait_for(killer.started.wait(), 30)
    killer.cancel()
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.state == "killed"
    assert wait_gone_for(data_dir) == []
    [listed] = await sessions_list(data_dir)
    assert listed["state"] == "killed"


async def test_the_engine_exits_once_nothing_is_live_and_nobody_is_connected(
    data_dir: Path, tmp_path: Path
) -> None:
    """Idle exit waits for both: a connected client keeps the engine up past its
    idle period (by the engine's own clock), a live session too; once the session
    has ended and the client has gone, the engine exits and takes its socket along."""
    idle = 0.3
    pid = await start_engine(data_dir, idle_exit=idle)
    go = tmp_path / "go"
    client = await raw_client(data_dir)
    session = await started_and_left(data_dir, go)

    def uptime() -> float:
        return float(get_health(socket_path(data_dir))["uptime_seconds"])

    start = uptime()
    await until(lambda: uptime() > start + 3 * idle, what="the engine's clock to pass idle")
    assert not _gone(pid) and marked_processes(session)
    go.touch()
    assert wait_gone_for(data_dir) == []
    await until(lambda: uptime() > start + 6 * idle, what="the engine's clock, session ended")
    assert not _gone(pid), "the engine left a client behind"
    await client.close()
    await until(lambda: _gone(pid), what="the idle engine to exit")
    assert not socket_path(data_dir).exists()
    assert engine_pid(data_dir) is None


def test_concurrent_first_uses_start_exactly_one_engine(data_dir: Path) -> None:
    """Three processes and three threads ask for the engine at once: they all get the
    same one, and only one engine process ever ran."""
    code = (
        "import sys; from pathlib import Path;"
        "from ccx_tui.engine.server.daemon_client import ensure_engine;"
        "print(ensure_engine(Path(sys.argv[1]), idle_exit=30))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(ensure_engine(data_dir, idle_exit=30)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outputs = {proc.communicate(timeout=60)[0].decode().strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert outputs | {str(path) for path in found} == {str(socket_path(data_dir))}
    engines = [
        proc
        for proc in psutil.process_iter(["cmdline", "status"])
        if "engine" in (proc.info["cmdline"] or [])
        and str(data_dir) in (proc.info["cmdline"] or [])
        and proc.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert [proc.pid for proc in engines] == [engine_pid(data_dir)]
    log = (data_dir / "engine.log").read_text()
    assert log.count("serving ") == 1 and "another engine" not in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
async def test_a_stop_signal_to_the_engine_kills_every_session_tree(
    data_dir: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGTERM, SIGINT or SIGHUP to the engine: each session's whole process group goes
    (no orphan, grandchildren included), the records say killed, the engine exits."""
    pid = await start_engine(data_dir)
    tree = RemoteRun(engine_url(data_dir))
    task = asyncio.create_task(
        tree.run(SessionSpec(command="sleep 300 & sleep 300 & echo up; wait"), Sink())
    )
    await asyncio.wait_for(tree.started.wait(), 30)
    assert tree.session is not None
    await until(lambda: len(marked_processes(tree.session or "")) >= 3, what="the tree")
    await disconnect(task)
    session = await started_and_left(data_dir, tmp_path / "never")
    os.kill(pid, signum)
    await until(lambda: _gone(pid), what="the engine to exit")
    assert wait_gone_for(data_dir) == []
    states = {info.id: info.state for info in DataStore(data_dir).load_history()}
    assert states == {tree.session: State.KILLED, session: State.KILLED}
    assert not socket_path(data_dir).exists()


def _as_nobody(sock: Path) -> str:
    """Ask for /health on `sock` from a child running as uid 65534: what happened."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                get_health(sock, timeout=10)
                said = "answered"
            except ConnectionRefusedError:
                said = "refused"
            except PermissionError:
                said = "permission denied"
            except OSError as exc:
                said = f"error: {exc}"
            os.write(write, said.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(child, 0)
    return said


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
async def test_only_our_uid_gets_in(data_dir: Path) -> None:
    """The socket is 0600 in the 0700 data dir, so another user cannot even reach it;
    and were it reachable (modes loosened here on purpose), the engine refuses a peer
    of another uid (SO_PEERCRED) while our own uid still gets in."""
    await start_engine(data_dir)
    sock = socket_path(data_dir)
    assert sock.stat().st_mode & 0o777 == 0o600
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert await asyncio.to_thread(_as_nobody, sock) == "permission denied"
    data_dir.parent.chmod(0o711)  # the temporary dir around it
    data_dir.chmod(0o711)
    sock.chmod(0o666)
    try:
        assert await asyncio.to_thread(_as_nobody, sock) == "refused"
        assert get_health(sock)["status"] == "healthy"
    finally:
        sock.chmod(0o600)
        data_dir.chmod(0o700)


async def test_a_stale_socket_is_replaced(data_dir: Path) -> None:
    """A socket file nobody serves (its engine was SIGKILLed) is removed and a new
    engine serves the data dir; a second engine started by hand finds it and exits."""
    DataStore(data_dir)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path(data_dir)))
    stale.close()  # the file stays, with nobody behind it
    await start_engine(data_dir)
    assert get_health(socket_path(data_dir))["status"] == "healthy"
    second = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ccx_tui", "engine", "--data-dir", str(data_dir)],
        capture_output=True,
        env=CLEAN,
        timeout=60,
    )
    assert second.returncode == EXIT_RUNNING
    assert b"another engine" in second.stderr


async def test_remote_engine_runs_sessions_in_the_engine_process(
    data_dir: Path, tmp_path: Path
) -> None:
    """RemoteEngine takes a ws+unix:// URL: its sessions run in the engine process,
    its health probe reaches the engine over the socket."""
    await start_engine(data_dir)
    config = EngineConfig(data_dir=tmp_path / "client", kill_grace=0.5)
    async with RemoteEngine(config, engine_url(data_dir), name="engine") as engine:
        info = await engine.start(SessionSpec(command="echo hi from the engine"))
        done = await asyncio.wait_for(engine.wait(info.id), 30)
        assert done.state is State.EXITED and done.exit_code == 0
        assert done.transcript.read_bytes() == b"hi from the engine\n"
        await until(lambda: engine.status.startswith("connected"), what=lambda: engine.status)
    [listed] = await sessions_list(data_dir)
    assert listed["command"] == "echo hi from the engine"


ENGINE_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(ccx_tui.engine.__path__, "ccx_tui.engine.")
)


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_no_engine_module_pulls_in_the_ui(module: str) -> None:
    """Each module of the headless core, imported alone in a fresh interpreter, loads
    neither Textual nor Rich (the engine process and `exec` stay light)."""
    code = (
        f"import sys, {module};"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('textual','rich')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stdout
