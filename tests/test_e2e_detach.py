"""End to end in tmux: detach, attach, two terminals on one engine process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import wait_gone_for
from tests.test_e2e_tmux import ALPHA, TMUX, Tmux, ccx, sessions

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
    pytest.mark.timeout(90),
]


def _terminal(tmp_path: Path, name: str) -> Tmux:
    folder = tmp_path / name
    folder.mkdir()
    return Tmux(folder)


def test_detach_attach_and_two_terminals(tmp_path: Path) -> None:
    """A session started in terminal A shows in terminal B (`ccx-tui attach`) with its
    output so far; A detaches (`d`) and the session runs on; a kill in B ends it; A
    attaches again and finds it killed, its output intact."""
    data = str(tmp_path / "data")
    a, b = _terminal(tmp_path, "a"), _terminal(tmp_path, "b")
    try:
        a.start(ccx("--no-config", "--data-dir", data, "--kill-grace", "0.5", ALPHA))
        a.wait_for_screen("ALPHA-OUT", timeout=30)
        b.start(ccx("attach", "--no-config", "--data-dir", data))
        b.wait_for_screen("ALPHA-OUT", timeout=30)  # the second client: same session
        b.wait_for_screen("running 1/16")

        a.send("d")  # detach at once
        assert a.wait_exit(timeout=30) == 0
        assert "[detached: 1 session(s) keep running" in a.scrollback()
        assert sessions(Path(data))[ALPHA]["state"] == "running"

        b.send("x")  # kill it from the other terminal
        b.wait_for_screen("killed", timeout=30)
        assert sessions(Path(data))[ALPHA]["state"] == "killed"
        b.send("q")  # nothing runs: quits without asking
        assert b.wait_exit(timeout=30) == 0
    finally:
        a.close()
        b.close()
    assert wait_gone_for(Path(data)) == []


def test_attach_without_an_engine_is_a_clear_error(tmp_path: Path) -> None:
    """`ccx-tui attach` with no engine process running says so in one line."""
    a = _terminal(tmp_path, "a")
    try:
        a.start(ccx("attach", "--no-config", "--data-dir", str(tmp_path / "data")))
        assert a.wait_exit(timeout=30) == 2
        assert "no engine process runs sessions in" in a.scrollback()
    finally:
        a.close()
