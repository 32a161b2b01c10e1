"""Readiness probes: when a started session is ready for what depends on it.

`ready_when` is one of:

- {"http": URL}: a GET answers with a status below 400;
- {"tcp": "[HOST:]PORT"}: a connection is accepted (HOST defaults to 127.0.0.1);
- {"log": REGEX}: a line of the session's output matches (searched in its transcript
  from where the run began, as it grows);
- {"exec": COMMAND}: the shell command exits 0 (in the session's directory).

`wait_ready` tries every PROBE_INTERVAL seconds until the probe passes (True) or is
cancelled (the run ended).  Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

from ccx_tui.engine.sessions import child_watch
from ccx_tui.engine.sessions.session import SessionSpec

PROBE_INTERVAL = 0.25
ATTEMPT_TIMEOUT = 2.0
LOG_READ = 1024 * 1024
"""Bytes of output a log probe reads per step (a long line is searched in pieces)."""


async def wait_ready(spec: SessionSpec, transcript: Path, start: int) -> bool:
    """Wait until the spec's probe passes; True then.  `start` is the transcript offset
    where the run began (a log probe looks from there).  Cancelling is safe."""
    ((kind, value),) = spec.ready_when.items()
    if kind == "log":
        # Loaded here, as urllib below: every LocalEngine imports this module, few
        # sessions have a probe (`exec` has none).
        from ccx_tui.engine.transcripts.search import crlf_line_ends

        # Per line, as `/` searches: ^ and $ are line anchors, $ also before a CRLF.
        pattern = re.compile(crlf_line_ends(value).encode(), re.MULTILINE)
        return await _log(pattern, transcript, start)
    while True:
        if await _attempt(kind, value, spec):
            return True
        await asyncio.sleep(PROBE_INTERVAL)


async def _attempt(kind: str, value: str, spec: SessionSpec) -> bool:
    if kind == "http":
        return await asyncio.to_thread(_http_ok, value)
    if kind == "tcp":
        host, _, port = value.rpartition(":")
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT):
                _reader, writer = await asyncio.open_connection(host or "127.0.0.1", int(port))
        except (OSError, TimeoutError, ValueError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    # exec
    child_watch.install()
    try:
        proc = await asyncio.create_subprocess_shell(
            value,
            cwd=spec.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT * 5):
            return await proc.wait() == 0
    except TimeoutError:
        return False
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=ATTEMPT_TIMEOUT) as response:  # noqa: S310
            return int(response.status) < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


async def _log(pattern: re.Pattern[bytes], transcript: Path, start: int) -> bool:
    pos = start
    carry = b""  # an unfinished last line, searched again with what completes it
    while True:
        try:
            data = await asyncio.to_thread(_read, transcript, pos)
        except OSError:
            data = b""
        if data:
            pos += len(data)
            block = carry + data
            cut = block.rfind(b"\n") + 1
            if pattern.search(block[:cut] if cut else block):
                return True
            carry = block[cut:][-LOG_READ:]
            continue
        if carry and pattern.search(carry):
            return True
        await asyncio.sleep(PROBE_INTERVAL)


def _read(path: Path, pos: int) -> bytes:
    with path.open("rb") as f:
        f.seek(pos)
        return f.read(LOG_READ)
