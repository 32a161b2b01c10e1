"""A real `ccx-tui serve` in a subprocess, for tests of the CLIs against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CCX = [sys.executable, "-m", "ccx_tui"]
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("CCX_TUI_")}
"""Our environment without CCX_TUI_* (no token or data dir leaks into a test)."""


@contextmanager
def serving(data_dir: Path, *extra: str, **env: str) -> Iterator[tuple[str, list[str]]]:
    """A real `ccx-tui serve` on a free loopback port: (its URL, what it said first)."""
    proc = subprocess.Popen(
        [*CCX, "serve", "--port", "0", "--data-dir", str(data_dir), *extra],
        stderr=subprocess.PIPE,
        text=True,
        env={**CLEAN, **env},
    )
    try:
        assert proc.stderr is not None
        said: list[str] = []
        for line in proc.stderr:  # ends at EOF if serve dies; pytest-timeout bounds it
            said.append(line)
            if "listening on " in line:
                break
        else:
            raise AssertionError(f"serve did not start: {said}")
        yield said[-1].split("listening on ")[1].split()[0], said
    finally:
        proc.terminate()
        proc.wait(20)
