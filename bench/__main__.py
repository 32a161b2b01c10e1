"""`python -m bench [--quick]`: run the suite, print a markdown table, write RESULTS.md."""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import ingest, keys, limit, open_view, remote, scale, search, slow_client
from bench.common import MIB, Row, machine_info, make_line_file

NOT_YET: list[str] = []
RESULTS = Path(__file__).with_name("RESULTS.md")
QUICK_RESULTS = Path(__file__).with_name("out") / "RESULTS-quick.md"  # never the real table


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


QUICK = Sizes(64 * MIB, 100, 10, 32 * MIB, 3.0, 40, 5.0, 5, 64 * MIB, 16 * MIB)
FULL = Sizes(1024 * MIB, 500, 50, 200 * MIB, 10.0, 200, 30.0, 10, 1024 * MIB, 1024 * MIB)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown file to write (default bench/RESULTS.md; --quick: bench/out/)",
    )
    ns = parser.parse_args(argv)
    sizes = QUICK if ns.quick else FULL

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ccx-bench-") as tmp:
        work = Path(tmp)
        source = work / "lines.txt"
        lines = make_line_file(source, sizes.file_bytes)
        rows += _guard("ingest", lambda: ingest.run(source, work, verify_hash=ns.quick))
        rows += _guard("open", lambda: open_view.run(source, lines, work))
        source.unlink()
        rows += _guard("search", lambda: search.run(sizes.file_bytes, work))
        rows += _guard("limit", lambda: limit.run(sizes.sessions, sizes.max_sessions, work))
        rows += _guard("slow client", lambda: slow_client.run(sizes.ws_bytes, sizes.stall, work))
        rows += _guard("keys", lambda: keys.run(sizes.key_reps, work))
        rows += _guard("scale", lambda: scale.run(sizes.scale_sessions, sizes.scale_seconds, work))
        rows += _guard(
            "remote ingest",
            lambda: remote.run(
                sizes.remote_bytes, sizes.remote_short_bytes, work, verify_hash=ns.quick
            ),
        )
    rows += [Row(name) for name in NOT_YET]

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    mode = "quick" if ns.quick else "full"
    text = (
        f"# ccx-tui benchmarks ({mode})\n\n{now}; {machine_info()}\n\n"
        "Ratios compare against a baseline measured in the same run; memory is read from "
        "the OS (wait4 ru_maxrss, psutil).\n\n"
        f"{table(rows)}\n"
    )
    print(text)
    output = ns.output or (QUICK_RESULTS if ns.quick else RESULTS)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
