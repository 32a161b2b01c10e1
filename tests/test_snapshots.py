"""Snapshot tests of the app's screens at a fixed size, with nothing nondeterministic:
full-app snapshots show sessions recorded with fixed ids, times and output (what a past
run left in the data dir), read through a fixed clock; no real pid, path or CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input

from ccx_tui.app import CcxApp, make_app
from ccx_tui.config import DeclaredSession, Settings
from ccx_tui.engine.sessions.local import EngineStats
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.sessions.usage import TreeUsage
from ccx_tui.engine.transcripts.store import DataStore
from ccx_tui.engine.transcripts.transcript import STDERR, STDOUT, TranscriptWriter
from ccx_tui.widgets.help import HelpScreen
from ccx_tui.widgets.history import HistoryScreen
from ccx_tui.widgets.search_bar import SearchBar
from ccx_tui.widgets.sidebar import Sidebar
from ccx_tui.widgets.status import size
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.helpers import stop_engines_under, until
from tests.test_app import screen_text

SIZE = (110, 30)
NOW = 1_800_000_000.0


Output = list[tuple[int, bytes]]
"""What a session printed: (STDOUT or STDERR, bytes), in order."""


def finished_app(data_dir: Path, *sessions: tuple[str, Output]) -> CcxApp:
    """The app over a data dir holding `sessions` (command, output) as a past run left
    them: exit 0, each started 65 s before NOW and run for 3 s; the app's clock is NOW.
    `all_final` opens them in tabs, as a user would from the history screen."""
    store = DataStore(data_dir)
    for n, (command, output) in enumerate(sessions, 1):
        session_id = f"{n:016x}"
        directory = store.create_session_dir(session_id)
        writer = TranscriptWriter(directory)
        for stream, data in output:
            writer.write(stream, data)
        writer.close()
        started = NOW - 65 + n
        store.write_meta(
            SessionInfo(
                id=session_id,
                spec=SessionSpec(command, cwd="/"),
                state=State.EXITED,
                directory=directory,
                created_at=started,
                run=1,
                started_at=started,
                ended_at=started + 3,
                exit_code=0,
                bytes=writer.offset,
                lines=writer.newlines,
            )
        )
    return make_app(Settings(data_dir=data_dir), [], sample_usage=False, clock=lambda: NOW)


def out(text: str) -> Output:
    return [(STDOUT, text.encode())]


async def all_final(pilot: Pilot[int]) -> None:
    """Open every recorded session in a tab, oldest first (the last one is active), and
    wait until each tab shows all its lines."""
    app = pilot.app
    assert isinstance(app, CcxApp)
    await ready(pilot)
    past = len(app.engine.sessions())
    for opened in range(past):
        await pilot.press("h")
        await until(lambda: isinstance(app.screen, HistoryScreen), what="the history")
        await pilot.press("end", "enter")  # the oldest is at the end of the list
        await until(lambda: len(app._open) == opened + 1, what="a tab")  # noqa: B023
    await until(lambda: app._current() == app._open[-1])
    for session_id in app._open:
        view = app._panes[session_id].view
        lines = app.engine.get(session_id).lines
        await until(lambda: view.line_count == lines, what="the output")  # noqa: B023
    await pilot.pause()


async def ready(pilot: Pilot[int]) -> None:
    """The app's first full frame is drawn (the sidebar renders just after mounting)."""
    app = pilot.app
    assert isinstance(app, CcxApp)
    await until(lambda: "running 0/16" in screen_text(app), what="the sidebar")


def test_main_screen(snap_compare, data_dir: Path) -> None:
    """Two finished sessions, the second active: tabs with state icons, the output,
    the status bar, the sidebar with limits and each session's state."""
    app = finished_app(
        data_dir,
        ("printf 'alpha\\nbeta\\n'", out("alpha\nbeta\n")),
        ("seq 1 40", out("".join(f"{i}\n" for i in range(1, 41)))),
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=all_final)


def test_ansi_session(snap_compare, data_dir: Path) -> None:
    """ANSI colours render, stderr is tinted, a \\r progress line shows its last state."""
    command = (
        "printf '\\033[1;32mPASS\\033[0m test_one\\n\\033[31mFAIL\\033[0m test_two\\n'; "
        "printf 'progress 10%%\\rprogress 100%%\\n'; echo 'to stderr' >&2"
    )
    output = [
        (STDOUT, b"\x1b[1;32mPASS\x1b[0m test_one\n\x1b[31mFAIL\x1b[0m test_two\n"),
        (STDOUT, b"progress 10%\rprogress 100%\n"),
        (STDERR, b"to stderr\n"),
    ]
    app = finished_app(data_dir, (command, output))
    assert snap_compare(app, terminal_size=SIZE, run_before=all_final)


def test_long_line_session(snap_compare, data_dir: Path) -> None:
    """A 1 MB line renders cut, with a marker, instead of freezing the app."""
    command = "echo before; head -c 1000000 /dev/zero | tr '\\0' x; echo"
    app = finished_app(data_dir, (command, out("before\n" + "x" * 1_000_000 + "\n")))
    assert snap_compare(app, terminal_size=SIZE, run_before=all_final)


async def steady_cursors(pilot: Pilot[int]) -> None:
    """Stop the text fields' cursors blinking: a blinking cursor is drawn or not
    depending on when the frame is taken (a snapshot that failed now and then)."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_create_dialog(snap_compare, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The create dialog after a refused value: the reason shows inline."""
    monkeypatch.chdir("/")
    app = finished_app(data_dir)

    async def open_dialog(pilot: Pilot[int]) -> None:
        await ready(pilot)
        await pilot.press("c")
        await pilot.press(*"sleep 5")
        await pilot.press("tab", "tab")
        await pilot.press(*"soon")
        await pilot.press("enter")
        await steady_cursors(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=open_dialog)


def test_help_screen(snap_compare, data_dir: Path) -> None:
    app = finished_app(data_dir)

    async def open_help(pilot: Pilot[int]) -> None:
        await ready(pilot)
        await pilot.press("question_mark")
        await until(lambda: isinstance(pilot.app.screen, HelpScreen), what="the help screen")
        await pilot.pause(0.2)  # its scrollable list laid out

    assert snap_compare(app, terminal_size=SIZE, run_before=open_help)


def _info(n: int, state: State, **kw: object) -> SessionInfo:
    spec = kw.pop("spec", None) or SessionSpec(
        kw.pop("command", f"job-{n} --flag"),  # type: ignore[arg-type]
        ttl=kw.pop("ttl", None),  # type: ignore[arg-type]
    )
    base: dict[str, object] = {
        "id": f"{n:016x}",
        "spec": spec,
        "state": state,
        "directory": Path("/nonexistent"),
        "created_at": NOW - 100,
        "started_at": NOW - 65,
    }
    base.update(kw)
    return SessionInfo(**base)  # type: ignore[arg-type]


class SidebarApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Sidebar()

    def on_mount(self) -> None:
        sidebar = self.query_one(Sidebar)
        sidebar.now = NOW
        sidebar.stats = EngineStats(running=2, paused=1, queued=1, max_sessions=3)
        sidebar.sessions = (
            _info(1, State.RUNNING, command="npm run dev", ttl=600.0, ttl_deadline=NOW + 535),
            _info(2, State.RUNNING, command="pytest -x tests", ttl=90.0, ttl_deadline=NOW + 12),
            _info(3, State.PAUSED, command="make -j4"),
            _info(4, State.QUEUED, command="cargo build", started_at=None),
            _info(5, State.EXITED, exit_code=0, ended_at=NOW - 5),
            _info(6, State.EXITED, exit_code=2, ended_at=NOW - 60),
            _info(7, State.KILLED, exit_code=137, signal=9, ended_at=NOW - 30),
            _info(8, State.EXPIRED, ttl=60.0, ttl_deadline=NOW - 5, ended_at=NOW - 5),
            _info(9, State.FAILED, reason="cannot start", ended_at=NOW - 65),
        )
        sidebar.selected = f"{2:016x}"
        sidebar.usage = {
            f"{1:016x}": TreeUsage(cpu=12.0, rss=150 * 1024 * 1024),
            f"{2:016x}": TreeUsage(cpu=99.5, rss=48 * 1024 * 1024),
        }


def test_sidebar(snap_compare) -> None:
    """Counts against the limit; per session: state, elapsed, TTL bar (red when nearly
    out), exit code, CPU and memory."""
    assert snap_compare(SidebarApp(), terminal_size=(40, 40))


SEARCHABLE = (
    "for i in $(seq 1 60); do "
    'if [ $((i % 7)) -eq 0 ]; then echo "line $i: ERROR disk quota"; '
    'else echo "line $i: ok"; fi; done',
    out(
        "".join(
            f"line {i}: ERROR disk quota\n" if i % 7 == 0 else f"line {i}: ok\n"
            for i in range(1, 61)
        )
    ),
)


async def search_error(pilot: Pilot[int]) -> None:
    await all_final(pilot)
    await pilot.press("g", "slash", *"error")
    app = pilot.app
    assert isinstance(app, CcxApp)
    await until(lambda: "8 matching lines" in str(app.screen._compositor.render_strips()))
    await pilot.press("enter", "n")
    bar = app.query_one(SearchBar)
    await until(
        lambda: bar.status == "match 2/8", what=lambda: f"the second match, not {bar.status!r}"
    )
    await pilot.pause(0.2)


def test_search_session(snap_compare, data_dir: Path) -> None:
    """`/error`, Enter, `n`: every match highlighted, the second one under the cursor,
    the bar and the status line say `match 2/8`."""
    app = finished_app(data_dir, SEARCHABLE)
    assert snap_compare(app, terminal_size=SIZE, run_before=search_error)


def test_filter_session(snap_compare, data_dir: Path) -> None:
    """`&` after a search: only the 8 matching lines, with their line numbers."""
    app = finished_app(data_dir, SEARCHABLE)

    async def filtered(pilot: Pilot[int]) -> None:
        await search_error(pilot)
        await pilot.press("ampersand")
        view = pilot.app.query_one(TranscriptView)
        await until(lambda: view.filtering and view.line_count == 60, what="the filter")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=filtered)


def test_save_dialog(snap_compare, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`s` asks where to save, offering a file named after the tab in the current dir."""
    monkeypatch.chdir("/")
    app = finished_app(data_dir, ("seq 1 5", out("1\n2\n3\n4\n5\n")))

    async def open_save(pilot: Pilot[int]) -> None:
        await all_final(pilot)
        await pilot.press("s")
        await pilot.pause(0.2)
        await steady_cursors(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=open_save)


class CrashLoopApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Sidebar()

    def on_mount(self) -> None:
        flaky = SessionSpec("./flaky", name="flaky", restart="on-failure", max_restarts=5)
        worker = SessionSpec("./worker", name="worker", restart="always", max_restarts=3)
        sidebar = self.query_one(Sidebar)
        sidebar.now = NOW
        sidebar.stats = EngineStats(running=0, paused=0, queued=0, max_sessions=16)
        sidebar.sessions = (
            _info(
                1,
                State.EXITED,
                spec=flaky,
                exit_code=1,
                ended_at=NOW - 2,
                restarts=3,
                restart_at=NOW + 6,
            ),
            _info(2, State.EXITED, spec=worker, exit_code=0, ended_at=NOW - 30, restarts=3),
        )


def test_sidebar_crash_loop(snap_compare) -> None:
    """A crash loop in plain sight: restarts so far, the countdown to the next one, and
    a session that gave up."""
    assert snap_compare(CrashLoopApp(), terminal_size=(40, 14))


def test_full_screen_program(snap_compare, data_dir: Path) -> None:
    """A curses program (tests/programs/curses_demo.py) on the alternate screen, shown
    as its live screen at the view's size, in colour, in input mode after two `+`
    and an up arrow (the status line and the banner say so)."""
    demo = Path(__file__).parent / "programs" / "curses_demo.py"
    # Named: the title would show the command's paths.  The clock at 1.0: "0s" run.
    spec = SessionSpec(f"{sys.executable} {demo}", name="curses demo", cwd="/", tty=True)
    app = make_app(
        Settings(data_dir=data_dir),
        [],
        declared=[DeclaredSession(spec)],
        sample_usage=False,
        clock=lambda: 1.0,
    )

    async def drive(pilot: Pilot[int]) -> None:
        assert isinstance(app, CcxApp)
        await until(lambda: "count=0" in screen_text(app), what="the program's screen")
        await pilot.press("i", "plus", "plus", "up")
        await until(lambda: "count=12" in screen_text(app), what="the keys taken")
        transcript = app.engine.sessions()[-1].transcript

        def settled() -> bool:  # the status line's count has caught up with the program
            return f"· {size(transcript.stat().st_size)} " in screen_text(app)

        await until(settled, what=lambda: screen_text(app))
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=drive)
    finally:
        stop_engines_under(data_dir)
