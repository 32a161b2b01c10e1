"""CPU and memory of each session's process tree, sampled in one pass."""

from __future__ import annotations

import contextlib
import os

import psutil

from ccx_tui.engine.sessions.events import TreeUsage
from ccx_tui.engine.sessions.process import MARKER_ENV

__all__ = ["TreeUsage", "UsageSampler"]


class UsageSampler:
    """Call `sample()` about once a second (from a thread: it reads /proc).

    Keeps the psutil.Process objects between calls so CPU percentages are measured
    over the interval since the previous sample.
    """

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._markers: dict[int, str] = {}

    def sample(self) -> dict[str, TreeUsage]:
        """Usage per session id, for every process ccx-tui started (and their children)."""
        try:
            children = psutil.Process(os.getpid()).children(recursive=True)
        except psutil.Error:
            return {}
        seen: set[int] = set()
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for child in children:
            pid = child.pid
            seen.add(pid)
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = child
                with contextlib.suppress(psutil.Error):
                    marker = child.environ().get(MARKER_ENV)
                    if marker:
                        self._markers[pid] = marker
                with contextlib.suppress(psutil.Error):
                    proc.cpu_percent(None)  # primes the counter
            marker = self._markers.get(pid)
            if marker is None:
                continue
            session_id = marker.split(".")[0]
            with contextlib.suppress(psutil.Error):
                cpu[session_id] = cpu.get(session_id, 0.0) + proc.cpu_percent(None)
                rss[session_id] = rss.get(session_id, 0) + proc.memory_info().rss
        for pid in list(self._procs):
            if pid not in seen:
                del self._procs[pid]
                self._markers.pop(pid, None)
        return {sid: TreeUsage(cpu[sid], rss.get(sid, 0)) for sid in cpu}
