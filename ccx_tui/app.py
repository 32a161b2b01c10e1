"""The Textual app: owns the engine, wires engine events to widgets, global keys."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from ccx_tui.config import DeclaredSession, ServerTarget, Settings
from ccx_tui.engine.api import Engine
from ccx_tui.engine.sessions.events import (
    Event,
    OutputAppended,
    SessionAdded,
    SessionRemoved,
    SessionUpdated,
    Subscriber,
    TreeUsage,
    UsageSampled,
)
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.wire.client import EngineClient, ServerSocket
from ccx_tui.engine.wire.remote_engine import RemoteEngine
from ccx_tui.errors import CcxError
from ccx_tui.hangup import EXIT_HANGUP, HangupGuard
from ccx_tui.terminal_keys import key_bytes, paste_bytes
from ccx_tui.textsafe import escape_controls
from ccx_tui.typist import Typist
from ccx_tui.widgets import ui_process
from ccx_tui.widgets.dialogs import ConfirmDialog, CreateSessionDialog, QuitDialog
from ccx_tui.widgets.help import HelpScreen
from ccx_tui.widgets.history import HistoryScreen
from ccx_tui.widgets.key_footer import KeyFooter
from ccx_tui.widgets.main_screen import MainScreen
from ccx_tui.widgets.palette import ANSI_THEME
from ccx_tui.widgets.rename_dialog import RenameDialog
from ccx_tui.widgets.safe import LiteralToastsApp, printable
from ccx_tui.widgets.session_pane import SessionPane, live_tap, pane_id
from ccx_tui.widgets.session_tabs import SessionTabs, TabBar
from ccx_tui.widgets.sidebar import Sidebar
from ccx_tui.widgets.status import restart_badge, state_icon, state_label
from ccx_tui.widgets.switcher import Entry, SessionsProvider
from ccx_tui.widgets.transcript_view import TranscriptView

EMPTY_TEXT = """[b]No sessions yet.[/b]

Press [b]c[/b] to create one, or start ccx-tui with commands:

    ccx-tui 'make test' 'npm run dev'

Press [b]h[/b] for past sessions, [b]?[/b] for help, [b]q[/b] to quit,
[b]d[/b] to detach (sessions keep running; [b]ccx-tui attach[/b] brings them back)."""


SIDEBAR_MIN_WIDTH = 100
"""Narrower than this, the sidebar hides itself (S shows it again)."""
LEAVE_INPUT = "ctrl+right_square_bracket"
"""The one key input mode keeps: it leaves (programs rarely need ctrl+], telnet's escape)."""
LEAVE_INPUT_SHOWN = "ctrl+]"

PALETTE = [
    ("New session", "Create a session: command, directory, TTL (c)", "create"),
    ("Kill session", "SIGTERM, then SIGKILL after the grace period (x)", "kill"),
    ("Kill session now", "SIGKILL at once (X)", "kill(True)"),
    ("Restart session", "Kill if running, then run the command again (r)", "restart"),
    ("Pause or resume session", "SIGSTOP / SIGCONT the process tree (p)", "pause"),
    ("Switch to session", "Find a session by name or command (o)", "switcher"),
    ("Show or hide the sidebar", "Hidden by itself under 100 columns (S)", "toggle_sidebar"),
    ("Zoom", "The output takes the whole screen, or not (z)", "zoom"),
    ("Rename session", "Give the session a name (R)", "rename"),
    ("Restart all sessions", "Run every session of the tabs again (ctrl+r)", "restart_all"),
    ("Stop all sessions", "Kill every running session, dependents first (ctrl+x)", "stop_all"),
    ("Type into session", f"Keys go to the program until {LEAVE_INPUT_SHOWN} (i)", "input_mode"),
    ("Close tab", "Close the session's tab (w)", "close_tab"),
    ("History", "Open a past session (h)", "history"),
    ("Keys", "Show every key (?)", "help"),
    ("Detach", "Leave, sessions keep running: ccx-tui attach brings them back (d)", "detach"),
    ("Quit ccx-tui", "Kill running sessions or detach, after asking (q)", "quit"),
]


def tab_label(info: SessionInfo) -> Content:
    """'▶ make test ↻2': the title is the user's (or a config's, or a server's) text:
    a variable of the markup, never part of it, and on one line."""
    icon, colour = state_icon(info)
    badge = restart_badge(info)
    markup = f"[{colour}]$icon[/] $title" + (" [$warning]$badge[/]" if badge else "")
    return Content.from_markup(markup, icon=icon, title=printable(info.spec.title), badge=badge)


BUILD_PACE = 0.05
"""Seconds between two tabs built in the background (see `SessionPane.build`)."""
FREEZE_AFTER = 10
"""Tabs built in the background after which their widgets are frozen too (see
`spare_the_collector`): one full pass then, instead of every later full pass walking
them (an attach to 100 sessions builds 100 tabs after the first freeze)."""

DEFAULT_GC_THRESHOLDS = gc.get_threshold()
GC_THRESHOLDS = (700, 10, 100)
"""The collector's thresholds once the app is up: full passes ten times rarer than
Python's default (young ones as usual)."""


def spare_the_collector() -> None:
    """Keep the cyclic collector's full passes short and rare.

    Measured with 20 busy sessions: a full pass walked some 150,000 objects (Textual,
    its CSS, the widgets of every tab, cached lines) for 150-250 ms of CPU, every second
    or two while switching tabs, each one a key that waited as long.  What exists once
    the app is up (and the tabs of the work already running) lives as long as the app:
    it is collected once and frozen, out of every later pass; and the passes are rarer.
    What freezing gives up: a frozen object left in a reference cycle is never freed
    (the widgets of a tab that was open at startup and is closed later).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def restore_the_collector() -> None:
    """Undo `spare_the_collector` (the app is going: what it froze may be freed, and
    a process that runs apps one after another, as the tests do, leaks none)."""
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLDS)


class CcxApp(LiteralToastsApp):
    """Tabs of sessions, a sidebar of limits and TTLs, everything on the keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "ccx-tui"
    # The app gives the active tab's output the keyboard itself (at once, on every
    # switch); the screen's own auto-focus could land on the tab bar after that.
    AUTO_FOCUS = None

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "create", "New"),
        Binding("x", "kill", "Kill"),
        Binding("X", "kill(True)", "Kill now", show=False),
        Binding("r", "restart", "Restart"),
        Binding("p", "pause", "Pause"),
        Binding("i", "input_mode", "Type"),
        Binding("R", "rename", "Rename", show=False),
        Binding("o", "switcher", "Switch", show=False),
        Binding("S", "toggle_sidebar", "Sidebar", show=False),
        Binding("z", "zoom", "Zoom", show=False),
        Binding("ctrl+r", "restart_all", "Restart all", show=False),
        Binding("ctrl+x", "stop_all", "Stop all", show=False),
        Binding("w", "close_tab", "Close"),
        Binding("right_square_bracket", "next_tab", "Next tab", show=False),
        Binding("left_square_bracket", "previous_tab", "Prev tab", show=False),
        *[Binding(str(n), f"jump({n})", f"Tab {n}", show=False) for n in range(1, 10)],
        Binding("h", "history", "History"),
        Binding("question_mark", "help", "Help"),
        Binding("d", "detach", "Detach"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings,
        commands: list[str] | None = None,
        names: list[str] | None = None,
        remotes: list[Engine] | None = None,
        declared: list[DeclaredSession] | None = None,
        clock: Callable[[], float] = time.time,
        sample_usage: bool = True,
    ) -> None:
        super().__init__()
        ui_process.tune()  # faster Strips (a quarter of the CPU of following a
        # session), and frames written as soon as they are made
        # Textual's default ANSI palette draws magenta like red and blue as purple.
        self.ansi_theme_dark = ANSI_THEME
        # No animations: the tab bar's underline slid for 0.3 s after every switch, a
        # frame every 1/60 s each redrawing the whole row of tabs and the sidebar, and
        # keys pressed meanwhile waited for those frames.
        self.animation_level = "none"
        self.engine = engine
        self.remotes = list(remotes or [])
        self.engines: list[Engine] = [engine, *self.remotes]
        self.settings = settings
        self._commands = list(commands or [])
        self._names = list(names or [])  # the commands' sessions' names, in order
        self._wrap = settings.wrap  # every output view's soft wrap (`W` switches all)
        self._declared = list(declared or [])
        self._clock = clock
        self._sample_usage = sample_usage  # show the engines' CPU and memory figures
        self._open: list[str] = []  # session ids in tab order
        self._panes: dict[str, SessionPane] = {}  # the open tabs' panes, by session id
        self._quitting = False
        self._asking_to_quit = False  # the quit question is on screen
        self._hangup = False  # the terminal is gone: end the process, never touch it
        self._typing_into: str | None = None  # input mode: the session keys go to
        self._sidebar_wanted: bool | None = None  # the user's S; None: by the width
        self._focus_next: set[str] = set()  # sessions the user started: shown when added
        self._building = False  # tabs not shown yet are being built in the background
        self._spared = False  # spare_the_collector ran (and restore has not)
        self._built_unfrozen = 0  # tabs built in the background since the last freeze
        self._typist = Typist(self._engine_of, self._input_refused)
        self.detached_where: list[tuple[int, str, str]] = []
        """(sessions, engine name, command that brings them back) per engine kept."""

        # The widgets the timer and the engine's events update, held
        # here rather than looked up: those outlive the widgets by a little at exit.
        self._empty = Static(EMPTY_TEXT, id="empty")
        self._tabs = SessionTabs(id="tabs")
        self._sidebar = Sidebar(id="sidebar")
        self._banner = Static(id="input-banner")

    @property
    def detached(self) -> int:
        """Sessions left running (in the engine process, on servers) when it detached."""
        return sum(count for count, _, _ in self.detached_where)

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="main"):
                yield self._empty
                yield self._tabs
            yield self._sidebar
        yield self._banner
        yield KeyFooter()

    async def on_mount(self) -> None:
        for engine in list(self.engines):
            try:
                await engine.open()
            except CcxError as exc:  # the engine process could not be started or reached
                if engine is self.engine:
                    self.exit(return_code=1, message=f"ccx-tui: {exc}")
                    return
                self.notify(f"{engine.name}: {exc}", severity="error", timeout=30)
                self.engines.remove(engine)
                if engine in self.remotes:
                    self.remotes.remove(engine)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, self._on_signal, signum)
        # SIGHUP: not on the loop, which a write to the dead terminal can block for good.
        with contextlib.suppress(ValueError):  # not the main thread (tests): no signals
            HangupGuard(
                loop,
                stop_politely=partial(self._on_signal, signal.SIGHUP),
                kill_now=self._kill_all_now,
                grace=self.settings.kill_grace,
            ).install()
        for engine in self.engines:
            self._engine_events(engine, engine.subscribe())
        self.run_worker(self._typist.run(), group="typist")
        await self._show_current_work()
        for item in self._declared:
            if self._already_running(item):
                continue
            tty = self.settings.tty if item.tty is None else item.tty
            spec = replace(item.spec, tty=tty)
            await self._start(spec, item.server or "local", autostart=item.autostart)
        for n, command in enumerate(self._commands):
            name = self._names[n] if n < len(self._names) and self._names[n] else None
            await self._start(SessionSpec(command, name=name, tty=self.settings.tty))
        self._sync_empty()
        self._tick()
        self.set_interval(1.0, self._tick)
        spare_the_collector()
        self._spared = True

    async def on_unmount(self) -> None:
        self._spared = False
        restore_the_collector()
        await asyncio.gather(*(engine.aclose() for engine in self.engines))

    async def _show_current_work(self) -> None:
        """Tabs for the work the engines already have (an engine process that outlived
        its last client), showing the latest live session."""
        current = [info for engine in self.engines for info in engine.current()]
        live = [info for info in current if not info.state.final]
        await self._open_tabs(current, show=(live or current)[-1].id if current else None)

    def _already_running(self, item: DeclaredSession) -> bool:
        """A declared session its engine still runs from an earlier start (attaching
        again, to the engine process or to a ccx-tui server, must not start a second
        copy)."""
        location = item.server or "local"
        engine = next((e for e in self.engines if location in (e.location, e.name)), None)
        if engine is None:
            return False
        spec = item.spec
        return any(
            info.spec.command == spec.command
            and info.spec.name == spec.name
            and (spec.cwd is None or info.spec.cwd == spec.cwd)
            and not info.state.final
            for info in engine.current()
        )

    # -- the one place engine events become UI updates --------------------------------

    @work(group="engine", exit_on_error=True)
    async def _engine_events(self, engine: Engine, sub: Subscriber) -> None:
        """Apply `sub`'s events (subscribed by the caller before anything can happen, so
        no event falls between starting this worker and its first wait)."""
        try:
            while (event := await sub.get()) is not None:
                if not self.is_running:
                    return  # teardown has begun: the widgets are being removed
                await self._apply(event)
        finally:
            engine.unsubscribe(sub)

    async def _apply(self, event: Event) -> None:
        if isinstance(event, OutputAppended):
            pane = self._pane(event.session_id)
            if pane is not None:
                pane.output_grew()
        elif isinstance(event, SessionAdded):
            # The first tab is shown; later ones only if the user just made them
            # (sessions from the command line or a config open behind the first).
            focus = not self._open or event.info.id in self._focus_next
            self._focus_next.discard(event.info.id)
            await self._open_tab(event.info, activate=focus)
            if event.info.state.final:
                # It ended before we heard of it (an engine process's coalesced frame
                # can carry its start and its end at once): its end still gets a toast.
                self._toast(event.info)
        elif isinstance(event, SessionUpdated):
            self._session_changed(event.info)
        elif isinstance(event, SessionRemoved):
            await self._close_tab(event.session_id)
        elif isinstance(event, UsageSampled):
            self._set_usage(event.usage)

    def _session_changed(self, info: SessionInfo) -> None:
        if info.state.final and info.id == self._typing_into:
            self._leave_input()
        pane = self._pane(info.id)
        if pane is not None:
            pane.info = info
            self._tabs.set_label(pane.id or "", tab_label(info))
            pane.output_grew()
        self._refresh_sidebar()
        if info.state.final:
            self._toast(info)

    def _toast(self, info: SessionInfo) -> None:
        title = printable(info.spec.title)  # on one line, even in a toast
        if info.restart_at is not None and info.restarts:
            return  # a crash loop shows in the tab and sidebar; one toast, not one a run
        if info.state is State.EXITED and info.exit_code != 0:
            self.notify(f"{title}: {state_label(info)}", severity="error")
        elif info.state in (State.KILLED, State.EXPIRED, State.FAILED, State.LOST):
            reason = f" ({info.reason})" if info.reason not in (None, info.state.value) else ""
            self.notify(f"{title}: {info.state.value}{reason}", severity="warning")

    # -- tabs -------------------------------------------------------------------------

    def _pane(self, session_id: str) -> SessionPane | None:
        return self._panes.get(session_id)

    async def _open_tab(self, info: SessionInfo, *, activate: bool = True) -> None:
        await self._open_tabs([info], show=info.id if activate else None)

    async def _open_tabs(self, infos: list[SessionInfo], *, show: str | None = None) -> None:
        """Tabs for the sessions of `infos` that have none, mounted together (attaching
        to 100 sessions lays the screen out once, not 100 times); `show` is shown."""
        panes: list[tuple[SessionPane, Content]] = []
        for info in infos:
            if info.id in self._open:
                continue
            tap = None
            try:
                # The tap lets the pane show output a full disk did not keep.
                tap = live_tap(self._engine_of(info.id), info)
                pane = SessionPane(info, tap=tap, wrap=self._wrap)
            except CcxError as exc:  # its transcript cannot be opened
                if tap is not None:
                    tap.close()
                self.notify(str(exc), severity="error")
                continue
            self._open.append(info.id)  # before the await: an event may add it too
            self._panes[info.id] = pane
            panes.append((pane, tab_label(info)))
        if panes:
            await self._tabs.add_panes(panes)
        if not self.is_running:
            return  # the app began to exit meanwhile
        if show is not None and show in self._panes:
            self._activate(show)
        self._sync_empty()
        self._refresh_sidebar()
        if panes and not self._building:
            self._building = True
            self.run_worker(self._build_hidden(), group="build")

    async def _build_hidden(self) -> None:
        """Build the tabs not shown yet, one at a time between frames: the first screen
        comes before them, and a switch to one later costs no more than to any other."""
        try:
            while self.is_running and not self._quitting:
                pane = next((p for p in self._panes.values() if not p.built), None)
                if pane is None:
                    break
                pane.build()
                self._built_unfrozen += 1
                await asyncio.sleep(BUILD_PACE)
        finally:
            self._building = False
        if self._built_unfrozen >= FREEZE_AFTER and self._spared:
            self._built_unfrozen = 0
            spare_the_collector()  # tabs live long (an attach's): out of full passes

    async def _close_tab(self, session_id: str) -> None:
        if session_id not in self._open:
            return
        if session_id == self._typing_into:
            self._leave_input()
        self._open.remove(session_id)
        del self._panes[session_id]
        await self._tabs.remove_pane(pane_id(session_id))
        if not self.is_running:
            return  # the app began to exit meanwhile
        self._sync_empty()
        self._refresh_sidebar()
        self._focus_view()

    def _sync_empty(self) -> None:
        empty = not self._open
        self._empty.display = empty
        self._tabs.display = not empty

    def _focus_view(self) -> None:
        session_id = self._current()
        pane = self._pane(session_id) if session_id else None
        if pane is not None and pane.is_attached:
            pane.screen.set_focus(pane.focus_target)

    def _engine_of(self, session_id: str) -> Engine:
        """The engine that runs (or ran) the session: local, or one per server."""
        for engine in self.remotes:
            with contextlib.suppress(CcxError):
                engine.get(session_id)
                return engine
        return self.engine

    def _current(self) -> str | None:
        active = self._tabs.active
        if active and active.startswith("s-"):
            return active[2:]
        return None

    def _activate(self, session_id: str) -> None:
        """Show the session's tab and give its output the keyboard, now: a key pressed
        right after `1` or `]` must reach the new tab, not the one just left (waiting for
        a message to switch them took 100 ms and more under load)."""
        tabs = self._tabs
        if self._typing_into not in (None, session_id):
            self._leave_input()  # a click on another tab: typing was for this one
        pane = self._pane(session_id)
        if pane is not None:
            pane.build()  # before it is shown: the keys below go to its view
        with contextlib.suppress(ValueError):  # its tab went away meanwhile
            tabs.active = pane_id(session_id)
            self._focus_view()
            self._sidebar.selected = session_id  # the sidebar's mark moves with it
            self._refresh_pane(session_id)

    @on(TabBar.Clicked)
    def _tab_clicked(self, event: TabBar.Clicked) -> None:
        if self.is_running and event.tab_id.startswith("s-"):
            self._activate(event.tab_id[2:])

    # -- sidebar and clock ----------------------------------------------------------

    def _refresh_sidebar(self) -> None:
        sidebar = self._sidebar
        sidebar.now = self._clock()
        infos = []
        for session_id in self._open:
            with contextlib.suppress(CcxError):
                infos.append(self._engine_of(session_id).get(session_id))
        sidebar.sessions = tuple(infos)
        sidebar.stats = self.engine.stats
        sidebar.servers = tuple(
            (
                remote.name,  # the [[server]] name, else its URL
                f"{remote.status}; running {remote.stats.live}, queued {remote.stats.queued}",
            )
            for remote in self.remotes
        )
        sidebar.selected = self._current()
        sidebar.show_now()

    def _tick(self) -> None:
        """Once a second: elapsed times and TTLs move on (CPU and memory figures come
        from the engine process, see UsageSampled)."""
        if self._quitting or not self.is_running:
            return  # the sessions are being stopped, or the widgets removed
        self._refresh_sidebar()
        self._refresh_pane(self._current())  # the others catch up when shown

    def _refresh_pane(self, session_id: str | None) -> None:
        """The pane's elapsed time, sizes and state, as of now."""
        pane = self._pane(session_id) if session_id else None
        if pane is not None and session_id is not None:
            with contextlib.suppress(CcxError):
                pane.info = self._engine_of(session_id).get(session_id)
            pane.tick()

    def _set_usage(self, usage: Mapping[str, TreeUsage]) -> None:
        if self.is_running and self._sample_usage:  # not once teardown has begun
            self._sidebar.usage = dict(usage)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every session action in the command palette too (ctrl+p)."""
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # PALETTE's own Quit asks first, as q does
                yield command
        for title, help_text, action in PALETTE:
            yield SystemCommand(title, help_text, partial(self.run_action, action))

    # -- actions ----------------------------------------------------------------------

    async def _start(
        self,
        spec: SessionSpec,
        location: str = "local",
        *,
        autostart: bool = True,
        focus: bool = False,
    ) -> None:
        """Start `spec` on the engine named `location`; a refusal is a toast.  With
        `focus` (the user made it), its tab is shown."""
        engine = next((e for e in self.engines if location in (e.location, e.name)), None)
        if engine is None:
            self.notify(f"cannot start {spec.command!r}: no server {location!r}", severity="error")
            return
        if spec.tty:
            cols, rows = self._terminal_size()
            spec = replace(spec, cols=cols, rows=rows)
        try:
            info = await engine.start(spec, autostart=autostart)
            if focus:
                if info.id in self._open:
                    self._activate(info.id)
                else:
                    self._focus_next.add(info.id)
        except CcxError as exc:
            self.notify(f"cannot start {spec.command!r}: {exc}", severity="error")

    def action_create(self) -> None:
        def created(result: tuple[SessionSpec, str] | None) -> None:
            if result is not None:
                spec, location = result
                self.run_worker(self._start(spec, location, focus=True), group="actions")

        self.push_screen(
            CreateSessionDialog(
                cwd=str(Path.cwd()),
                ttl=self.settings.ttl,
                locations=[e.name for e in self.engines],
                tty=self.settings.tty,
            ),
            created,
        )

    def _selected(self) -> str | None:
        session_id = self._current()
        if session_id is None:
            self.notify("no session selected: press c to create one", severity="warning")
        return session_id

    def action_kill(self, now: bool = False) -> None:
        session_id = self._selected()
        if session_id is None:
            return
        engine = self._engine_of(session_id)
        info = engine.get(session_id)
        if info.state.final:
            self.notify(f"{info.spec.title} has already ended ({state_label(info)})")
            return
        self.run_worker(engine.kill(session_id, force=now), group="actions")

    def action_restart(self) -> None:
        session_id = self._selected()
        if session_id is not None:
            engine = self._engine_of(session_id)
            self.run_worker(self._guard(engine.restart(session_id)), group="actions")

    def action_pause(self) -> None:
        session_id = self._selected()
        if session_id is None:
            return
        engine = self._engine_of(session_id)
        state = engine.get(session_id).state
        if state is State.PAUSED:
            self.run_worker(self._guard(engine.resume(session_id)), group="actions")
        elif state is State.RUNNING:
            self.run_worker(self._guard(engine.pause(session_id)), group="actions")
        else:
            self.notify(f"cannot pause a {state.value} session", severity="warning")

    # -- terminals: their size, and input mode ----------------------------------------

    def _terminal_size(self) -> tuple[int, int]:
        """The size a new terminal session's view will have: the shown one's, else
        the main area's less the tab bar and status line (the view corrects it)."""
        session_id = self._current()
        pane = self._pane(session_id) if session_id else None
        if pane is not None and pane.view.size.width > 1:
            cols, rows = pane.view.text_size
            return max(cols, 2), max(rows, 1)
        main = self.query_one("#main").size  # less a scrollbar, the tab bar, the status
        return max(main.width - 2, 20), max(main.height - 3, 5)

    @on(SessionPane.TerminalSized)
    def _terminal_sized(self, event: SessionPane.TerminalSized) -> None:
        with contextlib.suppress(CcxError):
            engine = self._engine_of(event.session_id)
            info = engine.get(event.session_id)
            if info.spec.tty and not info.state.final:
                resize = engine.resize(event.session_id, event.cols, event.rows)
                self.run_worker(self._guard(resize, quiet=True), group="actions")

    @on(SessionPane.TerminalReply)
    def _terminal_reply(self, event: SessionPane.TerminalReply) -> None:
        with contextlib.suppress(CcxError):
            if not self._engine_of(event.session_id).get(event.session_id).state.final:
                self._typist.send(event.session_id, event.data.encode())

    # -- layout: sidebar and zoom ---------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._sync_sidebar(event.size.width)

    def _sync_sidebar(self, width: int | None = None) -> None:
        """Shown if the user said so with S, else only from SIDEBAR_MIN_WIDTH columns."""
        width = self.size.width if width is None else width
        wanted = self._sidebar_wanted
        shown = width >= SIDEBAR_MIN_WIDTH if wanted is None else wanted
        self.screen_stack[0].set_class(not shown, "-no-sidebar")

    def action_toggle_sidebar(self) -> None:
        main = self.screen_stack[0]
        self._sidebar_wanted = main.has_class("-no-sidebar")
        main.remove_class("-zoom")
        self._sync_sidebar()

    def on_transcript_view_wrap_toggled(self, event: TranscriptView.WrapToggled) -> None:
        """`W` in one tab switches soft wrap in every tab (and in tabs opened later)."""
        self._wrap = event.wrap
        for pane in self._panes.values():
            pane.set_wrap(event.wrap)

    def action_zoom(self) -> None:
        self.screen_stack[0].toggle_class("-zoom")

    def action_switcher(self) -> None:
        self.push_screen(
            CommandPalette(
                providers=[SessionsProvider], placeholder="Switch to a session: name or command…"
            )
        )

    def switcher_entries(self) -> list[Entry]:
        """The open sessions, in tab order, for the switcher."""
        entries = []
        for session_id in self._open:
            with contextlib.suppress(CcxError):
                info = self._engine_of(session_id).get(session_id)
                entries.append(
                    Entry(session_id, info.spec.title, info.spec.command, state_label(info))
                )
        return entries

    def switch_to(self, session_id: str) -> None:
        if session_id in self._open:
            self._activate(session_id)

    def action_restart_all(self) -> None:
        """Run every session of the tabs again (those that ended queue up, behind
        their dependencies)."""
        for session_id in list(self._open):
            engine = self._engine_of(session_id)
            self.run_worker(self._guard(engine.restart(session_id), quiet=True), group="actions")

    def action_stop_all(self) -> None:
        """Kill every session of every engine; what depends on others stops first."""
        busy = sum(e.stats.busy for e in self.engines)
        if not busy:
            self.notify("nothing is running")
            return

        def answered(ok: bool | None) -> None:
            if ok:
                for engine in self.engines:
                    self.run_worker(self._guard(engine.kill_all("stopped all")), group="actions")

        self.push_screen(
            ConfirmDialog(f"Stop {busy} running or queued session(s)?", yes="Stop all"), answered
        )

    def action_rename(self) -> None:
        session_id = self._selected()
        if session_id is None:
            return
        engine = self._engine_of(session_id)

        def renamed(name: str | None) -> None:
            if name is not None:
                self.run_worker(self._guard(engine.rename(session_id, name)), group="actions")

        self.push_screen(RenameDialog(engine.get(session_id).spec.title), renamed)

    def action_input_mode(self) -> None:
        """Keys go to the current session's program until ctrl+] (checked first: a
        session on pipes, or on a server that cannot take input, says so)."""
        session_id = self._selected()
        if session_id is None:
            return
        info = self._engine_of(session_id).get(session_id)
        if not info.spec.tty:
            self.notify(
                f"{printable(info.spec.title)} runs on pipes: it cannot take input "
                "(start it with Terminal checked, or without --no-tty)",
                severity="warning",
            )
            return
        if info.state.final:
            self.notify(f"{printable(info.spec.title)} has ended: nothing reads input")
            return
        # At once: the keys typed right after `i` are the program's.  A server that
        # cannot take input says so in answer to the (empty) first input.
        self._enter_input(session_id)
        self.run_worker(self._check_input(session_id), group="actions")

    async def _check_input(self, session_id: str) -> None:
        try:
            await self._engine_of(session_id).send_input(session_id, b"")
        except CcxError as exc:
            self._input_refused(session_id, str(exc))

    def _enter_input(self, session_id: str) -> None:
        self._typing_into = session_id
        pane = self._pane(session_id)
        if pane is not None:
            pane.typing = True
        title = printable(self._engine_of(session_id).get(session_id).spec.title)
        self._banner.update(
            Content.from_markup(
                "[b]INPUT[/b] · keys go to [b]$title[/b] · [b]$key[/b] leaves",
                title=title,
                key=LEAVE_INPUT_SHOWN,
            )
        )
        self.screen.add_class("-input")

    def _leave_input(self) -> None:
        session_id, self._typing_into = self._typing_into, None
        pane = self._pane(session_id) if session_id else None
        if pane is not None:
            pane.typing = False
        self.screen_stack[0].remove_class("-input")

    def _input_refused(self, session_id: str, message: str) -> None:
        if session_id == self._typing_into:
            self._leave_input()
        self.notify(f"cannot type into it: {message}", severity="warning")

    async def on_event(self, event: events.Event) -> None:
        """In input mode, every key (ctrl+p, ctrl+q and ctrl+c too) and every paste go
        to the program, before any binding sees them; only ctrl+] is ours."""
        session_id = self._typing_into
        if (
            session_id is not None
            and isinstance(event, (events.Key, events.Paste))
            and len(self.screen_stack) == 1  # a dialog on top takes its own keys
        ):
            if isinstance(event, events.Paste):
                self._typist.send(session_id, paste_bytes(event.text))
            elif event.key == LEAVE_INPUT:
                self._leave_input()
            else:
                pane = self._pane(session_id)
                app_cursor = pane is not None and pane.app_cursor
                data = key_bytes(event.key, event.character, app_cursor=app_cursor)
                self._typist.send(session_id, data)
            return
        await super().on_event(event)

    async def _guard(self, action: Awaitable[object], *, quiet: bool = False) -> None:
        """Await an engine action; a refusal is a toast (none if `quiet`)."""
        try:
            await action
        except CcxError as exc:
            if not quiet:
                self.notify(str(exc), severity="error")

    def action_close_tab(self) -> None:
        session_id = self._selected()
        if session_id is None:
            return
        engine = self._engine_of(session_id)
        info = engine.get(session_id)

        async def close(confirmed: bool | None) -> None:
            if not confirmed:
                return
            if not info.state.final:
                await engine.kill(session_id, reason="tab closed")
            await self._close_tab(session_id)

        if info.state.final:
            self.run_worker(close(True), group="actions")
            return

        def answered(ok: bool | None) -> None:
            self.run_worker(close(ok), group="actions")

        question = Content.from_markup(
            "[b]$title[/b] is still $state. Kill it and close the tab?",
            title=printable(info.spec.title),
            state=info.state.value,
        )
        self.push_screen(ConfirmDialog(question, yes="Kill and close"), answered)

    def action_next_tab(self) -> None:
        self._cycle(1)

    def action_previous_tab(self) -> None:
        self._cycle(-1)

    def _cycle(self, step: int) -> None:
        current = self._current()
        if not self._open or current is None:
            return
        index = (self._open.index(current) + step) % len(self._open)
        self._activate(self._open[index])

    def action_jump(self, number: int) -> None:
        if 0 < number <= len(self._open):
            self._activate(self._open[number - 1])

    def action_history(self) -> None:
        past = [s for s in self.engine.sessions() if s.state.final and s.id not in self._open]

        def picked(session_id: str | None) -> None:
            if session_id is not None:
                self.run_worker(self._open_tab(self.engine.get(session_id)), group="actions")

        self.push_screen(HistoryScreen(past), picked)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_detach(self) -> None:
        """Leave at once: the engine process keeps every session running, and
        `ccx-tui attach` (or `ccx-tui`) brings them back."""
        if not self._quitting:
            self.run_worker(self._leave(kill=False), group="actions")

    async def action_quit(self) -> None:
        """Every way to quit (q, Textual's ctrl+q, the palette) comes here: while
        sessions run or wait, do what `on_exit` says (ask: kill them, or detach and
        leave them running, or cancel)."""
        if self._quitting or self._asking_to_quit:
            return  # already on the way out, or already asked
        busy = sum(e.stats.busy for e in self.engines)
        on_exit = self.settings.on_exit
        if not busy or on_exit == "detach":
            self.run_worker(self._leave(kill=False), group="actions")
            return

        def answered(choice: str | bool | None) -> None:
            self._asking_to_quit = False
            if choice in ("kill", True):
                self.run_worker(self._leave(kill=True), group="actions")
            elif choice == "detach":
                self.run_worker(self._leave(kill=False), group="actions")

        self._asking_to_quit = True
        if on_exit == "kill":
            self.push_screen(
                ConfirmDialog(
                    f"{busy} session(s) still running or queued. Quitting kills them.",
                    yes="Quit and kill",
                ),
                answered,
            )
            return
        kept = sum(e.stats.busy for e in self.engines if e.survives_detach)
        servers = [e for e in self.engines if e.survives_detach and e is not self.engine]
        come_back = (
            "`ccx-tui attach` brings them back"
            if not any(e.stats.busy for e in servers)
            else "the message on leaving says how to come back to each server"
        )
        self.push_screen(
            QuitDialog(busy, lost_on_detach=busy - kept, come_back=come_back), answered
        )

    def _on_signal(self, signum: int) -> None:
        """SIGTERM, SIGINT, SIGHUP (the terminal is gone): detach, unless `on_exit`
        says to kill (nobody is there to ask)."""
        hangup = signum == signal.SIGHUP
        kill = self.settings.on_exit == "kill"
        self.run_worker(self._leave(kill=kill, hangup=hangup), group="actions")

    async def _leave(self, *, kill: bool, hangup: bool = False) -> None:
        """Kill every session first (TERM, grace, KILL) if `kill`; then let go of the
        engines (the engine process keeps what still runs) and exit.

        After SIGHUP the terminal is gone: there is nothing to restore, and Textual's
        own shutdown would block for good writing to it (the process stayed behind),
        so the process ends right after the engines are let go.
        """
        if hangup:  # also when quitting is under way: its exit must not touch the tty
            self._hangup = True
        if self._quitting:
            return
        self._quitting = True
        if kill:
            if not hangup and any(e.stats.live for e in self.engines):
                self.notify("stopping sessions…", timeout=10)
            await asyncio.gather(
                *(engine.kill_all("ccx-tui exited") for engine in self.engines),
                return_exceptions=True,  # an engine that is gone has nothing to kill
            )
        else:
            self.detached_where = [
                (e.stats.busy, e.name, e.reattach)
                for e in self.engines
                if e.survives_detach and e.stats.busy
            ]
        await asyncio.gather(*(engine.aclose() for engine in self.engines))
        if self._hangup:
            os._exit(EXIT_HANGUP)
        self.exit(0)

    def _kill_all_now(self) -> None:
        """The last resort (HangupGuard's watchdog thread): SIGKILL the trees of the
        sessions that live in this process (remote servers' runs) and save their
        state; an engine process's sessions are not ours to kill."""
        for engine in self.engines:
            engine.kill_all_now()


def make_app(
    settings: Settings,
    commands: list[str] | None = None,
    *,
    connect: list[str] | None = None,
    token: str | None = None,
    servers: list[ServerTarget] | None = None,
    declared: list[DeclaredSession] | None = None,
    attach: list[ServerTarget] | None = None,
    **kwargs: object,
) -> CcxApp:
    """The app factory (tests and screenshots build the app through it): a client of
    the data dir's engine process (started on first use), and an engine per server.

    `connect` URLs share `token`; `servers` carry their own token and name (sessions
    run there, under our limits); `attach` are ccx-tui servers whose engines are shown
    as the local one is (every session, kept running when we go).
    """
    engine = EngineClient(
        settings.data_dir,
        engine_args=settings.engine_args(),
        default_ttl=settings.ttl,
        scrub_env=settings.scrub_env,
    )
    targets = [ServerTarget(url, token) for url in (connect or [])] + list(servers or [])
    remotes: list[Engine] = [
        RemoteEngine(settings.engine_config(), t.url, token=t.token, name=t.name, ca_file=t.ca_file)
        for t in targets
    ]
    remotes += [
        EngineClient(
            settings.data_dir,
            server=ServerSocket(t.url, token=t.token, ca_file=t.ca_file),
            name=t.name or t.url,
            default_ttl=settings.ttl,
        )
        for t in attach or []
    ]
    return CcxApp(
        engine,
        settings=settings,
        commands=commands,
        remotes=remotes,
        declared=declared,
        **kwargs,  # type: ignore[arg-type]
    )


def run_app(
    settings: Settings,
    commands: list[str],
    *,
    servers: list[ServerTarget] | None = None,
    declared: list[DeclaredSession] | None = None,
    names: list[str] | None = None,
    attach: list[ServerTarget] | None = None,
) -> int:
    """Run the app; raises EngineError (before the screen is taken) if the engine
    process can be neither found nor started.  `names` name the `commands`' sessions,
    in order."""
    from ccx_tui.engine.server.daemon_client import ensure_engine

    ensure_engine(settings.data_dir, args=settings.engine_args())
    app = make_app(
        settings, commands, servers=servers, declared=declared, names=names, attach=attach
    )
    try:
        code = app.run()
    finally:
        for engine in app.engines:
            engine.kill_all_now()  # normally a no-op: aclose() ran on unmount
    if app.detached:
        print(detached_message(app.detached_where))
    return code or 0


def detached_message(where: list[tuple[int, str, str]]) -> str:
    """What is left running, and how to come back to it, printed after a detach:
    the engine process's sessions as before; a ccx-tui server's each with its own
    command (`ccx-tui attach` alone does not show them)."""
    if len(where) == 1 and where[0][1] == "local":
        count, _, command = where[0]
        return f"[detached: {count} session(s) keep running; `{command}` brings them back]"
    parts = [
        f"{count} {'here' if name == 'local' else 'on ' + name} (`{command}`)"
        for count, name, command in where
    ]
    # Names and URLs come from a config file: never let them drive the terminal.
    return escape_controls(f"[detached: session(s) keep running: {', '.join(parts)}]")
