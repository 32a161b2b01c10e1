"""TranscriptView's `less` keys: space b, ctrl+f ctrl+b, ctrl+d ctrl+u, ← → by half, 0 $."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.binding import BindingsMap, BindingType
from textual.pilot import Pilot

from ccx_tui.app import CcxApp
from ccx_tui.viewer import ViewerApp
from ccx_tui.widgets.transcript_panel import TranscriptPanel
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.helpers import until
from tests.test_transcript_view import ViewApp, numbered, rows, wait_for

SIZE = (80, 20)
"""200 short lines fill 20 rows and 78 columns (the vertical scrollbar takes 2)."""
LESS_KEYS = ["space", "b", "ctrl+f", "ctrl+b", "ctrl+d", "ctrl+u", "0", "dollar_sign"]
PAGE_KEYS = [("pagedown", "pageup"), ("space", "b"), ("ctrl+f", "ctrl+b")]


@pytest.fixture
def lines_200(tmp_path: Path) -> Path:
    return numbered(tmp_path / "n.log", 200)


def wide_file(path: Path, lines: dict[int, str]) -> Path:
    """200 lines 'line N', with the (1-based) lines in `lines` replaced."""
    path.write_text("".join(lines.get(i, f"line {i}") + "\n" for i in range(1, 201)))
    return path


async def opened(pilot: Pilot[None], lines: int = 200) -> TranscriptView:
    view = pilot.app.query_one(TranscriptView)
    await wait_for(pilot, lambda: view.line_count == lines)
    await pilot.pause()
    return view


async def to_bottom(pilot: Pilot[None], view: TranscriptView, key: str) -> None:
    """Press `key` until the view is at the bottom (a bounded number of times)."""
    for _ in range(len(rows(view)) * 2):
        if round(view.scroll_y) >= view.max_scroll_y:
            return
        await pilot.press(key)
    raise AssertionError(f"{key} did not reach the bottom")


def keys_of(bindings: list[BindingType]) -> set[str]:
    return set(BindingsMap(bindings).key_to_bindings)


# -- vertical ---------------------------------------------------------------------------


@pytest.mark.parametrize(("down", "up"), PAGE_KEYS)
async def test_page_keys_move_a_screen_as_pgdn_pgup(lines_200: Path, down: str, up: str) -> None:
    """space / ctrl+f page down and b / ctrl+b page up by the 20 rows PgDn / PgUp do:
    the top line goes 1 -> 21 -> 41 -> 21 -> 1."""
    app = ViewApp(lines_200, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot)
        assert rows(view)[0] == "line 1"
        await pilot.press(down)
        assert view.scroll_y == 20 and rows(view)[0] == "line 21"
        await pilot.press(down)
        assert rows(view)[0] == "line 41"
        await pilot.press(up)
        assert rows(view)[0] == "line 21"
        await pilot.press(up)
        assert view.scroll_y == 0 and rows(view)[0] == "line 1"


async def test_ctrl_d_ctrl_u_move_half_a_screen(lines_200: Path) -> None:
    """ctrl+d / ctrl+u scroll 10 of the 20 rows: the top line goes 1 -> 11 -> 21 -> 11 -> 1."""
    app = ViewApp(lines_200, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot)
        await pilot.press("ctrl+d")
        assert view.scroll_y == 10 and rows(view)[0] == "line 11"
        await pilot.press("ctrl+d")
        assert rows(view)[0] == "line 21"
        await pilot.press("ctrl+u")
        assert rows(view)[0] == "line 11"
        await pilot.press("ctrl+u")
        assert view.scroll_y == 0 and rows(view)[0] == "line 1"


async def test_keys_stop_and_keep_following_as_pgup_pgdn_do(lines_200: Path) -> None:
    """Scrolling up by any of the new keys stops following, as PgUp does; scrolling down
    to the bottom leaves `following` as PgDn leaves it; at the bottom while following,
    a key down keeps following (new output still shows)."""
    app = ViewApp(lines_200)
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot)
        assert view.following
        await pilot.press("pageup")
        assert not view.following
        await to_bottom(pilot, view, "pagedown")
        after_pgdn = view.following  # the reference: what PgDn does at the bottom

        for down, up in [*PAGE_KEYS[1:], ("ctrl+d", "ctrl+u")]:
            await pilot.press("G")
            assert view.following
            await pilot.press(down)  # already at the bottom: nothing moves
            assert view.following, down
            await pilot.press(up)
            assert not view.following, up
            assert rows(view)[-1] != "line 200"
            await to_bottom(pilot, view, down)
            assert rows(view)[-1] == "line 200"
            assert view.following == after_pgdn, down

        await pilot.press("G")
        numbered(lines_200, 3, start=201)
        view.refresh_source()
        await wait_for(pilot, lambda: rows(view)[-1] == "line 203")
        await pilot.press("space")
        assert view.following and view.new_lines == 0


# -- horizontal -------------------------------------------------------------------------


async def test_arrows_scroll_sideways_by_half_the_text_width(tmp_path: Path) -> None:
    """→ / ← scroll half the 78 text columns (39), as in `less`; with the line-number
    gutter (4 columns) half of the 74 left; → stops at the end of the longest line."""
    path = wide_file(tmp_path / "wide.log", {1: "0123456789" * 30})
    app = ViewApp(path, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot)
        await pilot.press("right")
        assert view.scroll_x == 39
        assert rows(view)[0].startswith("9012345678")
        await pilot.press("right")
        assert view.scroll_x == 78
        await pilot.press("left")
        assert view.scroll_x == 39
        await pilot.press("left", "left")
        assert view.scroll_x == 0 and rows(view)[0].startswith("0123456789")

        for _ in range(10):
            await pilot.press("right")
        assert view.scroll_x == view.max_scroll_x == 300 - 78

        await pilot.press("0")
        view.show_line_numbers = True
        await pilot.pause()
        await pilot.press("right")
        assert view.scroll_x == 37
        assert rows(view)[0] == "  1 " + ("0123456789" * 30)[37 : 37 + 74]


async def test_zero_and_dollar_go_to_the_start_and_the_end_of_the_lines_shown(
    tmp_path: Path,
) -> None:
    """$ puts the end of the longest line on screen at the right edge (a longer line
    further down does not count); 0 goes back to the first column; where every line
    shown fits, $ goes to the first column too."""
    line_3 = "a" * 147 + "END"  # 150 columns
    line_100 = "b" * 497 + "FIN"  # 500 columns, off the first screen
    path = wide_file(tmp_path / "wide.log", {3: line_3, 100: line_100})
    app = ViewApp(path, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot)
        await pilot.press("dollar_sign")
        assert view.scroll_x == 150 - 78
        assert rows(view)[2] == "a" * 75 + "END"
        await pilot.press("0")
        assert view.scroll_x == 0 and rows(view)[0] == "line 1"

        view.show_line_numbers = True  # 4 gutter columns: 74 of text
        await pilot.pause()
        await pilot.press("dollar_sign")
        assert view.scroll_x == 150 - 74
        assert rows(view)[2] == "  3 " + "a" * 71 + "END"
        view.show_line_numbers = False
        await pilot.pause()

        await pilot.press(*["pagedown"] * 5)  # line 100 on screen
        assert round(view.scroll_y) <= 99 < round(view.scroll_y) + len(rows(view))
        await pilot.press("dollar_sign")
        assert view.scroll_x == view.max_scroll_x == 500 - 78
        assert "b" * 75 + "FIN" in rows(view)

        await pilot.press("G")  # short lines only
        await pilot.press("dollar_sign")
        assert view.scroll_x == 0 and rows(view)[-1] == "line 200"


async def test_dollar_shows_the_cut_marker_of_a_huge_line(tmp_path: Path) -> None:
    """A line longer than what is read of it ends, after $, with its size marker."""
    path = tmp_path / "huge.log"
    path.write_bytes(b"0123456789" * 4_000 + b"\nshort\n")
    app = ViewApp(path, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        view = await opened(pilot, lines=2)
        await pilot.press("dollar_sign")
        assert view.scroll_x > 16_000
        assert view.scroll_x == view.max_scroll_x
        assert rows(view)[0].endswith("… [+23.6 KB]")


# -- in the apps ------------------------------------------------------------------------


def test_less_keys_are_not_taken_by_the_apps_or_the_panel() -> None:
    """The view's keys would shadow an app or panel key of the same name while the view
    has focus: none of the new ones may be bound there."""
    taken = (
        keys_of(CcxApp.BINDINGS) | keys_of(ViewerApp.BINDINGS) | keys_of(TranscriptPanel.BINDINGS)
    )
    assert not taken & set(LESS_KEYS)
    assert set(LESS_KEYS) <= keys_of(TranscriptView.BINDINGS)


async def test_less_keys_work_in_the_viewer_app(lines_200: Path) -> None:
    """Through the real `ccx-tui view` app (the view inside its panel, with the search
    bar beside it), space, ctrl+d, b and ctrl+f reach the view."""
    app = ViewerApp(lines_200, "n.log")
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(TranscriptView)
        await until(lambda: view.line_count == 200, what="indexed")
        await pilot.press("g")
        assert view.scroll_y == 0 and not view.following
        height = view.scrollable_content_region.height
        await pilot.press("space")
        assert view.scroll_y == height
        await pilot.press("ctrl+d")
        assert view.scroll_y == height + height // 2
        await pilot.press("b")
        assert view.scroll_y == height // 2
        await pilot.press("ctrl+f")
        assert view.scroll_y == height + height // 2
