"""End to end: hostile escape sequences in output never reach the real terminal (tmux)."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.test_e2e_tmux import Tmux, ccx, pytestmark  # noqa: F401  (tmux's marks: ours too)

# Each line tries to set the pane title ("pwned") or write tmux's paste buffer (OSC 52),
# bare or hidden in the URL of an OSC 8 hyperlink, which the view used to pass on to the
# terminal inside its own link sequence.
CLIPBOARD = b"\x1b]52;c;cHduZWQ=\x07"  # base64 of "pwned"
HOSTILE = (
    b"title \x1b]2;pwned\x07 bare\n"
    b"title \x1b]0;pwned\x1b\\ st\n"
    b"clipboard " + CLIPBOARD + b" bare\n"
    b"\x1b]8;;http://example.com/\x1b]2;pwned\x07\x1b\\LINK-TITLE\x1b]8;;\x1b\\\n"
    b"\x1b]8;;http://example.com/" + CLIPBOARD + b"\x1b\\LINK-CLIP\x1b]8;;\x1b\\\n"
    b"\x1b]8;;http://example.com/ok\x1b\\GOOD-LINK\x1b]8;;\x1b\\\n"
    b"\xc2\x9d2;pwned\xc2\x9c 8-bit osc\n"
    b"\x1bPdcs\x1b\\ \x1b_apc\x1b\\ \x1b^pm\x1b\\ \x1bXsos\x1b\\ \x1b[2J\x1b[H ALL-SHOWN\n"
)


def assert_terminal_untouched(tmux: Tmux) -> None:
    title = tmux.run("display-message", "-p", "-t", "e2e", "#{pane_title}").strip()
    buffers = tmux.run("list-buffers").strip()
    assert ("pwned" not in title, buffers) == (True, ""), f"title {title!r}, buffers {buffers!r}"


def test_view_passes_no_escape_sequence_to_the_terminal(tmux: Tmux, tmp_path: Path) -> None:
    """`ccx-tui view FILE` of a file full of title (OSC 0/2), clipboard (OSC 52) and
    hyperlinks with sequences in their URL: every line's text shows, tmux's pane title
    and paste buffers stay as they were.  Before the fix, the OSC 8 link's URL went to
    the terminal with the title and clipboard sequences in it."""
    hostile = tmp_path / "hostile.log"
    hostile.write_bytes(HOSTILE)
    tmux.start(ccx("view", "--data-dir", str(tmp_path / "data"), str(hostile)))
    screen = tmux.wait_for_screen("ALL-SHOWN")
    for text in ("LINK-TITLE", "LINK-CLIP", "GOOD-LINK", "title", "clipboard"):
        assert text in screen, screen
    tmux.send("q")
    assert tmux.wait_exit() == 0  # everything the app wrote has reached tmux by now
    assert_terminal_untouched(tmux)


def test_tui_passes_no_escape_sequence_to_the_terminal(tmux: Tmux, tmp_path: Path) -> None:
    """The same file printed by a session of the TUI: the output tab shows it, and the
    pane title and paste buffers stay as they were."""
    hostile = tmp_path / "hostile.log"
    hostile.write_bytes(HOSTILE)
    command = f"cat {shlex.quote(str(hostile))}; sleep 1000"
    tmux.start(ccx("--data-dir", str(tmp_path / "data"), "--kill-grace", "0.5", command))
    screen = tmux.wait_for_screen("ALL-SHOWN")
    assert "LINK-TITLE" in screen and "LINK-CLIP" in screen, screen
    tmux.send("q")
    tmux.wait_for_screen("still running or queued")
    tmux.send("k")  # kill them and quit
    assert tmux.wait_exit() == 0
    assert_terminal_untouched(tmux)
