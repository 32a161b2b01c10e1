"""Terminal sessions across a detach (issue 12): attaching while a full-screen program
runs shows its live screen at once, and keys still reach it."""

from __future__ import annotations

import sys
from pathlib import Path

from ccx_tui.app import make_app
from ccx_tui.config import DeclaredSession, Settings
from ccx_tui.engine import SessionSpec
from tests.helpers import until
from tests.test_app import SIZE, screen_text

DEMO = Path(__file__).parent / "programs" / "curses_demo.py"


async def test_attaching_to_a_running_full_screen_program_shows_its_screen(
    data_dir: Path,
) -> None:
    spec = SessionSpec(f"{sys.executable} {DEMO}", name="demo", tty=True)
    settings = Settings(data_dir=data_dir, kill_grace=0.3, on_exit="detach")
    first = make_app(settings, [], declared=[DeclaredSession(spec)], sample_usage=False)
    async with first.run_test(size=SIZE) as pilot:
        await until(lambda: "count=0" in screen_text(first), what="the program's screen")
        await pilot.press("i", "plus")
        await until(lambda: "count=1" in screen_text(first), what="a key taken")
    # Detached: the engine process runs it on.  A new client attaches.
    second = make_app(settings, [], sample_usage=False)
    async with second.run_test(size=SIZE) as pilot:
        await until(lambda: "count=1" in screen_text(second), what="its screen, on attach")
        assert "CURSES-DEMO" in screen_text(second)
        await pilot.press("i", "plus", "plus")
        await until(lambda: "count=3" in screen_text(second), what="keys from the new client")
        await pilot.press("q")  # the program's: input mode
        await until(lambda: "demo done" in screen_text(second), what="the transcript again")
