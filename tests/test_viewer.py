"""`ccx-tui view`: any file or a past session, read-only, following as it grows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ccx_tui.config import Settings
from ccx_tui.viewer import ViewerApp, resolve_view_target
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.helpers import until


def text(app: ViewerApp) -> str:
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


async def test_view_file_follows_and_scrolls(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(1, 200_001)))
    app = ViewerApp(log, "big.log")
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(TranscriptView)
        await until(lambda: view.line_count == 200_000, what="indexed")
        await until(lambda: "line 200000" in text(app))
        await pilot.press("g")
        await until(lambda: text(app).startswith("line 1\nline 2\n"))
        await pilot.press("G")
        await until(lambda: "line 200000" in text(app))
        with log.open("ab") as f:
            f.write(b"appended later\n")
        await until(lambda: "appended later" in text(app), what="followed the file")
        await pilot.press("q")


def test_view_resolves_session_ids(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "ccx_tui", "exec", "--data-dir", str(data), "--", "echo viewed"],
        check=True,
        capture_output=True,
    )
    [session_dir] = (data / "sessions").iterdir()
    path, title = resolve_view_target(Settings(data_dir=data), session_dir.name[:8])
    assert path == session_dir / "transcript.log"
    assert "echo viewed" in title


def test_view_errors_are_one_line(tmp_path: Path) -> None:
    for target, message in [
        (str(tmp_path / "nope.log"), "no such file or session"),
        ("ffffffff", "no such file or session"),
        (str(tmp_path), "is a directory"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "ccx_tui", "view", "--data-dir", str(tmp_path / "d"), target],
            capture_output=True,
            timeout=30,
        )
        assert proc.returncode == 2
        assert message in proc.stderr.decode()
        assert "Traceback" not in proc.stderr.decode()


@pytest.fixture
def marked_up_session(tmp_path: Path) -> Path:
    """A data dir with one session whose command holds markup and a title sequence."""
    data = tmp_path / "data"
    command = "true # [/] [b]x \x1b]2;pwned\x07"
    subprocess.run(
        [sys.executable, "-m", "ccx_tui", "exec", "--data-dir", str(data), "--", command],
        check=True,
        capture_output=True,
    )
    return data


async def test_view_title_is_plain_text_with_visible_escapes(marked_up_session: Path) -> None:
    """`ccx-tui view ID` of a session whose command holds markup (`[/]`, `[b]`) and a
    title sequence: the title line shows it as text, the sequence as visible escapes.
    (The title used to go through markup, where `[/]` raised MarkupError, and its
    ESC to the terminal.)"""
    data = marked_up_session
    [session_dir] = (data / "sessions").iterdir()
    path, title = resolve_view_target(Settings(data_dir=data), session_dir.name[:20])
    assert title == f"{session_dir.name} · true # [/] [b]x \\x1b]2;pwned\\x07"
    app = ViewerApp(path, title)
    async with app.run_test(size=(100, 24)) as pilot:
        await until(lambda: "[/] [b]x \\x1b]2;pwned\\x07" in text(app), what="the title")
        strips = app.screen._compositor.render_strips()
        assert not any("\x1b" in seg.text for strip in strips for seg in strip), text(app)
        await pilot.press("q")
