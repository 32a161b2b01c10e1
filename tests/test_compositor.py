"""The app's compositor draws exactly the frames Textual's draws, rendering and
cutting up fewer lines (compositor.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyte
import pytest
from textual._compositor import ChopsUpdate, Compositor, CompositorUpdate, LayoutUpdate
from textual.app import App
from textual.geometry import Region, Size
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from ccx_tui.widgets.compositor import SparseCompositor
from ccx_tui.widgets.sidebar import SessionRows
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.helpers import until
from tests.test_app import screen_text
from tests.test_layout import app_with


def _lines(
    chops: Sequence[Mapping[int, Strip | None]],
    ends: Sequence[Sequence[int]],
    crop: Region,
    rows: Callable[[int], bool],
) -> list[object]:
    """What the terminal gets of each row to draw: the pieces inside the crop (the
    rest is never sent), where each starts, and their segments (text and style)."""
    start, stop = crop.column_span
    lines: list[object] = []
    for y, chop in enumerate(chops):
        if not rows(y) or not crop.y <= y < crop.bottom:
            continue
        line = []
        for (x, strip), end in zip(chop.items(), ends[y], strict=True):
            if strip is None or end <= start or x >= stop:
                continue
            piece = strip.crop(max(start - x, 0), min(end, stop) - x)
            line.append((max(x, start), [(seg.text, seg.style) for seg in piece]))
        lines.append(line)
    return lines


IDLE_MOVE = re.compile(r"\x1b\[\d+;\d+H(?=\x1b\[\d+;\d+H|\n|$)")
"""A cursor move followed by another move, a new line or the end: it writes nothing."""
UNDER_THE_OUTPUT = ("ContentSwitcher", "SessionPane", "TranscriptPanel")


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts Strip.divide calls, and Widget.render_lines calls by the widget's class
    (the work the sparse compositor saves)."""
    count: dict[str, int] = {"divide": 0}
    divide, render_lines = Strip.divide, Widget.render_lines

    def divided(self: Strip, cuts: Sequence[int]) -> Sequence[Strip]:
        count["divide"] += 1
        return divide(self, cuts)

    def rendered(self: Widget, crop: Region) -> list[Strip]:
        name = type(self).__name__
        count[name] = count.get(name, 0) + 1
        return render_lines(self, crop)

    monkeypatch.setattr(Strip, "divide", divided)
    monkeypatch.setattr(Widget, "render_lines", rendered)
    return count


async def test_it_draws_the_frames_textual_draws_with_fewer_cuts(
    data_dir: Path, work: dict[str, int]
) -> None:
    app = app_with(
        data_dir,
        "printf '\\033[31mRED\\033[0m and plain\\n'; seq -f row%g 1 20; sleep 100",
        "printf 'SECOND tab\\n'; sleep 100",
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(
            lambda: "RED and plain" in screen_text(app) and "row20" in screen_text(app),
            what="the first tab, all of it (21 lines: in view whole)",
        )
        compositor = app.screen._compositor
        assert isinstance(compositor, SparseCompositor)

        def compare(
            crop: Region, rows: Callable[[int], bool], beside: tuple[str, ...] = ()
        ) -> None:
            """Frames compared; `beside`: widgets outside the crop, never drawn."""
            work.clear()
            work["divide"] = 0
            ours = compositor._render_chops(crop, rows)
            ours_work = dict(work)
            work.clear()
            work["divide"] = 0
            textual = Compositor._render_chops(compositor, crop, rows)
            ends = [cut_set[1:] for cut_set in compositor.cuts]
            shown = _lines(ours, ends, crop, rows)
            assert shown == _lines(textual, ends, crop, rows)
            assert shown and all(shown)  # something on every row to draw
            # Most of the screen is covered twice or more: far fewer lines cut up, and
            # the containers under the output (which it covers whole) not rendered.
            assert ours_work["divide"] < work["divide"] / 2
            assert set(UNDER_THE_OUTPUT) <= set(work)
            assert not set(UNDER_THE_OUTPUT) & set(ours_work)
            assert set(beside) <= set(work)  # Textual draws them, to throw them away
            assert not set(beside) & set(ours_work)

        every: Callable[[int], bool] = lambda y: True  # noqa: E731
        compare(compositor.size.region, every)
        # Lines of the output alone (a followed session's frame): not the sidebar.
        compare(Region(0, 5, 70, 12), lambda y: 5 <= y < 17 and y % 3 != 0, ("Sidebar",))
        await pilot.press("2")
        await until(lambda: "SECOND tab" in screen_text(app), what="the second tab")
        compare(compositor.size.region, every)
        await pilot.press("slash")  # the search bar, over the output
        await pilot.pause()
        compare(compositor.size.region, every)
        await pilot.press("escape", "z")  # zoomed: the output alone
        await until(lambda: "running 2/16" not in screen_text(app), what="zoomed")
        compare(compositor.size.region, every)
        await app.engine.kill_all()


async def test_a_tab_switch_lays_the_screen_out_once(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reflow lays out every widget and leaves the full map fresh: nothing lays the
    screen out again until something changes.  (Textual's left the full map marked out
    of date when the tab switched to was refreshed before the reflow, and the first
    widget region looked up after it laid the whole screen out a second time.)"""
    reflow = SparseCompositor.reflow
    stale_after: list[bool] = []

    def reflowed(self: SparseCompositor, parent: Widget, size: Size) -> object:
        result = reflow(self, parent, size)
        stale_after.append(self._full_map_invalidated)
        return result

    monkeypatch.setattr(SparseCompositor, "reflow", reflowed)
    app = app_with(
        data_dir, "printf 'FIRST tab\\n'; sleep 100", "printf 'SECOND tab\\n'; sleep 100"
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: "FIRST tab" in screen_text(app), what="the first tab")
        await pilot.pause()
        stale_after.clear()
        for key, text in [("2", "SECOND tab"), ("1", "FIRST tab")] * 2:
            await pilot.press(key)
            await until(lambda text=text: text in screen_text(app), what=text)
            await pilot.pause()
        assert len(stale_after) >= 4  # each switch lays the screen out...
        assert not any(stale_after)  # ...and the map it made is kept
        await app.engine.kill_all()


async def test_a_partial_update_draws_only_what_it_sends(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame updating the output and one sidebar row (a tab switch) sends the
    terminal exactly what Textual's sends, drawing only those places: not every line of
    the sidebar that the box around both areas covers."""
    app = app_with(
        data_dir,
        "printf '\\033[31mRED\\033[0m and plain\\n'; seq -f row%g 1 40; sleep 100",
        *[f"printf 'tab {n}\\n'; sleep 100" for n in range(2, 9)],
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: "row40" in screen_text(app), what="the first tab, to its end")
        await until(lambda: len(app._open) == 8, what="eight sessions")
        await pilot.pause()
        compositor = app.screen._compositor
        assert isinstance(compositor, SparseCompositor)
        view = app.focused
        assert isinstance(view, TranscriptView)
        rows = app.query_one(SessionRows)
        output = view.region
        first_row = Region(rows.region.x, rows.region.y, rows.region.width, 2)
        assert output.right <= first_row.x and rows.region.height > 10

        lines: dict[str, int] = {}
        render_lines = Widget.render_lines

        def counted(self: Widget, crop: Region) -> list[Strip]:
            name = type(self).__name__
            lines[name] = lines.get(name, 0) + crop.height
            return render_lines(self, crop)

        monkeypatch.setattr(Widget, "render_lines", counted)

        def sent(update: ChopsUpdate | None) -> str:
            """What the terminal gets, less the cursor moves that write nothing
            (Textual's, for a piece that starts where the area to update ends)."""
            assert update is not None
            return IDLE_MOVE.sub("", update.render_segments(app.console))

        # An area that starts and ends inside widgets' pieces (on both sides).
        across = Region(output.right - 2, output.y + 1, first_row.right - output.right - 1, 2)
        for regions in ([output, first_row], [first_row], [output], [across, first_row]):
            for widget in (view, rows):
                widget.refresh()  # drawn afresh each time: no line from a cache
            compositor._dirty_regions.update(regions)
            lines.clear()
            ours = sent(compositor.render_partial_update())
            ours_lines = dict(lines)
            for widget in (view, rows):
                widget.refresh()
            compositor._dirty_regions.update(regions)
            with monkeypatch.context() as textual:
                textual.setattr(SparseCompositor, "_render_chops", Compositor._render_chops)
                theirs = sent(Compositor.render_partial_update(compositor))
            assert ours == theirs
            assert ("row40" in ours) is (output in regions)
            # The sidebar's rows: from the first line to send to the last, not every
            # line in the box; the sidebar (behind its rows, beside the output) not
            # at all unless an area meets it.
            wanted = [
                y
                for area in regions
                if area.overlaps(rows.region)
                for y in area.intersection(rows.region).line_range
            ]
            drawn = max(wanted) - min(wanted) + 1 if wanted else 0
            assert ours_lines.get("SessionRows", 0) == drawn < rows.region.height
            if across not in regions:
                assert "Sidebar" not in ours_lines
            if len(regions) == 2:  # Textual's draws every line of the rows in the box
                assert lines["SessionRows"] > 10
        await app.engine.kill_all()


def _terminal(size: Size) -> tuple[pyte.Screen, pyte.Stream]:
    screen = pyte.Screen(size.width, size.height)
    return screen, pyte.Stream(screen)


def _cells(screen: pyte.Screen) -> list[list[tuple[object, ...]]]:
    """Every cell: its text and attributes."""
    return [
        [tuple(screen.buffer[y][x]) for x in range(screen.columns)] for y in range(screen.lines)
    ]


async def test_after_switches_and_scrolls_the_terminal_shows_a_whole_frame(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the app sends, frame after frame, adds up to what a whole new frame shows,
    without drawing whole frames: a switch scrolls the sidebar to its row (and the view
    to its end), and that scroll, laid out after the switch's full layout, repainted the
    whole screen in Textual's compositor (it compared with no layout at all)."""
    sent: list[str] = []
    full: list[int] = []
    display = App._display

    def captured(self: App[object], screen: Screen[object], renderable: object) -> None:
        if isinstance(renderable, CompositorUpdate):
            sent.append(renderable.render_segments(self.console))
            full.append(isinstance(renderable, LayoutUpdate))
        display(self, screen, renderable)  # type: ignore[arg-type]

    monkeypatch.setattr(App, "_display", captured)
    tab = "printf 'tab {n}\\n'; seq -f 'row %g of {n}' 1 {rows}; sleep 100"
    app = app_with(data_dir, *[tab.format(n=n, rows=10 * n) for n in range(1, 13)])
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: len(app._open) == 12, what="twelve sessions")
        await until(lambda: "row 10 of 1" in screen_text(app), what="the first tab")
        await pilot.pause()
        compositor = app.screen._compositor
        terminal, stream = _terminal(compositor.size)
        for data in sent:
            stream.feed(data)
        sent.clear()
        full.clear()
        for key, n in [("]", 2), ("]", 3), ("9", 9), ("]", 10), ("]", 11), ("]", 12), ("1", 1)]:
            await pilot.press(key)
            await until(lambda n=n: f"row {10 * n} of {n}" in screen_text(app), what=f"tab {n}")
            await pilot.pause()
        assert len(sent) >= 7
        assert not any(full)  # no whole frame: each switch repainted what changed
        for data in sent:
            stream.feed(data)
        whole, whole_stream = _terminal(compositor.size)
        pending = set(compositor._dirty_regions)
        whole_stream.feed(compositor.render_full_update().render_segments(app.console))
        compositor._dirty_regions.update(pending)
        assert _cells(terminal) == _cells(whole)
        await app.engine.kill_all()
