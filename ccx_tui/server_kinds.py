"""Which servers of `--connect` and `[[server]]` are ccx-tui servers (attached like the
local engine) and which are cc_executor servers (launch-only).

A ccx-tui server (`ccx-tui serve` on another machine) keeps its sessions whoever
started them: the app shows every one of them, live and past, and leaving it leaves
them running, exactly as with the local engine process.  A cc_executor server has no
such table: only the sessions this app launches there exist for it.  The server's
`connected` greeting tells the two apart (its capabilities); one that cannot be asked
now (down, slow, refusing the token) stays launch-only, whose engine reports its
state in the sidebar as before.
"""

from __future__ import annotations

import asyncio

from ccx_tui.config import ServerTarget
from ccx_tui.errors import CcxError

PROBE_DEADLINE = 3.0
"""How long starting the app waits for a server's greeting (all servers at once)."""


async def _attachable(target: ServerTarget, deadline: float) -> bool:
    from ccx_tui.engine.wire.client import ServerSocket, can_attach, probe

    server = ServerSocket(target.url, token=target.token, ca_file=target.ca_file)
    try:
        async with asyncio.timeout(deadline):
            return can_attach(await probe(server, deadline=deadline))
    except (CcxError, TimeoutError, OSError):
        return False


async def sort_servers(
    targets: list[ServerTarget], *, deadline: float = PROBE_DEADLINE
) -> tuple[list[ServerTarget], list[ServerTarget]]:
    """(launch-only targets, attachable targets), each in the given order."""
    kinds = await asyncio.gather(*(_attachable(t, deadline) for t in targets))
    launch = [t for t, attach in zip(targets, kinds, strict=True) if not attach]
    attach = [t for t, attach in zip(targets, kinds, strict=True) if attach]
    return launch, attach
