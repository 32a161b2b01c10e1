"""`pty`: capturing through a pseudo-terminal, against pipes and against the kernel.

`ccx-tui exec --tty -- 'stty raw -echo; cat FILE'` against `ccx-tui exec -- 'cat FILE'`
on the same file, alternating, and against the least any program can do: a bare loop
that reads the same `cat` from a terminal's master and drops the bytes (`BARE`).  A
Linux terminal hands its output over about 4 KiB per read, through the kernel's tty
layer: on this kind of machine it moves a few hundred MB/s where a pipe moves GB/s, so
the ratio to pipes is the kernel's, and the one ccx-tui answers for is the one to the
bare loop.  `stty raw` turns the terminal's output processing off (as full-screen
programs do), so the transcript must equal the file byte for byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.common import Row, ccx, fmt_ratio, fmt_s, run_timed, yes_no
from bench.ingest import ROUNDS, take_transcript

TARGET = 1.5
BARE = """
import os, sys
master, slave = os.openpty()
path = os.ttyname(slave)
os.close(slave)
actions = [(os.POSIX_SPAWN_OPEN, 0, path, os.O_RDWR, 0),
           (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
command = "stty raw -echo; cat '%s'" % sys.argv[1]
pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], os.environ,
                     file_actions=actions, setsid=True)
while True:
    try:
        if not os.read(master, 1 << 20):
            break
    except OSError:  # EIO: the program is done
        break
os.waitpid(pid, 0)
"""


def run(source: Path, work: Path, *, verify_hash: bool) -> list[Row]:
    size = source.stat().st_size
    pipes_dir, tty_dir = work / "pipes", work / "tty"
    pipes, ttys, bares = [], [], []
    intact, got = True, size
    for _ in range(ROUNDS):
        bares.append(run_timed([sys.executable, "-c", BARE, str(source)]))
        done = run_timed(ccx("exec", "--data-dir", str(pipes_dir), "--", f"cat '{source}'"))
        ok, _ = take_transcript(pipes_dir, source, done.returncode == 0, verify_hash=False)
        pipes.append(done)
        command = f"stty raw -echo; cat '{source}'"
        done = run_timed(ccx("exec", "--tty", "--data-dir", str(tty_dir), "--", command))
        ok, got = take_transcript(tty_dir, source, done.returncode == 0, verify_hash=verify_hash)
        intact = intact and ok
        ttys.append(done)
    pipe = sorted(pipes, key=lambda r: r.seconds)[ROUNDS // 2]
    tty = sorted(ttys, key=lambda r: r.seconds)[ROUNDS // 2]
    bare = sorted(bares, key=lambda r: r.seconds)[ROUNDS // 2]
    check = "sha256 ok" if verify_hash else "size ok"
    note = check if intact else f"**transcript {got} of {size} bytes**"
    ratio = tty.seconds / bare.seconds
    return [
        Row(
            f"PTY ingest ({size >> 20} MiB through a terminal, `stty raw`, {note}; "
            f"median of {ROUNDS} alternating runs)",
            fmt_s(tty.seconds),
            fmt_s(bare.seconds) + " (a bare read loop on a terminal, the kernel's limit)",
            fmt_ratio(tty.seconds, bare.seconds),
            f"<= {TARGET:g}x",
            yes_no(intact and ratio <= TARGET),
        ),
        Row(
            f"PTY ingest against pipes ({size >> 20} MiB; the kernel's tty layer is the "
            "difference, see the row above)",
            fmt_s(tty.seconds),
            fmt_s(pipe.seconds) + " (ccx-tui exec through pipes)",
            fmt_ratio(tty.seconds, pipe.seconds),
            "(1.5x: not reachable on Linux ttys)",
            "",
        ),
    ]
