"""Sessions left running by a ccx-tui that was SIGKILLed are found and killed later."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from ccx_tui.engine import SessionSpec, State
from ccx_tui.engine.sessions.local import ORPHANS_KILLED
from ccx_tui.engine.transcripts.store import DataStore
from tests.helpers import marked_processes, until

CCX = [sys.executable, "-m", "ccx_tui"]


def _running_session(data_dir: Path) -> dict[str, object] | None:
    """The one session's meta.json once it says running with a pid, else None."""
    sessions = data_dir / "sessions"
    for meta in sessions.glob("*/meta.json") if sessions.is_dir() else []:
        try:
            data: dict[str, object] = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if data["state"] == "running" and data["pid"]:
            return data
    return None


async def test_a_killed_exec_leaves_orphans_the_next_engine_kills(
    make_engine, data_dir: Path
) -> None:
    """`ccx-tui exec -- sleep 1000` is SIGKILLed: its sleep lives on (it has its own
    session and process group).  `ccx-tui sessions` lists it interrupted.  The next
    engine opened on the data dir finds the process by its marker, kills it, and
    records why in the session's reason (in memory and on disk)."""
    exec_proc = await asyncio.create_subprocess_exec(
        *CCX,
        "exec",
        "--data-dir",
        str(data_dir),
        "--",
        "sleep 1000",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        found: list[dict[str, object]] = []

        def started() -> bool:
            info = _running_session(data_dir)
            if info is not None and marked_processes(f"{info['id']}."):
                found.append(info)
                return True
            return False

        await until(started, what="the exec's session to run")
        session_id = str(found[0]["id"])
        exec_proc.kill()
        await exec_proc.wait()
        assert marked_processes(f"{session_id}."), "the orphan should outlive its ccx-tui"
        listed = await asyncio.to_thread(
            subprocess.run,
            [*CCX, "sessions", "--data-dir", str(data_dir), "--json"],
            capture_output=True,
            timeout=60,
            check=True,
        )
        [row] = json.loads(listed.stdout)
        assert row["state"] == "interrupted"
        async with make_engine() as engine:
            assert marked_processes(f"{session_id}.") == []
            info = engine.get(session_id)
            assert info.state is State.INTERRUPTED
            assert info.reason == ORPHANS_KILLED
        on_disk = DataStore(data_dir).read_meta(data_dir / "sessions" / session_id)
        assert on_disk is not None and on_disk.reason == ORPHANS_KILLED
    finally:
        if exec_proc.returncode is None:
            exec_proc.kill()
            await exec_proc.wait()
        for proc in marked_processes(str(found[0]["id"]) + "." if found else "\0"):
            proc.kill()


async def test_an_interrupted_session_without_processes_keeps_its_reason(
    make_engine, data_dir: Path
) -> None:
    """A session interrupted with nothing left running is not said to be killed, and
    the sessions of another live engine on the same data dir are left alone."""
    async with make_engine() as owner:
        live = await owner.start(SessionSpec("exec sleep 1000"))
        await until(lambda: bool(marked_processes(f"{live.id}.")), what="the live session")
        store = DataStore(data_dir)
        ghost_id, ghost_dir = store.new_session()
        ghost = owner.get(live.id)
        store.write_meta(
            type(ghost)(
                id=ghost_id,
                spec=SessionSpec("true"),
                state=State.RUNNING,
                directory=ghost_dir,
                created_at=1.0,
                run=1,
            )
        )
        async with make_engine() as other:
            assert other.get(ghost_id).state is State.INTERRUPTED
            assert other.get(ghost_id).reason != ORPHANS_KILLED
            assert live.id not in {s.id for s in other.sessions()}
        assert owner.get(live.id).state is State.RUNNING
        assert marked_processes(f"{live.id}.")
        await owner.kill(live.id)
