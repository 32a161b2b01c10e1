"""`slow client`: a WebSocket client that stops reading must not slow the session down."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import psutil
from websockets.asyncio.client import ClientConnection, connect

from bench.common import Row, ccx, fmt_mb, fmt_ratio, fmt_s, yes_no
from ccx_tui.engine.wire.auth import read_token_file, token_path

TARGET_RATIO = 1.5
WORD = "x" * 4095  # with its newline, 4 KiB lines
GIVE_UP = 120.0


class _Server:
    """`ccx-tui serve --port 0` in a child process; its URL is read from stderr."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            ccx("serve", "--port", "0", "--data-dir", str(data_dir)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            match = re.search(r"listening on (ws://\S+)", line)
            if match:
                self.url = match.group(1)
                break
        else:
            raise RuntimeError("ccx-tui serve exited without listening")
        self.ps = psutil.Process(self.proc.pid)
        # serve made its token and says where; it is read like any client would
        self.token_file = token_path(data_dir)
        self.headers = {"Authorization": f"Bearer {read_token_file(self.token_file)}"}

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def meta(self) -> dict[str, object]:
        for meta in (self.data_dir / "sessions").glob("*/meta.json"):
            try:
                return dict(json.loads(meta.read_text()))
            except (OSError, ValueError):
                return {}
        return {}

    def transcript_size(self) -> int:
        found = list((self.data_dir / "sessions").glob("*/transcript.log"))
        return found[0].stat().st_size if found else 0

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def _case(data_dir: Path, size: int, stall: float) -> tuple[float, int]:
    """Seconds from `execute` to meta.json "exited", and server RSS growth meanwhile."""
    server = _Server(data_dir)
    try:
        command = f"yes {WORD} | head -c {size}"
        request = {"jsonrpc": "2.0", "method": "execute", "params": {"command": command}, "id": 1}
        async with connect(
            server.url,
            max_size=None,
            max_queue=1,
            ping_interval=None,
            additional_headers=server.headers,
        ) as ws:
            rss0 = peak = server.rss()
            start = time.perf_counter()
            await ws.send(json.dumps(request))
            reader = None if stall else asyncio.create_task(_drain(ws))
            exited: float | None = None
            while (now := time.perf_counter() - start) < GIVE_UP:
                peak = max(peak, server.rss())
                if server.meta().get("state") == "exited":
                    exited = now
                    break
                if reader is None and now >= stall:
                    reader = asyncio.create_task(_drain(ws))  # stall over: catch up
                await asyncio.sleep(0.02)
            if reader is not None:
                reader.cancel()
        if exited is None:
            raise RuntimeError(f"session did not exit within {GIVE_UP:g} s")
        got = server.transcript_size()
        if got != size:
            raise RuntimeError(f"transcript has {got} of {size} bytes: {server.meta()}")
        return exited, peak - rss0
    finally:
        server.close()


def run(size: int, stall: float, work: Path) -> list[Row]:
    base, _ = asyncio.run(_case(work / "ws-reading", size, 0.0))
    ours, growth = asyncio.run(_case(work / "ws-stalled", size, stall))
    ratio = ours / base
    return [
        Row(
            f"slow client ({size >> 20} MiB, client stalls {stall:g} s)",
            fmt_s(ours) + " to exit",
            fmt_s(base) + " (client reading)",
            fmt_ratio(ours, base),
            f"<= {TARGET_RATIO:g}x",
            yes_no(ratio <= TARGET_RATIO),
        ),
        Row(
            "slow client: server RSS growth during stall",
            "+" + fmt_mb(growth),
            "-",
            "-",
            "(reported)",
            "-",
        ),
    ]
