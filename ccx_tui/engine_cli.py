"""Commands that act on a data dir's running engine process: `kill`, and `attach`'s
check that there is one."""

from __future__ import annotations

import asyncio
import sys

from ccx_tui.config import Settings
from ccx_tui.engine.server.paths import engine_pid
from ccx_tui.engine.sessions.session import resolve_id
from ccx_tui.engine.wire.client import EngineClient
from ccx_tui.errors import CcxError, InvalidTransition
from ccx_tui.textsafe import escape_controls

EXIT_NONE = 1  # nothing to act on: no engine process, or no such session


class NoEngine(CcxError):
    """No engine process runs the sessions of a data dir."""


def require_engine(settings: Settings, nothing: str = "nothing to attach to") -> None:
    """Raises NoEngine, saying how to start one, if no engine process serves the data
    dir (`ccx-tui attach` has nothing to attach to then)."""
    if engine_pid(settings.data_dir) is None:
        raise NoEngine(
            f"no engine process runs sessions in {settings.data_dir}: {nothing} "
            "(start some with `ccx-tui COMMAND...`; past sessions: `ccx-tui sessions`)"
        )


def kill(settings: Settings, ids: list[str], *, every: bool, force: bool) -> int:
    """Kill sessions of the running engine by id (or unique prefix), or all of them.
    Prints one line per session; returns 0, or EXIT_NONE if one of them was unknown
    or already over."""
    require_engine(settings, "nothing to kill")
    return asyncio.run(_kill(settings, ids, every=every, force=force))


async def _kill(settings: Settings, ids: list[str], *, every: bool, force: bool) -> int:
    client = EngineClient(settings.data_dir, start_engine=False)
    await client.open()
    try:
        if every:
            live = [info for info in client.sessions() if not info.state.final]
            await client.kill_all("killed by ccx-tui kill --all")
            print(f"killed {len(live)} session(s)")
            return 0
        status = 0
        table = {info.id: info for info in client.sessions()}
        for wanted in ids:
            try:
                info = table[resolve_id(wanted, table)]
                if info.state.final:
                    raise InvalidTransition(f"{info.id} has already ended ({info.state.value})")
                await client.kill(info.id, force=force, reason="killed by ccx-tui kill")
            except CcxError as exc:
                sys.stderr.write(f"ccx-tui kill: {escape_controls(str(exc))}\n")
                status = EXIT_NONE
                continue
            info = client.get(info.id)
            print(f"{info.id} {info.state.value}: {escape_controls(info.spec.command)}")
        return status
    finally:
        await client.aclose()
