"""Layout keys (issue 13): the sidebar hides itself on narrow terminals and with `S`,
follows the selected session, and `z` gives the output the whole screen."""

from __future__ import annotations

import gc
from pathlib import Path

from ccx_tui.app import FREEZE_AFTER, make_app
from ccx_tui.config import Settings
from ccx_tui.engine.sessions.session import SessionSpec
from tests.helpers import until
from tests.test_app import screen_text


def sidebar(app: object) -> str:
    """The sidebar's part of the screen (right of its border; the tab bar has titles)."""
    return "\n".join(row.rpartition("▏")[2] for row in screen_text(app).splitlines())  # type: ignore[arg-type]


def app_with(data_dir: Path, *commands: str):  # noqa: ANN201
    return make_app(Settings(data_dir=data_dir, kill_grace=0.3), list(commands), sample_usage=False)


async def test_the_sidebar_hides_under_100_columns_and_s_toggles_it(data_dir: Path) -> None:
    app = app_with(data_dir, "sleep 100")
    async with app.run_test(size=(90, 24)) as pilot:
        await until(lambda: len(app._open) == 1)
        await until(lambda: not app._sidebar.display or app._sidebar.region.width == 0)
        assert "running 1/16" not in screen_text(app)
        await pilot.press("S")
        await until(lambda: "running 1/16" in screen_text(app), what="shown on request")
        await pilot.resize_terminal(130, 24)
        await pilot.pause()
        assert "running 1/16" in screen_text(app)
        await pilot.press("S")
        await until(lambda: "running 1/16" not in screen_text(app), what="hidden on request")
        await pilot.resize_terminal(140, 24)
        await pilot.pause()
        assert "running 1/16" not in screen_text(app)  # the user's choice holds
        await app.engine.kill_all()


async def test_zoom_gives_the_output_the_whole_screen(data_dir: Path) -> None:
    app = app_with(data_dir, "printf 'ZOOM%s\\n' -ME; sleep 100")
    async with app.run_test(size=(120, 24)) as pilot:
        await until(lambda: "ZOOM-ME" in screen_text(app))
        await until(lambda: "c New" in screen_text(app), what="the footer's keys")
        assert "running 1/16" in screen_text(app)
        await pilot.press("z")
        await until(lambda: "running 1/16" not in screen_text(app), what="zoomed")
        zoomed = screen_text(app)
        assert "ZOOM-ME" in zoomed.splitlines()[0]  # no tab bar above it
        assert "c New" not in zoomed
        await pilot.press("z")
        await until(lambda: "running 1/16" in screen_text(app), what="back")
        await app.engine.kill_all()


async def test_the_sidebar_scrolls_to_the_selected_session(data_dir: Path) -> None:
    commands = [f"sleep {100 + n}" for n in range(15)]
    app = app_with(data_dir, *commands)
    async with app.run_test(size=(120, 24)) as pilot:
        await until(lambda: len(app._sidebar.sessions) == 15, what="15 tabs, all added")
        app._activate(app._open[-1])
        await until(lambda: "›▶ sleep 114" in sidebar(app), what="the last one in view")
        assert "sleep 100" not in sidebar(app)
        await pilot.press("1")
        await until(lambda: "›▶ sleep 100" in sidebar(app), what="the first one in view")
        assert "sleep 114" not in sidebar(app)
        await app.engine.kill_all()


async def test_the_tab_bar_says_how_many_tabs_are_out_of_view(data_dir: Path) -> None:
    """15 tabs do not fit in 100 columns: on the first, "N ▶" says how many are out of
    view to the right; on the last, "◀ N" to the left; the active tab is always in view."""
    commands = [f"sleep {100 + n}" for n in range(15)]
    app = app_with(data_dir, *commands)
    async with app.run_test(size=(100, 24)) as pilot:
        await until(lambda: len(app._sidebar.sessions) == 15, what="15 tabs")
        await until(lambda: app._tabs.hidden_tabs()[1] > 0, what="some out of view")
        top = lambda: screen_text(app).splitlines()[0]  # noqa: E731
        await until(lambda: f"{app._tabs.hidden_tabs()[1]} ▶" in top(), what=top)
        assert "◀" not in top()
        await pilot.press("9")
        app._activate(app._open[-1])
        await until(
            lambda: "sleep 114" in top() and f"◀ {app._tabs.hidden_tabs()[0]}" in top(),
            what=top,
        )  # the active tab in view, and how many are out of view on the left
        tab_row = top().split("▏")[0]  # the sidebar's rows have icons too
        assert app._tabs.hidden_tabs()[0] > 0 and " ▶" not in tab_row.split("sleep 114")[1]
        await app.engine.kill_all()


async def test_a_click_on_a_tab_shows_it_and_the_counts_show_the_hidden_ones(
    data_dir: Path,
) -> None:
    """The tab bar is drawn as one line: a click on a label shows that session, a click
    on "N ▶" / "◀ N" the nearest tab out of view on that side; closing the shown tab
    shows its right neighbour (the left one for the last)."""
    commands = [f"sleep {100 + n}" for n in range(15)]
    app = app_with(data_dir, *commands)
    async with app.run_test(size=(100, 24)) as pilot:
        await until(lambda: len(app._open) == 15, what="15 tabs")
        app._activate(app._open[0])
        top = lambda: screen_text(app).splitlines()[0]  # noqa: E731
        await until(lambda: "sleep 102" in top(), what=top)
        await pilot.click("TabBar", offset=(top().index("sleep 102"), 0))
        assert app._current() == app._open[2]
        _, right = app._tabs.hidden_tabs()
        await until(lambda: f"{right} ▶" in top(), what=top)
        await pilot.click("TabBar", offset=(top().index(f"{right} ▶"), 0))
        assert app._current() == app._open[15 - right]  # the first one out of view
        await until(lambda: f"◀ {app._tabs.hidden_tabs()[0]}" in top(), what=top)
        left, _ = app._tabs.hidden_tabs()
        await pilot.click("TabBar", offset=(1, 0))
        assert app._current() == app._open[left - 1]  # the nearest on the left
        shown = app._open.index(app._current() or "")
        app._tabs.bar.remove_tab(f"s-{app._open[shown]}")
        assert app._tabs.active == f"s-{app._open[shown + 1]}"
        app._tabs.bar.remove_tab(f"s-{app._open[-1]}")  # not shown: nothing moves
        assert app._tabs.active == f"s-{app._open[shown + 1]}"
        await app.engine.kill_all()


async def test_tabs_are_built_when_shown_or_soon_after(data_dir: Path) -> None:
    """A tab's output view is mounted when the tab is first shown, or in the background
    soon after the screen is up (attaching to 100 sessions no longer waits for 100
    views): every tab gets built, one shown before its turn shows its output and takes
    the keys, and `W` pressed meanwhile reaches the tabs built after it."""
    commands = [f"echo tab-{n}; sleep 60" for n in range(20)]
    app = app_with(data_dir, *commands)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: len(app._open) == 20, what="20 tabs")
        await pilot.press("W")  # every tab wraps, built yet or not
        await pilot.press("9")
        await until(lambda: "tab-8" in screen_text(app), what=lambda: screen_text(app))
        assert app.focused is app._panes[app._open[8]].view
        await until(lambda: all(p.built for p in app._panes.values()), what="all built")
        await until(lambda: all(p.view.wrap for p in app._panes.values()), what="all wrap")
        await app.engine.kill_all()


async def test_tabs_built_in_the_background_are_frozen_and_thawed_at_exit(
    data_dir: Path,
) -> None:
    """Tabs built in the background after the app froze what it started with (an
    attach's 100) are frozen too once built, out of the collector's full passes; and
    everything frozen is given back when the app goes."""
    app = app_with(data_dir)
    async with app.run_test(size=(120, 30)):
        await until(lambda: app._spared, what="the app up, its objects frozen")
        before = gc.get_freeze_count()
        for n in range(FREEZE_AFTER + 2):
            await app.engine.start(SessionSpec(f"sleep {100 + n}"))
        await until(lambda: len(app._open) == FREEZE_AFTER + 2, what="the tabs")
        await until(lambda: all(p.built for p in app._panes.values()), what="all built")
        await until(lambda: not app._building, what="the builder done")
        assert gc.get_freeze_count() > before
        await app.engine.kill_all()
    assert gc.get_freeze_count() == 0
