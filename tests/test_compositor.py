"""The app's compositor draws exactly the frames Textual's draws, rendering and
cutting up fewer lines (compositor.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from textual._compositor import Compositor
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from ccx_tui.widgets.compositor import SparseCompositor
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
    """The reflow lays out every widget; nothing lays the screen out again after it
    (Textual's left the full map marked out of date by the tab switched to)."""
    laid_out = {"reflow": 0, "again": 0}
    reflow, arrange_root = Compositor.reflow, Compositor._arrange_root
    inside = [False]

    def reflowed(self: Compositor, parent: Widget, size: Size) -> object:
        laid_out["reflow"] += 1
        inside[0] = True
        try:
            return reflow(self, parent, size)
        finally:
            inside[0] = False

    def arranged(self: Compositor, *args: object, **kwargs: object) -> object:
        if not inside[0]:
            laid_out["again"] += 1
        return arrange_root(self, *args, **kwargs)

    monkeypatch.setattr(Compositor, "reflow", reflowed)
    monkeypatch.setattr(Compositor, "_arrange_root", arranged)
    app = app_with(
        data_dir, "printf 'FIRST tab\\n'; sleep 100", "printf 'SECOND tab\\n'; sleep 100"
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: "FIRST tab" in screen_text(app), what="the first tab")
        await pilot.pause()
        laid_out.update(reflow=0, again=0)
        for key, text in [("2", "SECOND tab"), ("1", "FIRST tab")] * 2:
            await pilot.press(key)
            await until(lambda text=text: text in screen_text(app), what=text)
            await pilot.pause()
        assert laid_out["reflow"] >= 4  # each switch lays the screen out...
        assert laid_out["again"] == 0  # ...once
        await app.engine.kill_all()
