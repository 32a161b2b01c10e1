"""Terminal sessions as a user tries them, in tmux (issue 12): a print shows at once,
the program's terminal is the view's size and follows it, and typing in input mode
answers a prompt."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.helpers import wait_gone
from tests.test_e2e_tmux import Tmux, ccx, pytestmark, rows, sessions  # noqa: F401

HELLO = """python3 -c 'print("hello"); import time; time.sleep(60)'"""
COLS = "trap 'echo cols=$(tput cols)' WINCH; echo cols=$(tput cols); while :; do sleep 0.1; done"
PROMPT = 'printf "Continue? [y/N] "; read answer; echo "answer=$answer"; sleep 60'


def view_width(screen: str) -> int:
    """Columns left of the sidebar's border, less the room of the view's scrollbar
    (2 columns): the width of the output view's text."""
    return rows(screen)[3].index("▏") - 2


def last_cols(screen: str) -> int | None:
    found = re.findall(r"cols=(\d+)", screen)
    return int(found[-1]) if found else None


def test_a_print_shows_at_once_and_the_terminal_follows_the_view(
    tmux: Tmux, tmp_path: Path
) -> None:
    """`print` with no PYTHONUNBUFFERED shows while the program sleeps (pipes hid it
    until exit); `tput cols` is the view's width, and when the tmux window is made
    wider the program gets SIGWINCH and sees the new width."""
    data = tmp_path / "data"
    tmux.start(ccx("--data-dir", str(data), "--kill-grace", "0.5", COLS, HELLO))
    screen = tmux.wait_screen(lambda s: last_cols(s) is not None, "cols=")
    assert last_cols(screen) == view_width(screen)
    # The size it started with was the view's: no SIGWINCH, no second line.
    assert len(re.findall(r"cols=\d+", screen)) == 1, screen
    tmux.wait_screen(lambda s: "python3 -c" in rows(s)[0], "the second tab")
    tmux.send("2")
    tmux.wait_for_screen("hello")
    tmux.send("1")
    tmux.wait_screen(lambda s: last_cols(s) is not None, "the cols tab")
    # Manual: with no client attached, tmux would size the window back to its default.
    tmux.run("set-option", "-w", "-t", "e2e", "window-size", "manual")
    tmux.run("resize-window", "-t", "e2e", "-x", "150")
    screen = tmux.wait_screen(
        lambda s: last_cols(s) == view_width(s) and view_width(s) > 100, "the new width"
    )
    assert "sleep" not in screen  # the command's text is not the output
    tmux.send("q")
    tmux.wait_for_screen("Kill and quit")
    tmux.send("k")
    assert tmux.wait_exit(20) == 0
    ids = [s["id"] for s in sessions(data).values()]
    assert all(wait_gone(f"{sid}.") == [] for sid in ids)


def test_typing_in_input_mode_answers_a_prompt(tmux: Tmux, tmp_path: Path) -> None:
    """`read` waits (on pipes it got EOF at once); `i` enters input mode, which the
    footer and the status line say; the keys typed reach the program; ctrl+] leaves,
    and then keys are ccx-tui's again."""
    data = tmp_path / "data"
    tmux.start(ccx("--data-dir", str(data), "--kill-grace", "0.5", PROMPT))
    tmux.wait_for_screen("Continue? [y/N]")
    tmux.send("i")
    screen = tmux.wait_for_screen("INPUT · keys go to")
    assert "⌨ INPUT: keys go to the program (ctrl+] leaves)" in screen
    assert "x Kill" not in screen  # the footer of keys gives way to the banner
    tmux.send("-l", "x y")  # literally: `x` would kill outside input mode
    tmux.send("Enter")
    screen = tmux.wait_for_screen("answer=x y")
    assert "running" in screen
    tmux.send("C-]")
    tmux.wait_screen(lambda s: "INPUT" not in s and "x Kill" in s, "input mode left")
    tmux.send("x")  # ccx-tui's again: kills
    tmux.wait_for_screen("killed · run 1")
    tmux.send("q")
    assert tmux.wait_exit(20) == 0


def test_a_full_screen_program_is_drawn_and_driven_by_keys(tmux: Tmux, tmp_path: Path) -> None:
    """A curses program on the alternate screen is shown as its live screen; in input
    mode `+` and the up arrow (sent as curses expects in application cursor mode)
    reach it; when it leaves, the transcript view is back with what followed."""
    data = tmp_path / "data"
    demo = Path(__file__).parent / "programs" / "curses_demo.py"
    # printf: the tab's title (the command) must not hold the words looked for
    command = (
        f"printf 'BEFORE%s\\n' -MARK; {sys.executable} {demo}; printf 'AFTER%s\\n' -MARK; sleep 60"
    )
    tmux.start(ccx("--data-dir", str(data), "--kill-grace", "0.5", command))
    # The program's screen (its first bytes may show as transcript lines for a frame,
    # until the engine's word that it entered the alternate screen arrives).
    tmux.wait_screen(
        lambda s: "CURSES-DEMO" in s and "count=0" in s and "BEFORE-MARK" not in s,
        "the program's own screen",
    )
    tmux.send("i")
    tmux.send("+", "+", "Up")
    tmux.wait_for_screen("count=12")
    tmux.send("q")
    screen = tmux.wait_screen(
        lambda s: "demo done" in s and "AFTER-MARK" in s, "the transcript view again"
    )
    assert "BEFORE-MARK" in screen and "count=" not in screen
    tmux.send("C-]", "q")
    tmux.wait_for_screen("Kill and quit")
    tmux.send("k")
    assert tmux.wait_exit(20) == 0
