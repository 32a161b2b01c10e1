"""Where each run of a session begins in its transcript, and how it ended: `runs.jsonl`.

A view draws a separator above a restarted run's first line ("run 2 started 14:02:11 ·
run 1 exited 1") from this file; the transcript's bytes stay exactly the program's.
One JSON object per line, appended as runs start and end; a torn or foreign line is
skipped, never an error (the file only decorates the view).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNS_NAME = "runs.jsonl"
MAX_RUNS_BYTES = 4 * 1024 * 1024
"""A view reads at most this much of the file (some 40,000 runs of a crash loop)."""


@dataclass(frozen=True, slots=True)
class RunStart:
    """Run `run` began at byte `offset`, line `line` (0-based) of the transcript."""

    run: int
    offset: int
    line: int
    at: float


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How run `run` ended."""

    run: int
    at: float
    exit_code: int | None
    signal: int | None
    reason: str | None


def record_start(directory: Path, start: RunStart) -> bool:
    """Append a run's start; False if it could not be written (a full disk)."""
    return _append(
        directory, {"start": start.run, "offset": start.offset, "line": start.line, "at": start.at}
    )


def record_end(directory: Path, end: RunEnd) -> bool:
    """Append a run's end; False if it could not be written."""
    return _append(
        directory,
        {
            "end": end.run,
            "at": end.at,
            "exit_code": end.exit_code,
            "signal": end.signal,
            "reason": end.reason,
        },
    )


def read_runs(directory: Path) -> tuple[list[RunStart], dict[int, RunEnd]]:
    """The runs recorded (starts in file order, ends by run); empty if none."""
    try:
        with (directory / RUNS_NAME).open("rb") as f:
            data = f.read(MAX_RUNS_BYTES)
    except OSError:
        return [], {}
    starts: list[RunStart] = []
    ends: dict[int, RunEnd] = {}
    for raw in data.splitlines():
        try:
            item = json.loads(raw)
            if "start" in item:
                starts.append(
                    RunStart(
                        int(item["start"]),
                        int(item["offset"]),
                        int(item["line"]),
                        float(item["at"]),
                    )
                )
            elif "end" in item:
                run = int(item["end"])
                ends[run] = RunEnd(
                    run,
                    float(item["at"]),
                    _int_or_none(item.get("exit_code")),
                    _int_or_none(item.get("signal")),
                    item.get("reason") if isinstance(item.get("reason"), str) else None,
                )
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # a line torn by a crash, or not ours
    return starts, ends


def separator_label(start: RunStart, previous: RunEnd | None) -> str:
    """ "run 2 started 14:02:11 · run 1 exited 1" (plain text; the caller styles it)."""
    when = time.strftime("%H:%M:%S", time.localtime(start.at))
    label = f"run {start.run} started {when}"
    if previous is not None:
        label += f" · run {previous.run} {describe_end(previous)}"
    return label


def describe_end(end: RunEnd) -> str:
    """ "exited 0", "killed by SIGTERM (restarted)", "failed: cannot start sh"."""
    if end.signal is not None:
        try:
            name = signal.Signals(end.signal).name
        except ValueError:
            name = f"signal {end.signal}"
        text = f"killed by {name}"
    elif end.exit_code is not None:
        text = f"exited {end.exit_code}"
    else:
        return f"ended ({end.reason})" if end.reason else "ended"
    return f"{text} ({end.reason})" if end.reason else text


def runs_size(directory: Path) -> int:
    """How many bytes the session's runs.jsonl has (0 if none)."""
    try:
        return os.stat(directory / RUNS_NAME).st_size
    except OSError:
        return 0


def append_copy(directory: Path, offset: int, data: bytes) -> bool:
    """Append whole lines of another runs.jsonl (a server's, copied) that start at
    byte `offset` of it, keeping this file an exact prefix of that one: nothing is
    written unless this file has exactly `offset` bytes, and a write that fails part
    way (a full disk) is undone.  One write: a reader sees no torn line but in the
    moment it lands (and skips it then, see `read_runs`).  False if not written."""
    fd = _open_append(directory)
    if fd is None:
        return False
    try:
        if os.fstat(fd).st_size != offset:
            return False
        try:
            if os.write(fd, data) == len(data):
                return True
        except OSError:
            pass
        os.ftruncate(fd, offset)
        return False
    except OSError:
        return False
    finally:
        os.close(fd)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _append(directory: Path, item: dict[str, Any]) -> bool:
    line = (json.dumps(item, separators=(",", ":")) + "\n").encode()
    fd = _open_append(directory)
    if fd is None:
        return False
    try:
        return os.write(fd, line) == len(line)  # one write: O_APPEND keeps lines whole
    except OSError:
        return False
    finally:
        os.close(fd)


def _open_append(directory: Path) -> int | None:
    """The session's runs.jsonl opened for appending (made if missing), or None."""
    try:
        return os.open(
            directory / RUNS_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
    except OSError:
        return None
