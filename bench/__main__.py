"""`python -m bench [--quick] [--only NAME] [--peers]`: run benchmarks, print and write a table."""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import (
    attached,
    ingest,
    keys,
    limit,
    line_index,
    open_view,
    peers,
    pty_ingest,
    remote,
    scale,
    search,
    slow_client,
    startup,
    switch,
    switch_light,
)
from bench.common import MIB, Row, machine_info, make_line_file

NOT_YET: list[str] = []
RESULTS = Path(__file__).with_name("RESULTS.md")
QUICK_RESULTS = Path(__file__).with_name("out") / "RESULTS-quick.md"  # never the real table
PEER_RESULTS = Path(__file__).with_name("RESULTS-peers.md")
NAMES = (
    "ingest",
    "pty",
    "open",
    "attached",
    "index",
    "search",
    "limit",
    "slow_client",
    "keys",
    "scale",
    "remote",
    "switch",
    "switch_light",
    "startup",
)
PEER_NAMES = ("attached", "open", "switch")
"""The benches `--peers` runs through the other tools too (`--only` picks among them)."""


@dataclass(frozen=True, slots=True)
class Sizes:
    file_bytes: int
    sessions: int
    max_sessions: int
    ws_bytes: int
    stall: float
    scale_sessions: int
    scale_seconds: float
    key_reps: int
    remote_bytes: int  # 4 KiB lines
    remote_short_bytes: int  # 64-byte lines
    switch_sessions: int
    switch_warmup: float
    switch_reps: int
    peer_capture_bytes: int  # --peers: tmux keeps it all in RAM (about 8x the file)
    peer_open_bytes: int


QUICK = Sizes(
    64 * MIB,
    100,
    10,
    32 * MIB,
    3.0,
    40,
    5.0,
    5,
    64 * MIB,
    16 * MIB,
    20,
    10.0,
    30,
    64 * MIB,
    64 * MIB,
)
FULL = Sizes(
    1024 * MIB,
    500,
    50,
    200 * MIB,
    10.0,
    200,
    30.0,
    10,
    1024 * MIB,
    1024 * MIB,
    100,
    60.0,
    30,
    256 * MIB,
    1024 * MIB,
)


def table(rows: list[Row]) -> str:
    head = ["scenario", "ours", "baseline", "ratio", "target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.scenario, r.ours, r.baseline, r.ratio, r.target, r.met]
        # A `|` in a cell (a regex alternation) would split it into two columns.
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _guard(name: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """One failing scenario is a row saying so, not a lost run."""
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        rows = fn()
    except Exception as exc:  # report, keep going
        rows = [Row(name, f"error: {type(exc).__name__}: {exc}", met="**no**")]
    print(f"bench: {name} done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return rows


def _peers(sizes: Sizes, only: set[str], work: Path, mib: int | None) -> list[Row]:
    """`--peers`: the scenarios that have peers, through ccx-tui and each peer in one run."""
    # A run stopped with SIGTERM still runs its `finally`s: they kill the peers' tmux servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    rows: list[Row] = []
    if "attached" in only:
        capture = work / "peers-capture.txt"
        make_line_file(capture, mib * MIB if mib else sizes.peer_capture_bytes)
        rows += _guard("peers capture", lambda: peers.capture(capture, work))
        capture.unlink()
    if "open" in only:
        log = work / "peers-open.txt"
        make_line_file(log, mib * MIB if mib else sizes.peer_open_bytes)
        rows += _guard("peers open", lambda: peers.open_log(log, work))
        log.unlink()
    if "switch" in only:  # already measured against tmux and mprocs: run as it is
        rows += _guard(
            "switch",
            lambda: switch.run(sizes.switch_sessions, sizes.switch_warmup, sizes.switch_reps, work),
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown file to write (default bench/RESULTS.md; --quick: bench/out/)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run this bench alone (repeatable; one of {', '.join(NAMES)}); "
        "the table goes to bench/out/, never bench/RESULTS.md",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="run the scenarios that have peers (attached, open, switch) through tmux, "
        "mprocs, toolong, less and lnav too, those that are installed, beside ccx-tui; the "
        "table goes to bench/RESULTS-peers.md (--quick, --only or --peer-mib: bench/out/)",
    )
    parser.add_argument(
        "--peer-mib",
        type=int,
        default=None,
        metavar="N",
        help="with --peers: line files of N MiB for capture and open "
        f"(default {QUICK.peer_capture_bytes >> 20} with --quick; "
        f"else {FULL.peer_capture_bytes >> 20} capture, {FULL.peer_open_bytes >> 20} open)",
    )
    ns = parser.parse_args(argv)
    sizes = QUICK if ns.quick else FULL
    if ns.peer_mib is not None and not ns.peers:
        parser.error("--peer-mib needs --peers")
    if ns.peers and (other := set(ns.only or ()) - set(PEER_NAMES)):
        parser.error(f"--peers runs {', '.join(PEER_NAMES)}, not {', '.join(sorted(other))}")
    only = set(ns.only or (PEER_NAMES if ns.peers else NAMES))

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ccx-bench-") as tmp:
        work = Path(tmp)
        if ns.peers:
            rows = _peers(sizes, only, work, ns.peer_mib)
            only = set()  # the rest of the suite is not part of a --peers run
        source = work / "lines.txt"
        if only & {"ingest", "pty", "open", "attached", "index"}:
            lines = make_line_file(source, sizes.file_bytes)
        if "ingest" in only:
            rows += _guard("ingest", lambda: ingest.run(source, work, verify_hash=ns.quick))
        if "pty" in only:
            rows += _guard("pty", lambda: pty_ingest.run(source, work, verify_hash=ns.quick))
        if "open" in only:
            rows += _guard("open", lambda: open_view.run(source, lines, work))
        if "attached" in only:
            rows += _guard("attached", lambda: attached.run(source, work, verify_hash=ns.quick))
        if "index" in only:
            rows += _guard("index", lambda: line_index.run(source, work))
        source.unlink(missing_ok=True)
        if "search" in only:
            rows += _guard("search", lambda: search.run(sizes.file_bytes, work))
        if "limit" in only:
            rows += _guard("limit", lambda: limit.run(sizes.sessions, sizes.max_sessions, work))
        if "slow_client" in only:
            rows += _guard(
                "slow client", lambda: slow_client.run(sizes.ws_bytes, sizes.stall, work)
            )
        if "keys" in only:
            rows += _guard("keys", lambda: keys.run(sizes.key_reps, work))
        if "scale" in only:
            rows += _guard(
                "scale", lambda: scale.run(sizes.scale_sessions, sizes.scale_seconds, work)
            )
        if "remote" in only:
            rows += _guard(
                "remote ingest",
                lambda: remote.run(
                    sizes.remote_bytes, sizes.remote_short_bytes, work, verify_hash=ns.quick
                ),
            )
        if "switch" in only:
            rows += _guard(
                "switch",
                lambda: switch.run(
                    sizes.switch_sessions, sizes.switch_warmup, sizes.switch_reps, work
                ),
            )
        if "switch_light" in only:
            rows += _guard("switch_light", lambda: switch_light.run(sizes.switch_reps, work))
        if "startup" in only:
            rows += _guard("startup", lambda: startup.run(work))
    if not ns.peers:
        rows += [Row(name) for name in NOT_YET]

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    mode = ("quick" if ns.quick else "full") + (", only " + ", ".join(ns.only) if ns.only else "")
    if ns.peer_mib:
        mode += f", {ns.peer_mib} MiB files"
    title = "ccx-tui beside tmux, mprocs, toolong, less and lnav" if ns.peers else "ccx-tui"
    text = (
        f"# {title} benchmarks ({mode})\n\n{now}; {machine_info()}\n\n"
        "Ratios compare against a baseline measured in the same run; memory is read from "
        "the OS (wait4 ru_maxrss, psutil).\n\n"
        f"{table(rows)}\n"
    )
    print(text)
    if ns.output:
        output = ns.output
    elif ns.peers:  # only a full run of every peer scenario is the record
        partial = ns.quick or ns.only or ns.peer_mib
        mode = "quick" if ns.quick else "full"
        output = QUICK_RESULTS.with_name(f"RESULTS-peers-{mode}.md") if partial else PEER_RESULTS
    elif ns.only:  # a partial table never replaces the whole one
        output = QUICK_RESULTS.with_name(f"RESULTS-{'quick' if ns.quick else 'full'}-only.md")
    else:
        output = QUICK_RESULTS if ns.quick else RESULTS
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
