"""The output view's scrollbar is redrawn when its thumb moves, and only then
(thumb_scrollbar.py); what it shows is what Textual's scrollbar shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.segment import Segment
from textual.pilot import Pilot
from textual.scrollbar import ScrollBar

from ccx_tui.widgets.thumb_scrollbar import ThumbScrollBar
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.test_transcript_view import SIZE, ViewApp, numbered, rows, wait_for


def _cells(segments: list[Segment]) -> list[tuple[str, bool]]:
    """A bar's cells as seen: the glyph, and whether it is drawn reversed (the thumb)."""
    return [(seg.text, bool(seg.style and seg.style.reverse)) for seg in segments]


def _on_screen(pilot: Pilot[None], bar: ScrollBar) -> list[tuple[str, bool]]:
    """The bar's column as the screen has it now."""
    strips = pilot.app.screen._compositor.render_strips()
    x, y, width, height = bar.region
    cells = []
    for row in range(y, y + height):
        piece = strips[row].crop(x, x + width)
        cells.extend(_cells(list(piece)))
    return cells


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the bar's renders (one for each time its lines are drawn again)."""
    count = [0]
    render = ThumbScrollBar.render

    def counted(self: ThumbScrollBar) -> object:
        count[0] += 1
        return render(self)

    monkeypatch.setattr(ThumbScrollBar, "render", counted)
    return count


async def test_following_redraws_the_bar_only_when_the_thumb_moves(
    tmp_path: Path, renders: list[int]
) -> None:
    path = numbered(tmp_path / "log", 400)
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: rows(view)[-1] == "line 400")
        bar = view.vertical_scrollbar
        assert isinstance(bar, ThumbScrollBar)
        await pilot.pause()
        moves = stays = 0
        for last in range(401, 461):  # a line at a time: the thumb moves now and then
            before, drawn = bar.thumb(), renders[0]
            numbered(path, 1, start=last)
            view.refresh_source()
            await wait_for(pilot, lambda: rows(view)[-1] == f"line {last}")  # noqa: B023
            await pilot.pause()
            moved = bar.thumb() != before
            assert renders[0] - drawn == (1 if moved else 0), (last, moved)
            moves, stays = moves + moved, stays + (not moved)
            assert _on_screen(pilot, bar) == _cells(bar.thumb())
        assert moves and stays > moves  # both cases were seen, most lines move nothing


async def test_a_bar_far_from_the_end_shows_the_file_growing(tmp_path: Path) -> None:
    """Not following, at the top: the view's lines stay the same, but the thumb
    shrinks as the file grows, and the screen shows it."""
    path = numbered(tmp_path / "log", 30)
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: rows(view)[-1] == "line 30")
        await pilot.press("g")
        bar = view.vertical_scrollbar
        assert isinstance(bar, ThumbScrollBar)
        await pilot.pause()
        first = _on_screen(pilot, bar)
        assert first == _cells(bar.thumb())
        numbered(path, 60, start=31)
        view.refresh_source()
        await wait_for(pilot, lambda: view.line_count == 90)
        await wait_for(pilot, lambda: _on_screen(pilot, bar) == _cells(bar.thumb()))
        assert rows(view)[0] == "line 1"
        # The thumb is a third of what it was, at the top.
        thumb = sum(1 for _glyph, reverse in _on_screen(pilot, bar) if reverse)
        assert 0 < thumb < sum(1 for _glyph, reverse in first if reverse) / 2
