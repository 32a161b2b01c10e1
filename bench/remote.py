"""`remote ingest`: `exec --server URL -- cat FILE` via `ccx-tui serve` vs local `exec`.

The client negotiates batched output (raw transcript bytes in binary frames of up to 1 MiB),
so line length should no longer matter; the scenario still runs twice to show it: once with
4 KiB lines and once with 64-byte lines (which upstream's one-JSON-frame-per-line format
makes 64 times as many frames). The timed figure is the `exec` client's wall time, the
server already listening; the baseline is a local `exec -- cat FILE` of the same file in the
same run. The remote run writes every byte twice (the server's transcript, then the
client's), the local one once.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import (
    MIB,
    Row,
    ccx,
    fmt_ratio,
    fmt_s,
    make_line_file,
    run_timed,
    yes_no,
)
from bench.ingest import _transcript, take_transcript
from bench.slow_client import _Server

TARGET_RATIO = 2.0
LONG_LINE = 4096


def _make_long_lines(path: Path, size: int) -> None:
    """Numbered 4 KiB lines (newline included) up to `size` bytes, written 1 MiB at a time."""
    per_block = MIB // LONG_LINE
    lines = size // LONG_LINE
    pad = b"." * (LONG_LINE - 17)
    with open(path, "wb", buffering=0) as out:
        for first in range(0, lines, per_block):
            last = min(first + per_block, lines)
            out.write(b"".join(b"line %010d " % n + pad + b"\n" for n in range(first, last)))


def _case(source: Path, work: Path, tag: str, label: str, verify_hash: bool) -> Row:
    size = source.stat().st_size
    local_dir = work / f"remote-{tag}-local"
    base = run_timed(ccx("exec", "--data-dir", str(local_dir), "--", f"cat '{source}'"))
    local = _transcript(local_dir)
    base_ok = base.returncode == 0 and local.stat().st_size == size
    local.unlink()

    server = _Server(work / f"remote-{tag}-server")
    try:
        client_dir = work / f"remote-{tag}-client"
        argv = ccx(
            "exec",
            "--data-dir",
            str(client_dir),
            "--server",
            server.url,
            "--token-file",
            str(server.token_file),
        )
        ours = run_timed([*argv, "--", f"cat '{source}'"])
    finally:
        server.close()
    for stale in (server.data_dir / "sessions").glob("*/transcript.log"):
        stale.unlink()  # the server's own copy; only the client's is checked
    intact, got = take_transcript(client_dir, source, ours.returncode == 0, verify_hash=verify_hash)

    check = "sha256 ok" if verify_hash else "size ok"
    note = check if intact else f"**client transcript {got} of {size} bytes, rc {ours.returncode}**"
    if not base_ok:
        note += f"; **local baseline failed, rc {base.returncode}**"
    ratio = ours.seconds / base.seconds
    return Row(
        f"remote ingest ({size >> 20} MiB of {label} lines, {note})",
        fmt_s(ours.seconds),
        fmt_s(base.seconds) + " (local exec)",
        fmt_ratio(ours.seconds, base.seconds),
        f"<= {TARGET_RATIO:g}x",
        yes_no(intact and base_ok and ratio <= TARGET_RATIO),
    )


def run(long_bytes: int, short_bytes: int, work: Path, *, verify_hash: bool) -> list[Row]:
    rows = []
    source = work / "remote-long.txt"
    _make_long_lines(source, long_bytes)
    try:
        rows.append(_case(source, work, "long", "4 KiB", verify_hash))
    finally:
        source.unlink()
    source = work / "remote-short.txt"
    make_line_file(source, short_bytes)
    try:
        rows.append(_case(source, work, "short", "64-byte", verify_hash))
    finally:
        source.unlink()
    return rows
