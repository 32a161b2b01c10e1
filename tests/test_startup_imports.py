"""What the light commands import: never Textual, nor what their path does not use.

Each command runs as a real process under `python -X importtime`, which reports every
module the process loads over its whole life (lazy imports included).  A module made
lazy for startup time (issue 14) that comes back as an eager import fails here; how
long startup takes is measured by bench/startup.py, never here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

UI = ("textual", "rich", "pyte", "ccx_tui.app", "ccx_tui.widgets")
NETWORK = (
    "websockets",
    "urllib.request",
    "http.client",
    "ccx_tui.engine.wire",
    "ccx_tui.engine.server",
)
NOT_FOR_EXEC = (
    *UI,
    *NETWORK,
    "psutil",  # only to hunt a tree that outlived its process
    "tomllib",  # only when there is a config file
    "ccx_tui.config_file",
    "ccx_tui.engine.transcripts.search",  # only for a `log` readiness probe
)
"""Not loaded by `ccx-tui exec -- true`."""
NOT_FOR_READING = (*NOT_FOR_EXEC, "ccx_tui.engine.sessions.local")
"""Not loaded by `--help` or `sessions`, which run no engine."""


def imported(args: list[str], cwd: Path) -> set[str]:
    """The modules `python -m ccx_tui ARGS` imports from start to exit (it must succeed)."""
    return traced(["-m", "ccx_tui", *args], cwd)


def traced(args: list[str], cwd: Path) -> set[str]:
    """The modules `python ARGS` imports from start to exit (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        cwd=cwd,  # no ./ccx.toml here
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {
        line.rpartition("|")[2].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return {name for name in names if " " not in name}  # not the header line


def loaded(modules: set[str], banned: Iterable[str]) -> list[str]:
    """The modules of `modules` that are, or are inside, one of `banned`."""
    return sorted(m for m in modules if any(m == b or m.startswith(f"{b}.") for b in banned))


@pytest.mark.parametrize(
    ("args", "banned", "needed"),
    [
        (["exec", "--", "true"], NOT_FOR_EXEC, "ccx_tui.engine.sessions.local"),
        (["exec", "--tty", "--", "true"], NOT_FOR_EXEC, "ccx_tui.engine.sessions.pty_proc"),
        (["sessions"], NOT_FOR_READING, "ccx_tui.headless"),
        (["sessions", "--json"], NOT_FOR_READING, "ccx_tui.headless"),
    ],
    ids=["exec", "exec-tty", "sessions", "sessions-json"],
)
def test_headless_commands_load_only_what_they_use(
    args: list[str], banned: tuple[str, ...], needed: str, tmp_path: Path
) -> None:
    """`exec -- true` loads neither Textual nor psutil, websockets, urllib.request or
    the config file's parser; `sessions` not even the engine.  A failure lists the
    modules that came back: find who imports them with `-X importtime`."""
    modules = imported([*args[:1], "--data-dir", str(tmp_path / "data"), *args[1:]], tmp_path)
    assert needed in modules  # the list is real: the command ran and was traced
    assert loaded(modules, banned) == []


def test_help_loads_neither_the_engine_nor_the_ui(tmp_path: Path) -> None:
    """`ccx-tui --help` is argparse and the settings, nothing more of ours (not even
    asyncio: the settings take the secret variables' names from env_names.py)."""
    modules = imported(["--help"], tmp_path)
    assert "ccx_tui.cli" in modules
    assert loaded(modules, (*NOT_FOR_READING, "asyncio")) == []


def test_a_config_file_loads_its_parser_when_there_is_one(tmp_path: Path) -> None:
    """The lazy imports load when needed: with --config, `exec` reads the file (so the
    absence of tomllib above is laziness, not a blind spot of the trace)."""
    config = tmp_path / "ccx.toml"
    config.write_text("[defaults]\nkill_grace = 1\n")
    args = ["exec", "--data-dir", str(tmp_path / "data"), "--config", str(config), "--", "true"]
    modules = imported(args, tmp_path)
    assert {"tomllib", "ccx_tui.config_file"} <= modules
    assert loaded(modules, UI) == []


NOT_FOR_VIEWING = (
    *NETWORK,
    "psutil",
    "pyte",  # a full-screen program's screen: the app's tabs only
    "ccx_tui.app",
    "ccx_tui.engine.sessions.local",
)
"""Not loaded by `ccx-tui view`, which reads a file: no engine, no tabs, no network."""


def test_the_viewer_loads_neither_the_app_nor_the_engine(tmp_path: Path) -> None:
    """`ccx-tui view` (ccx_tui.viewer, what cli imports for it) loads Textual and the
    transcript view, not the app's tabs, the engine or the network client.  Imported,
    not run: the app needs a terminal (tests/test_viewer.py runs it)."""
    modules = traced(["-c", "import ccx_tui.cli, ccx_tui.viewer"], tmp_path)
    assert "ccx_tui.widgets.transcript_view" in modules
    assert loaded(modules, NOT_FOR_VIEWING) == []
