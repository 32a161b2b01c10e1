"""`index`: a view's line index of a session's 1 GiB transcript, vs `wc -l`.

A view needs the line count and a checkpoint every 64 KiB to reach any line.  It used
to count every byte again (in the app, during the flood that wrote them); now it adopts
the checkpoints the engine wrote beside the transcript (`lines.idx`, see
line_index.py) and counts only the first checkpoint and the part past the last one.
The transcript is a real one, written by `ccx-tui exec -- cat FILE`; the figures are
CPU seconds of the indexing (the file is in the page cache: `wc -l` reads it first),
the baseline `wc -l` on the same transcript, and the old path (counting) beside.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
from pathlib import Path

from bench.common import Row, ccx, fmt_ratio, run_timed, yes_no
from ccx_tui.engine.transcripts.line_index import INDEX_NAME
from ccx_tui.engine.transcripts.reader import TranscriptReader

ROUNDS = 5


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _index(path: Path, index: Path | None) -> tuple[float, int]:
    """(CPU seconds, lines) of indexing `path` whole, as a view does."""
    before = _cpu()
    with TranscriptReader(path, index) as reader:
        while reader.refresh(64 * 1024 * 1024):
            pass
        return _cpu() - before, reader.line_count


def _wc(path: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["wc", "-l", str(path)], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(source: Path, work: Path) -> list[Row]:
    data_dir = work / "index-data"
    done = run_timed(ccx("exec", "--data-dir", str(data_dir), "--", f"cat '{source}'"))
    [transcript] = (data_dir / "sessions").glob("*/transcript.log")
    size_mib = transcript.stat().st_size >> 20
    wc: list[float] = []
    adopted: list[float] = []
    counted: list[float] = []
    lines: set[int] = set()
    for _ in range(ROUNDS):
        wc.append(_wc(transcript))
        seconds, count = _index(transcript, transcript.with_name(INDEX_NAME))
        adopted.append(seconds)
        lines.add(count)
        seconds, count = _index(transcript, None)
        counted.append(seconds)
        lines.add(count)
    shutil.rmtree(data_dir)
    ours, base, old = (statistics.median(v) for v in (adopted, wc, counted))
    agree = done.returncode == 0 and len(lines) == 1
    return [
        Row(
            f"index a {size_mib} MiB session transcript for a view (CPU, median of {ROUNDS}; "
            f"counting it as before: {old:.2f} s; line counts "
            f"{'agree' if agree else f'**differ: {sorted(lines)}**'})",
            f"{ours:.3f} s",
            f"{base:.3f} s (`wc -l`)",
            fmt_ratio(ours, base),
            "<= 1x",
            yes_no(agree and ours <= base),
        )
    ]
