"""The real app driven with Pilot: every key and dialog, against real processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest
from textual import events
from textual.message import Message
from textual.widgets import Input

from ccx_tui.app import CcxApp, make_app
from ccx_tui.config import Settings
from ccx_tui.engine import State
from ccx_tui.widgets.dialogs import ConfirmDialog, CreateSessionDialog, QuitDialog, SaveDialog
from ccx_tui.widgets.help import HelpScreen
from ccx_tui.widgets.history import HistoryScreen
from ccx_tui.widgets.session_pane import SessionPane
from ccx_tui.widgets.sidebar import Sidebar
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.helpers import until, wait_gone

SIZE = (120, 36)


def app_for(data_dir: Path, *commands: str, **settings: object) -> CcxApp:
    return make_app(
        Settings(data_dir=data_dir, kill_grace=0.3, **settings),  # type: ignore[arg-type]
        list(commands),
        sample_usage=False,
    )


def screen_text(app: CcxApp) -> str:
    """What the terminal shows on the top screen, as plain text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


def left_behind(app: CcxApp) -> list[psutil.Process]:
    """Processes of the app's sessions still alive after a grace (only this app's:
    other tests may run sessions on the same machine at the same time)."""
    return [proc for info in app.engine.sessions() for proc in wait_gone(f"{info.id}.")]


def current(app: CcxApp) -> str | None:
    return app._current()


def states(app: CcxApp) -> list[State]:
    return [app.engine.get(sid).state for sid in app._open]


async def test_starts_with_commands_and_shows_output(data_dir: Path) -> None:
    app = app_for(data_dir, "echo hello-one", "echo hello-two; sleep 1000")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 2, what="two tabs")
        # It opens on the first session: the others open behind it (issue 13).
        await until(lambda: current(app) == app._open[0], what="first tab active")
        await until(lambda: app.engine.get(app._open[0]).state is State.EXITED)
        await until(lambda: "hello-one" in screen_text(app), what="output")
        sidebar = app.query_one(Sidebar)
        await until(lambda: len(sidebar.sessions) == 2, what="both in the sidebar")
        assert current(app) == app._open[0]  # still the first
        await pilot.press("2")
        assert current(app) == app._open[1]
        await until(lambda: "hello-two" in screen_text(app))
        await pilot.press("1")
        assert current(app) == app._open[0]
        await pilot.press("right_square_bracket")
        assert current(app) == app._open[1]
        await pilot.press("right_square_bracket")
        assert current(app) == app._open[0]
        await pilot.press("left_square_bracket")
        assert current(app) == app._open[1]
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("k")  # kill and quit
        await until(lambda: not app.is_running, what="exit")
    assert left_behind(app) == []


async def test_empty_screen_says_how_to_start(data_dir: Path) -> None:
    app = app_for(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "Press c to create one" in screen_text(app)
        await pilot.press("x")  # nothing selected: a warning, no crash
        await pilot.press("q")
        await until(lambda: not app.is_running)


async def test_create_dialog_refuses_bad_values_inline(data_dir: Path, tmp_path: Path) -> None:
    app = app_for(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        assert isinstance(app.screen, CreateSessionDialog)
        dialog = app.screen
        await pilot.press("enter")
        assert "empty command" in str(dialog.query_one("#error").render())
        dialog.query_one("#command", Input).value = "echo made-in-dialog"
        dialog.query_one("#cwd", Input).value = str(tmp_path / "missing")
        await pilot.press("enter")
        assert "no such directory" in str(dialog.query_one("#error").render())
        dialog.query_one("#cwd", Input).value = str(tmp_path)
        dialog.query_one("#ttl", Input).value = "soon"
        await pilot.press("enter")
        assert "bad TTL" in str(dialog.query_one("#error").render())
        dialog.query_one("#ttl", Input).value = "5m"
        dialog.query_one("#env", Input).value = "1BAD=x"
        await pilot.press("enter")
        assert "bad --env" in str(dialog.query_one("#error").render())
        dialog.query_one("#env", Input).value = "GOOD=yes"
        dialog.query_one("#name", Input).value = "two\nlines"
        await pilot.press("enter")
        assert "printable" in str(dialog.query_one("#error").render())
        dialog.query_one("#name", Input).value = " made "
        await pilot.press("enter")
        await until(lambda: len(app._open) == 1, what="session created")
        info = app.engine.get(app._open[0])
        assert info.spec.ttl == 300 and info.spec.cwd == str(tmp_path)
        assert info.spec.env == {"GOOD": "yes"}
        assert info.spec.name == "made"
        await until(lambda: "made-in-dialog" in screen_text(app))
        await pilot.press("c")
        await pilot.press("escape")
        assert not isinstance(app.screen, CreateSessionDialog)
        assert len(app._open) == 1


async def test_kill_restart_pause_keys(data_dir: Path) -> None:
    app = app_for(data_dir, "trap '' TERM; echo up; sleep 1000")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 1)
        sid = app._open[0]
        await until(lambda: app.engine.get(sid).bytes > 0)
        await pilot.press("p")
        await until(lambda: app.engine.get(sid).state is State.PAUSED, what="paused")
        await pilot.press("p")
        await until(lambda: app.engine.get(sid).state is State.RUNNING, what="resumed")
        await pilot.press("r")
        await until(lambda: app.engine.get(sid).run == 2, what="restarted")
        await until(lambda: app.engine.get(sid).bytes >= 6)
        await pilot.press("x")  # TERM is trapped: the grace period ends in KILL
        await until(lambda: app.engine.get(sid).state is State.KILLED, what="killed")
        assert app.engine.get(sid).signal == 9
        await until(lambda: "killed" in screen_text(app), what="toast/label")
        await pilot.press("r")
        await until(
            lambda: app.engine.get(sid).state is State.RUNNING and app.engine.get(sid).run == 3
        )
        await pilot.press("X")
        await until(lambda: app.engine.get(sid).state is State.KILLED, what="kill now")
    assert left_behind(app) == []


async def test_close_tab_asks_when_running(data_dir: Path) -> None:
    app = app_for(data_dir, "sleep 1000", "true")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 2)
        done, running = app._open[1], app._open[0]
        await until(lambda: app.engine.get(done).state.final)
        await pilot.press("2")
        await pilot.press("w")  # finished: closes at once
        await until(lambda: done not in app._open)
        await pilot.press("w")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert running in app._open
        await pilot.press("w")
        await pilot.press("y")
        # The tab leaves `_open` first; the tab bar hides once its pane is removed.
        await until(lambda: running not in app._open and not app._tabs.display, what="closed")
        assert app.engine.get(running).state is State.KILLED
        assert app._empty.display


async def test_help_and_history_screens(data_dir: Path) -> None:
    first = app_for(data_dir, "echo from-the-past")
    async with first.run_test(size=SIZE) as pilot:
        await until(lambda: first._open and first.engine.get(first._open[0]).state.final)
        await pilot.press("q")
    app = app_for(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "kill at once" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        await pilot.press("enter")
        await until(lambda: len(app._open) == 1, what="opened from history")
        await until(lambda: "from-the-past" in screen_text(app))
        # Regression: a finished session opened from the history had an empty status line.
        await until(lambda: "exit 0 · run 1" in screen_text(app), what="its status line")


async def test_toast_when_a_session_fails(data_dir: Path) -> None:
    app = app_for(data_dir, "exit 7")
    async with app.run_test(size=SIZE):
        await until(lambda: any("exit 7" in n.message for n in app._notifications), what="toast")


async def test_queue_and_limit_in_sidebar(data_dir: Path) -> None:
    app = app_for(data_dir, "sleep 1000", "sleep 1000", "echo queued-one", max_sessions=2)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 3)
        await until(lambda: "running 2/2, queued 1" in screen_text(app))
        await until(lambda: current(app) == app._open[0], what="first tab active")
        await pilot.press("1")
        assert current(app) == app._open[0]
        await pilot.press("x")
        await until(lambda: app.engine.get(app._open[2]).state is State.EXITED)
        # The queued one started only once the killed one had ended: never 3 at once.
        killed, queued = app.engine.get(app._open[0]), app.engine.get(app._open[2])
        assert killed.ended_at is not None and queued.started_at is not None
        assert queued.started_at >= killed.ended_at


@pytest.mark.parametrize("key", ["j", "k", "g", "G", "f", "pagedown", "pageup"])
async def test_view_keys_do_not_crash(data_dir: Path, key: str) -> None:
    app = app_for(data_dir, "seq 1 5000")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app._open and app.engine.get(app._open[0]).state.final)
        await pilot.press(key)
        pane = app.query_one(SessionPane)
        assert pane.view.line_count in (0, 5000)


async def test_command_palette_lists_session_actions(data_dir: Path) -> None:
    app = app_for(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"new sess")
        await until(lambda: "New session" in screen_text(app), what="palette entry")
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, CreateSessionDialog), what="dialog")


async def test_quick_tab_switches_stay_where_they_land(data_dir: Path) -> None:
    """Regression: after `]` then `[` in quick succession, a late focus message from
    the first switch used to re-activate its tab, so `x` killed the wrong session.
    You should stay on the tab the last key chose."""
    app = app_for(data_dir, "sleep 1000", "sleep 1000", "sleep 1000")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 3)
        await until(lambda: current(app) == app._open[0])
        await pilot.press("3")
        await until(lambda: current(app) == app._open[2])
        for turns in range(12):  # the second key lands `turns` loop turns later
            app.action_next_tab()
            for _ in range(turns):
                await asyncio.sleep(0)
            app.action_previous_tab()
            await pilot.pause(0.3)
            assert app._tabs.active == f"s-{app._open[2]}", turns
        await pilot.press("1", "2")
        await pilot.pause(0.1)
        assert current(app) == app._open[1]


async def test_remote_sessions_side_by_side(data_dir: Path) -> None:
    """--connect: the create dialog offers the server; a remote session gets a tab with
    its output like a local one, and the sidebar shows the server's status."""
    from textual.widgets import Select

    from tests.fake_upstream import FakeUpstream

    async with FakeUpstream() as fake:
        app = make_app(
            Settings(data_dir=data_dir, kill_grace=0.3),
            ["echo local-one"],
            connect=[fake.url],
            sample_usage=False,
        )
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: len(app._open) == 1)
            await pilot.press("c")
            dialog = app.screen
            assert isinstance(dialog, CreateSessionDialog)
            dialog.query_one("#command", Input).value = "echo from-the-server; sleep 1000"
            dialog.query_one(Select).value = fake.url
            await pilot.press("enter")
            await until(lambda: len(app._open) == 2, what="remote tab")
            remote_id = app._open[1]
            assert app._engine_of(remote_id) is app.remotes[0]
            await until(lambda: "from-the-server" in screen_text(app), what="remote output")
            await until(lambda: "connected" in screen_text(app), what="server status")
            await pilot.press("x")
            await until(lambda: app.remotes[0].get(remote_id).state is State.KILLED)
            await pilot.press("q")
            await until(lambda: not app.is_running)


async def test_teardown_with_a_tick_at_every_step(data_dir: Path) -> None:
    """Regression: the 1-second timer (and a usage sample, and engine events) arriving
    while the app tears its widgets down raised `NoMatches: 'Sidebar'`, an error at
    exit (seen as a failed test on a slow runner).  Here a tick and a usage sample
    arrive at every step of the teardown (each widget's Unmount) while a session
    prints all along: the app must end without an error."""
    app = app_for(data_dir, "while :; do echo tick; sleep 0.01; done")
    sidebar_there: list[bool] = []

    def during_teardown(message: Message) -> None:
        if isinstance(message, events.Unmount) and not app.is_running:
            sidebar_there.append(sidebar.is_attached)
            app._tick()
            app._set_usage({})

    async with app.run_test(size=SIZE, message_hook=during_teardown):
        sidebar = app.query_one(Sidebar)
        await until(lambda: bool(app._open) and app.engine.get(app._open[0]).lines > 2)
    assert True in sidebar_there and False in sidebar_there  # before and after it went


@pytest.mark.parametrize("how", ["q", "ctrl+q", "palette"])
async def test_every_way_to_quit_asks_while_sessions_run(data_dir: Path, how: str) -> None:
    """Regression: ctrl+q and the command palette's Quit killed running sessions without
    the question `q` asks.  Each way to quit asks (kill, detach or cancel); `c` keeps
    the app and the session running, `k` quits and kills it."""
    app = app_for(data_dir, "sleep 1000")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: states(app) == [State.RUNNING], what="a running session")
        sid = app._open[0]

        async def ask() -> None:
            if how == "palette":
                await pilot.press("ctrl+p", *"quit")
                await until(lambda: "Quit ccx-tui" in screen_text(app), what="palette entry")
                await pilot.press("enter")
            else:
                await pilot.press(how)
            await until(lambda: isinstance(app.screen, QuitDialog), what="the question")

        await ask()
        await pilot.press("c")
        assert app.is_running and states(app) == [State.RUNNING]
        await ask()
        await pilot.press("k")
        await until(lambda: not app.is_running, what="exit")
    assert app.engine.get(sid).state is State.KILLED
    assert app.detached == 0


@pytest.mark.parametrize("how", ["quit-detach", "d", "on_exit=detach"])
async def test_detach_leaves_sessions_running_and_attach_brings_them_back(
    data_dir: Path, how: str
) -> None:
    """Detaching (the quit question's `d`, the `d` key, or on_exit = "detach" with
    `q`) leaves the app while the session runs on in the engine process; the next app
    on the same data dir shows it again, running, with its output so far."""
    on_exit = "detach" if how == "on_exit=detach" else "ask"
    app = app_for(data_dir, "echo before-detach; sleep 1000", on_exit=on_exit)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: "before-detach" in screen_text(app), what="output")
        sid = app._open[0]
        if how == "quit-detach":
            await pilot.press("q")
            await until(lambda: isinstance(app.screen, QuitDialog), what="the question")
            await pilot.press("d")
        else:
            await pilot.press("q" if how == "on_exit=detach" else "d")
        await until(lambda: not app.is_running, what="exit")
    assert app.detached == 1
    again = app_for(data_dir)
    async with again.run_test(size=SIZE) as pilot:
        await until(lambda: again._open == [sid], what="the session's tab, again")
        assert again.engine.get(sid).state is State.RUNNING
        await until(lambda: "before-detach" in screen_text(again), what="its output so far")
        await pilot.press("q")
        await until(lambda: isinstance(again.screen, QuitDialog), what="the question")
        await pilot.press("k")
        await until(lambda: not again.is_running, what="exit")
    assert again.engine.get(sid).state is State.KILLED


async def test_on_exit_kill_asks_only_to_kill(data_dir: Path) -> None:
    """on_exit = "kill" keeps round 1's behaviour: quitting asks to kill, nothing else."""
    app = app_for(data_dir, "sleep 1000", on_exit="kill")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: states(app) == [State.RUNNING], what="a running session")
        await pilot.press("q")
        await until(lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.press("y")
        await until(lambda: not app.is_running, what="exit")
    assert states(app) == [State.KILLED]


async def test_past_session_without_its_transcript_is_a_toast(data_dir: Path) -> None:
    """Regression: opening a past session whose transcript was deleted raised inside
    the tab's compose and ended the app.  You should see a toast saying why, and no tab."""
    first = app_for(data_dir, "echo soon-gone")
    async with first.run_test(size=SIZE) as pilot:
        await until(lambda: bool(first._open) and first.engine.get(first._open[0]).state.final)
        gone = first.engine.get(first._open[0])
        await pilot.press("q")
    gone.transcript.unlink()
    app = app_for(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await until(lambda: isinstance(app.screen, HistoryScreen), what="the history")
        await pilot.press("enter")
        await until(lambda: any("transcript" in n.message for n in app._notifications))
        assert app.is_running and app._open == []


async def test_dialogs_put_no_control_characters_in_an_input(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the create and save dialogs filled an input with the current
    directory's path, which an input shows raw: a directory named with ESC sent an
    escape sequence to the terminal.  You should see an empty directory field (meaning
    the current directory) and a bare file name to save to, and both still work."""
    odd = tmp_path / "esc\x1b]0;pwned\x07dir"
    odd.mkdir()
    monkeypatch.chdir(odd)
    app = app_for(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        dialog = app.screen
        assert isinstance(dialog, CreateSessionDialog)
        assert dialog.query_one("#cwd", Input).value == ""
        dialog.query_one("#command", Input).value = "echo saved-here"
        await pilot.press("enter")
        await until(lambda: len(app._open) == 1, what="session created")
        assert app.engine.get(app._open[0]).spec.cwd == str(odd)
        await until(lambda: app.engine.get(app._open[0]).state.final)
        await pilot.press("s")
        await until(lambda: isinstance(app.screen, SaveDialog), what="the save dialog")
        name = app.screen.query_one("#path", Input).value
        assert name == "echo-saved-here.log"
        await pilot.press("enter")
        await until(lambda: (odd / name).exists(), what="the saved file")


async def test_a_tab_mounts_its_search_bar_and_live_block_only_when_used(
    data_dir: Path,
) -> None:
    """A tab's `/` bar and its block for output the disk did not keep were two thirds
    of its widgets, and of its memory (100 tabs: 93 -> 72 MB for the app); they are
    mounted when first needed (tests/test_panel.py and tests/test_disk_full_live.py
    use them)."""
    from ccx_tui.widgets.live_tail import LiveTail
    from ccx_tui.widgets.search_bar import SearchBar

    app = app_for(data_dir, "echo one", "echo two")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 2 and all(p.built for p in app._panes.values()))
        await until(lambda: len(app.query(TranscriptView)) == 2, what="both views mounted")
        await pilot.pause()
        assert not app.query(SearchBar) and not app.query(LiveTail)
        await pilot.press("1", "slash")
        await until(lambda: len(app.query(SearchBar)) == 1, what="the first tab's bar")
        assert isinstance(app.focused, Input)


async def test_a_tab_switch_keeps_the_footer_but_new_keys_show(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (issue 11's profile): every tab switch rebuilt the footer's keys,
    a fifth of the app's CPU while switching under load, though the keys were the same.
    The footer's widgets now stay across a switch, and the keys shown are worked out
    after the switch's frame, not before it; keys that do change still show (the
    search bar's own keys)."""
    from textual.screen import Screen
    from textual.widgets._footer import FooterKey

    from ccx_tui.widgets import key_footer
    from ccx_tui.widgets.key_footer import KeyFooter

    events: list[str] = []
    signature, refresh = key_footer._signature, Screen._compositor_refresh

    def keys_worked_out(screen):  # noqa: ANN001, ANN202
        events.append("keys")
        return signature(screen)

    def frame(screen: Screen[object]) -> None:
        events.append("frame")
        refresh(screen)

    monkeypatch.setattr(key_footer, "_signature", keys_worked_out)
    monkeypatch.setattr(Screen, "_compositor_refresh", frame)
    app = app_for(data_dir, "echo one", "echo two")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 2, what="two tabs")
        footer = app.query_one(KeyFooter)
        await pilot.press("1")
        await until(lambda: bool(footer.query(FooterKey)), what="the footer's keys")
        await pilot.pause()
        keys = list(footer.query(FooterKey))
        for key in ("2", "1", "2", "1"):
            events.clear()
            await pilot.press(key)
            await until(lambda: "keys" in events, what=f"the keys after {key}")
            assert events[0] == "frame", (key, events)
        assert list(footer.query(FooterKey)) == keys  # the same widgets, not rebuilt
        await pilot.press("slash")
        await until(
            lambda: any(k.key == "escape" for k in footer.query(FooterKey)),
            what="the search bar's keys",
        )


async def test_the_view_in_sight_is_tinted_while_it_has_the_keyboard(data_dir: Path) -> None:
    """A view's `:focus` tint follows the keyboard for the view in sight, while the
    restyles of views a tab switch hides and shows again are skipped (each cost a
    restyle of the view and its scrollbars, and a second layout of the screen)."""
    from textual.widgets import Input

    app = app_for(data_dir, "echo one", "echo two")
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 2, what="two tabs")

        def view(n: int) -> TranscriptView:
            return app._panes[app._open[n]].query_one(TranscriptView)

        def tinted(n: int) -> bool:
            return view(n).styles.background_tint.a > 0

        await pilot.press("1")
        await until(lambda: view(0).has_focus and tinted(0), what="tab 1 tinted")
        await pilot.press("2")
        await until(lambda: view(1).has_focus and tinted(1), what="tab 2 tinted")
        await pilot.press("1")
        await until(lambda: view(0).has_focus and tinted(0), what="tab 1 tinted again")
        await pilot.press("slash")  # the search bar takes the keyboard: no tint
        await until(lambda: isinstance(app.focused, Input), what="the search bar")
        await until(lambda: not tinted(0), what="tab 1 untinted")
        await pilot.press("escape")  # back to the view
        await until(lambda: view(0).has_focus and tinted(0), what="tab 1 tinted at last")
