"""Faults at the edges: secrets in the environment, shared data dirs, bad cwds, ids."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ccx_tui.config import Settings
from ccx_tui.config_file import ServerEntry
from ccx_tui.engine import SessionSpec, State
from ccx_tui.engine.sessions import tap as tap_module
from ccx_tui.engine.sessions.process import PIPE_SIZE
from ccx_tui.engine.sessions.session import SessionInfo
from ccx_tui.engine.transcripts.store import DataStore
from ccx_tui.engine.transcripts.transcript import STDERR, STDOUT
from tests.helpers import until

NOBODY = 65534


async def test_sessions_never_inherit_ccx_tui_secrets(
    make_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CCX_TUI_TOKEN (always) and the config's token_env variables (named in
    `scrub_env`) are removed from every session's environment: `env` in a session
    shows neither, while an ordinary variable still passes.  A session's own declared
    env may still set one explicitly."""
    monkeypatch.setenv("CCX_TUI_TOKEN", "secret-token-1")
    monkeypatch.setenv("PROD_API_TOKEN", "secret-token-2")
    monkeypatch.setenv("HARMLESS_VAR", "visible")
    async with make_engine(scrub_env=frozenset({"PROD_API_TOKEN"})) as engine:
        info = await engine.wait((await engine.start(SessionSpec("env"))).id)
        own = SessionSpec("env", env={"CCX_TUI_TOKEN": "given-on-purpose"})
        own_info = await engine.wait((await engine.start(own)).id)
    assert info.state is State.EXITED and info.exit_code == 0
    shown = info.transcript.read_bytes()
    assert b"HARMLESS_VAR=visible" in shown
    assert b"secret-token" not in shown
    assert b"CCX_TUI_TOKEN" not in shown and b"PROD_API_TOKEN" not in shown
    assert b"CCX_TUI_TOKEN=given-on-purpose" in own_info.transcript.read_bytes()


async def test_an_empty_scrub_list_still_hides_the_token(
    make_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CCX_TUI_TOKEN is scrubbed even if a caller passes an empty `scrub_env`."""
    monkeypatch.setenv("CCX_TUI_TOKEN", "secret-token-3")
    async with make_engine(scrub_env=frozenset()) as engine:
        info = await engine.wait((await engine.start(SessionSpec("env"))).id)
    assert b"secret-token" not in info.transcript.read_bytes()


def test_settings_scrub_every_servers_token_env() -> None:
    """Settings resolved with the config's [[server]] entries keep each token_env (and
    CCX_TUI_TOKEN) out of sessions: the engine config they make carries them."""
    servers = [
        ServerEntry("a", "ws://127.0.0.1:1/ws/mcp", token_env="A_TOKEN"),
        ServerEntry("b", "ws://127.0.0.1:2/ws/mcp"),
    ]
    settings = Settings.resolve(data_dir="/tmp/unused-ccx-data", servers=servers)
    assert settings.engine_config().scrub_env == {"CCX_TUI_TOKEN", "A_TOKEN"}


async def test_retention_never_deletes_a_session_live_in_another_engine(
    make_engine, tmp_path: Path
) -> None:
    """Engine B loads a finished session; engine A then restarts it (live, locked).
    When B's retention next runs, its stale history says that session is finished and
    oldest, but its lock is held: B must delete something else (its own finished
    session) and leave A's live session, folder and transcript, untouched."""
    go = tmp_path / "go"
    command = f"printf '%1999s\\n' ''; if [ -e {go} ]; then exec sleep 1000; fi"
    async with make_engine() as a:
        first = await a.wait((await a.start(SessionSpec(command))).id)
        assert first.state is State.EXITED and first.bytes == 2000
        # Its lock is released once its final state is on disk: then B sees it finished.
        await until(lambda: not DataStore.is_owned_elsewhere(first.directory), what="unlock")
        async with make_engine(retention_bytes=3000) as b:
            assert [s.id for s in b.sessions()] == [first.id]  # 2000 bytes: kept
            go.touch()
            await a.restart(first.id)
            await until(lambda: a.get(first.id).bytes == 4000, what="A's second run")
            own = await b.wait((await b.start(SessionSpec("head -c 2000 /dev/zero"))).id)
            assert own.bytes == 2000
            # B's view: 2000 + 2000 > 3000, so retention deletes one of the two.
            await until(lambda: len(b.sessions()) == 1, what=lambda: repr(b.sessions()), timeout=3)
            assert [s.id for s in b.sessions()] == [first.id]
            assert not own.directory.exists()
        assert a.get(first.id).state is State.RUNNING
        assert first.directory.is_dir()
        assert first.transcript.stat().st_size == 4000
        await a.kill(first.id)
        assert a.get(first.id).state is State.KILLED


async def test_a_free_lock_always_means_the_final_state_is_on_disk(make_engine) -> None:
    """A session's lock is released only after its final meta.json is written: another
    ccx-tui that finds the lock free and meta.json saying "running" marks the session
    interrupted, over the real end.  Checked right as each of many sessions ends."""
    async with make_engine(max_sessions=4) as engine:
        infos = [await engine.start(SessionSpec(f"exit {i % 3}")) for i in range(40)]
        for info in infos:
            await engine.wait(info.id)
            if not DataStore.is_owned_elsewhere(info.directory):
                on_disk = engine.store.read_meta(info.directory)
                assert on_disk is not None and on_disk.state is State.EXITED


_ID_MAKER = """
import sys
from ccx_tui.engine.sessions.session import new_session_id
print("ready", flush=True)
sys.stdin.read()  # all start together when the parent closes our stdin
ids = [new_session_id() for _ in range(20000)]
print("\\n".join(ids))
"""


def test_session_ids_from_many_processes_at_once_never_collide() -> None:
    """Eight processes make 20,000 ids each, released at the same instant (so many in
    the same milliseconds, with counters that may agree): all 160,000 are distinct,
    and each process's ids still sort in creation order."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ID_MAKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    batches = []
    for proc in procs:
        assert proc.stdout is not None
        batches.append(proc.stdout.read().split())
        assert proc.wait(timeout=60) == 0
    every = [i for batch in batches for i in batch]
    assert len(every) == 160_000
    assert len(set(every)) == len(every)
    for batch in batches:
        assert batch == sorted(batch)


def test_two_sessions_never_share_a_folder(tmp_path: Path) -> None:
    """A folder that exists already is never reused: its id is skipped for a new one
    (forced here with an id maker that repeats itself)."""
    store = DataStore(tmp_path / "data")
    ids = iter(["0" * 27, "0" * 27, "0" * 26 + "1"])
    first_id, first = store.new_session(lambda: next(ids))
    (first / "transcript.log").write_bytes(b"first session's output")
    second_id, second = store.new_session(lambda: next(ids))
    assert (first_id, second_id) == ("0" * 27, "0" * 26 + "1")
    assert first != second
    assert (first / "transcript.log").read_bytes() == b"first session's output"
    assert (second / "transcript.log").read_bytes() == b""
    with pytest.raises(FileExistsError):
        store.create_session_dir(first_id)


async def test_sessions_with_old_short_ids_still_load(make_engine, data_dir: Path) -> None:
    """History made with 16-digit ids loads beside new 27-digit ones, in time order."""
    async with make_engine() as engine:
        new = await engine.wait((await engine.start(SessionSpec("echo new"))).id)
    old_id = new.id[:12] + "0000"  # the same millisecond, the old format: sorts first
    old_dir = data_dir / "sessions" / old_id
    old_dir.mkdir()
    old = replace(new, id=old_id, directory=old_dir)
    DataStore(data_dir).write_meta(old)
    async with make_engine() as engine:
        assert [s.id for s in engine.sessions()] == [old_id, new.id]
        assert engine.get(old_id).state is new.state


def _as_nobody(work: Callable[[], str]) -> str:
    """Run `work` in a forked child with the uid/gid of `nobody`; return its result (or
    the text of what it raised).  Root enters any directory: only another user shows
    what an unenterable --cwd does."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        code = 0
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                out = work()
            except Exception as exc:  # reported to the parent, which asserts on it
                out = f"{type(exc).__name__}: {exc}"
            os.write(write, out.encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_a_cwd_the_user_cannot_enter_is_named() -> None:
    """A --cwd that exists but that the user may not enter (mode 000, for `nobody`) is
    refused up front, naming the directory, instead of failing later as "cannot start
    /bin/sh"."""
    # Not pytest's tmp_path: its base folder is private to root.
    with tempfile.TemporaryDirectory() as base:
        os.chmod(base, 0o755)
        locked = Path(base) / "locked"
        locked.mkdir()
        locked.chmod(0o000)
        said = _as_nobody(lambda: repr(SessionSpec("true", cwd=str(locked)).validated()))
    assert said == f"InvalidCommand: cannot enter directory {locked}: permission denied"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "file", "not a directory: {path}"),
        (lambda p: p / "file" / "sub", "cannot use directory {path}: Not a directory"),
    ],
)
def test_exec_names_a_cwd_that_is_no_directory(
    tmp_path: Path, data_dir: Path, make: Callable[[Path], Path], message: str
) -> None:
    """`exec --cwd` of a file, or of a path through a file, exits 2 with one line that
    names it (never "cannot start /bin/sh", exit 127)."""
    (tmp_path / "file").write_text("not a directory")
    path = make(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "ccx_tui", "exec", "--data-dir", str(data_dir)]
        + ["--cwd", str(path), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"ccx-tui: {message.format(path=path)}\n"


async def test_a_cwd_gone_before_the_start_is_named(make_engine, tmp_path: Path) -> None:
    """A queued session whose cwd is removed before it starts fails naming the
    directory, not "cannot start /bin/sh"."""
    gone = tmp_path / "gone"
    gone.mkdir()
    async with make_engine(max_sessions=1) as engine:
        blocker = await engine.start(SessionSpec("exec sleep 1000"))
        queued = await engine.start(SessionSpec("true", cwd=str(gone)))
        gone.rmdir()
        await engine.kill(blocker.id)
        info = await engine.wait(queued.id)
    assert info.state is State.FAILED
    assert info.reason == f"cannot enter directory {gone}: No such file or directory"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder to another user")
@pytest.mark.parametrize("owned", ["root", "sessions"])
@pytest.mark.parametrize("command", [["exec", "--", "true"], ["sessions"]])
def test_a_data_dir_of_another_user_is_refused(
    tmp_path: Path, owned: str, command: list[str]
) -> None:
    """A data dir (or its sessions folder) owned by another user is refused with one
    line and exit 2, and left exactly as it was: not chmod'ed, nothing created."""
    data_dir = tmp_path / "data"
    (data_dir / "sessions").mkdir(parents=True, mode=0o755)
    theirs = data_dir if owned == "root" else data_dir / "sessions"
    os.chown(theirs, NOBODY, NOBODY)
    theirs.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "ccx_tui", command[0], "--data-dir", str(data_dir)] + command[1:],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"ccx-tui: data dir belongs to another user (uid {NOBODY}, not 0): {theirs}\n"
    )
    assert theirs.stat().st_mode & 0o777 == 0o755
    assert list((data_dir / "sessions").iterdir()) == []


def _exec(data_dir: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ccx_tui", "exec", "--data-dir", str(data_dir), "--", command],
        capture_output=True,
        timeout=120,
    )


def _sessions(data_dir: Path) -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-m", "ccx_tui", "sessions", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    found: list[dict[str, object]] = json.loads(proc.stdout)
    return found


def test_exec_runs_to_its_end_when_its_data_dir_is_deleted(tmp_path: Path) -> None:
    """The command deletes the data dir under a running `exec`: it still runs to its
    end, every byte reaches our stdout, exec exits with the command's own code, and one
    warning line says the record is lost (no traceback)."""
    data_dir = tmp_path / "data"
    # `rm -rf` races the engine's own writes into the folder ("Directory not empty"
    # when a record is written meanwhile): the command deletes until it is gone.
    delete = (
        f"for i in $(seq 50); do rm -rf {data_dir} 2>/dev/null; [ -e {data_dir} ] || break; done"
    )
    proc = _exec(data_dir, f"echo before; {delete}; seq 1 100000; echo done >&2; exit 3")
    expected = subprocess.run(["seq", "1", "100000"], capture_output=True).stdout
    assert proc.returncode == 3
    assert proc.stdout == b"before\n" + expected
    done, warning = proc.stderr.decode().splitlines()
    assert done == "done"
    assert re.fullmatch(
        f"ccx-tui: warning: the session's record is lost: {data_dir}/sessions/[0-9a-f]+ "
        "was removed while the command ran",
        warning,
    )
    assert not data_dir.exists()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real full disk (ENOSPC from the kernel) for the data dir."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_exec_on_a_full_disk_shows_everything_and_records_the_end(
    tmp_path: Path, full_disk: Path
) -> None:
    """20 MB of output into a data dir on a 2 MiB filesystem: exec's stdout still gets
    all 20 MB byte for byte (it comes from the engine, not the transcript), the
    transcript is an exact prefix, and the session's final state, exit code,
    write_error and bytes_lost are recorded, not "interrupted" nor missing."""
    source = tmp_path / "output.bin"
    source.write_bytes(random.Random(7).randbytes(20_000_000))
    proc = _exec(full_disk, f"cat {source}; echo tail >&2; exit 5")
    assert proc.returncode == 5
    assert proc.stdout == source.read_bytes()
    err = proc.stderr.decode(errors="replace").splitlines()
    assert err[0] == "tail"
    assert "transcript write failed (ENOSPC)" in err[1]
    assert "bytes of output were not kept in the transcript (they were shown here)" in err[1]
    assert len(err) == 2
    [info] = _sessions(full_disk)
    assert info["state"] == "exited" and info["exit_code"] == 5
    assert "ENOSPC" in str(info["write_error"])
    kept = Path(str(info["transcript"])).read_bytes()
    assert 0 < len(kept) < 2 * 1024 * 1024
    everything = source.read_bytes() + b"tail\n"
    assert everything.startswith(kept)
    assert info["bytes_lost"] == len(everything) - len(kept)


async def test_a_tap_gets_every_byte_at_its_transcript_offset(make_engine) -> None:
    """A back-pressure tap made right after `start` sees exactly the transcript's
    bytes, in order, each chunk at its transcript offset, with its stream; the tap
    closes when the session ends.  Its backlog stays bounded (the process waits)."""
    code = "import sys\nfor i in range(200): sys.stdout.write(str(i) * 50000 + '\\n')\n"
    async with make_engine() as engine:
        command = f"{sys.executable} -c {shlex.quote(code)}; echo end >&2"
        info = await engine.start(SessionSpec(command))
        tap = engine.tap(info.id, backpressure=True)
        got, offset, most = bytearray(), 0, 0
        streams = set()
        while True:
            most = max(most, tap.backlog)
            chunks = await tap.read()
            if not chunks:
                break
            for chunk in chunks:
                assert chunk.offset == offset
                offset += len(chunk.data)
                got += chunk.data
                streams.add(chunk.stream)
        info = await engine.wait(info.id)
    assert tap.closed and tap.lost == 0
    assert bytes(got) == info.transcript.read_bytes()
    assert len(got) == 200 * 50001 + sum(len(str(i)) - 1 for i in range(200)) * 50000 + 4
    assert streams == {STDOUT, STDERR}
    assert most <= tap_module.HIGH_WATER + 4 * PIPE_SIZE


async def test_a_tap_without_backpressure_keeps_a_window(make_engine) -> None:
    """A tap nobody reads never holds the process up: it keeps the last `window`
    bytes (whole chunks) and counts the rest as lost; offsets show where it resumes."""
    async with make_engine() as engine:
        info = await engine.start(SessionSpec("head -c 20000000 /dev/zero"))
        tap = engine.tap(info.id, window=256 * 1024)
        info = await engine.wait(info.id)
        assert info.state is State.EXITED and info.bytes == 20_000_000
        chunks = tap.read_nowait()
    kept = sum(len(c.data) for c in chunks)
    assert 0 < kept <= 256 * 1024 + PIPE_SIZE
    assert tap.lost + kept == 20_000_000
    assert chunks[0].offset == tap.lost
    assert chunks[-1].offset + len(chunks[-1].data) == 20_000_000
    assert await tap.read() == []


async def test_a_tap_of_a_finished_session_is_closed(make_engine) -> None:
    async with make_engine() as engine:
        info = await engine.wait((await engine.start(SessionSpec("echo hi"))).id)
        tap = engine.tap(info.id)
        assert tap.closed and tap.offset == 3
        assert await tap.read() == []


def test_a_record_is_kept_when_the_disk_fills_before_it_is_first_written(
    full_disk: Path,
) -> None:
    """A session's folder claims room for its meta.json when it is made: if output
    fills the disk before the first record is written, that record and every later
    one (the final state) are still written, in place."""
    store = DataStore(full_disk)
    session_id, directory = store.new_session()
    assert store.read_meta(directory) is None  # reserved, blank: no record yet
    fd = os.open(full_disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, b"x" * 65536)
    finally:
        os.close(fd)
    info = SessionInfo(
        id=session_id,
        spec=SessionSpec("true"),
        state=State.RUNNING,
        directory=directory,
        created_at=1.0,
        run=1,
    )
    store.write_meta(info)
    final = replace(info, state=State.EXITED, exit_code=0, write_error="full", bytes_lost=9)
    store.write_meta(final)
    assert store.read_meta(directory) == final


async def test_a_tap_for_what_the_disk_did_not_keep_holds_nothing_while_it_keeps_all(
    make_engine,
) -> None:
    """A server's sender or a view reads what the disk kept from the transcript; its
    tap (`unkept_only`) must not hold a window of bytes the disk already has for a
    consumer that stalls: with a healthy disk it holds at most the writer's backlog,
    where a plain tap holds its whole window (8 MiB per stalled client before).  Once
    the disk has everything, it holds nothing: the writer's progress lets go of what it
    held (it used to keep the backlog of its last put, up to 3 MiB, until read)."""
    size = 24 * 1024 * 1024
    async with make_engine() as engine:
        info = await engine.start(SessionSpec(f"head -c {size} /dev/zero; sleep 30"))
        plain = engine.tap(info.id)
        unkept = engine.tap(info.id, unkept_only=True)
        most_unkept = 0  # the largest excess over what the disk lacks, seen meanwhile

        def on_disk() -> bool:
            nonlocal most_unkept
            kept = engine.get(info.id).bytes
            chunks = plain.held()
            made = chunks[-1].offset + len(chunks[-1].data) if chunks else 0
            most_unkept = max(most_unkept, unkept.backlog - max(0, made - kept))
            return kept >= size

        await until(on_disk, what="all output on disk")
        assert most_unkept <= 0, most_unkept
        assert plain.backlog >= tap_module.DEFAULT_WINDOW - 1024 * 1024
        assert unkept.backlog == 0, unkept.backlog
        assert plain.lost and not unkept.lost
        await engine.kill(info.id)


async def test_a_tap_whose_chunks_the_disk_took_waits_instead_of_spinning() -> None:
    """A put whose chunk the disk already has (dropped at once) must not leave the tap
    looking ready: its reader spun on the event loop for good and froze the app."""
    kept = 0
    tap = tap_module.OutputTap(0, kept=lambda: kept)
    reader = asyncio.create_task(tap.read())
    await asyncio.sleep(0)
    kept = 10
    tap.put(0, STDOUT, b"0123456789")  # on disk already: dropped, nothing to read
    for _ in range(3):
        await asyncio.sleep(0)  # the reader runs (and, before the fix, never returned)
    assert not reader.done()
    tap.put(10, STDOUT, b"more")
    assert [c.data for c in await reader] == [b"more"]
    tap.close()
