"""Where a data dir's engine process keeps its socket, lock and log, and which process
holds the data dir: what clients need of daemon.py without importing the engine."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

SOCKET_NAME = "engine.sock"
LOCK_NAME = "engine.lock"
LOG_NAME = "engine.log"
EXIT_RUNNING = 3
"""Exit status of an engine that found another one holding the data dir."""


def socket_path(data_dir: Path) -> Path:
    return data_dir.expanduser().absolute() / SOCKET_NAME


def lock_path(data_dir: Path) -> Path:
    return data_dir.expanduser().absolute() / LOCK_NAME


def log_path(data_dir: Path) -> Path:
    return data_dir.expanduser().absolute() / LOG_NAME


def engine_pid(data_dir: Path) -> int | None:
    """The pid of the engine process holding `data_dir`, None if there is none."""
    try:
        fd = os.open(lock_path(data_dir), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:  # shared and at once: an engine holds it exclusively
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        return None
    finally:
        os.close(fd)  # releases our shared lock, if we got it
