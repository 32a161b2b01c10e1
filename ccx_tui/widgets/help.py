"""The `?` help screen: every key, grouped."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Sessions",
        [
            ("c", "create a session (command, directory, TTL, environment)"),
            ("x", "kill: SIGTERM, then SIGKILL after the grace period"),
            ("X", "kill at once (SIGKILL)"),
            ("r", "restart (kill if running, run the command again)"),
            ("p", "pause / resume (SIGSTOP / SIGCONT)"),
            ("w", "close the tab (asks first if still running)"),
            ("h", "history: open a past session"),
            ("R", "rename the session (empty: named after its command)"),
            ("ctrl+r", "restart every session"),
            ("ctrl+x", "stop every session (asks first; dependents before dependencies)"),
        ],
    ),
    (
        "Typing into a session (terminal sessions)",
        [
            ("i", "input mode: every key, paste and ctrl+c goes to the program"),
            ("ctrl+]", "leave input mode (the one key it keeps)"),
            (
                "",
                "Sessions run on a terminal (unless started with --no-tty, or with "
                "Terminal unchecked): colours, prompts and full-screen programs work; "
                "stdout and stderr share it, so stderr is not tinted there.",
            ),
        ],
    ),
    (
        "Tabs",
        [
            ("] / [", "next / previous tab"),
            ("1 … 9", "jump to tab N"),
            ("o", "switch to a session by name or command (fuzzy)"),
        ],
    ),
    (
        "Output",
        [
            ("↑ ↓  j k", "scroll a line"),
            ("PgUp PgDn", "scroll a page"),
            ("space b", "a page down / up, as in less (ctrl+f ctrl+b too)"),
            ("ctrl+d ctrl+u", "half a page down / up"),
            ("g / G", "top / bottom"),
            (":", "go to a line number"),
            ("← →", "scroll long lines sideways, half a screen at a time"),
            ("0 / $", "to the start of the lines / the end of the longest line shown"),
            ("f  End", "follow new output again"),
            ("t", "timestamps: when each line arrived"),
            ("W", "wrap long lines onto more rows (again: one row, scroll sideways)"),
            ("── run 2 …", "a restarted session: where each run begins and how the last ended"),
        ],
    ),
    (
        "Search, copy, save",
        [
            ("/", "search the whole transcript (regex, smart case)"),
            ("  Enter / Esc", "go to the first match / cancel the search"),
            ("  ctrl+t ctrl+r", "case: smart, exact, ignored / regex or plain text"),
            ("  ctrl+f  &", "filter: only the matching lines, with their numbers"),
            ("n / N", "next / previous match (wraps around)"),
            ("Esc", "clear the search"),
            ("click", "put the cursor on a line (drag selects text)"),
            ("y", "copy the selection, else the cursor's line (OSC 52)"),
            ("s", "save the transcript (or the filtered lines): plain text or exact bytes"),
            ("e", "open it in $PAGER or $EDITOR at the cursor's line (less: colours)"),
        ],
    ),
    (
        "States (tabs and sidebar)",
        [
            ("▶ ‖ ◷", "running, paused, queued (or waiting for what it depends on)"),
            ("✔ ✘", "exited 0 / exited non-zero"),
            ("■ ⊘ ⚠", "killed, expired (TTL), failed to start"),
            ("↯ ⇣ ○", "interrupted (ccx-tui died), lost (server gone), not started yet"),
            ("↻N", "after N automatic restarts in a row"),
        ],
    ),
    (
        "App",
        [
            ("?", "this help"),
            ("S", "show / hide the sidebar (hidden by itself under 100 columns)"),
            ("z", "zoom: the output takes the whole screen (again: back)"),
            ("ctrl+p", "command palette"),
            ("d", "detach: sessions keep running (ccx-tui attach brings them back)"),
            ("q  ctrl+q", "quit: while sessions run, asks: kill them, detach, or cancel"),
        ],
    ),
]


class HelpScreen(ModalScreen[None]):
    """Lists the keys; any of Escape, q or ? closes it."""

    AUTO_FOCUS = "*"  # the app turns auto-focus off for its main screen only

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        #help {
            width: 96;
            max-width: 95%;
            height: auto;
            max-height: 90%;
            border: thick $primary 60%;
            background: $surface;
            padding: 1 2;
        }
    }
    """

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for i, (group, keys) in enumerate(KEYS):
            if i:
                table.add_row("", "")
            table.add_row(f"[b u]{group}[/]", "")
            for key, text in keys:
                table.add_row(key, text)
        with VerticalScroll(id="help"):
            yield Static("[b]ccx-tui keys[/b]  [dim](Escape or ? closes)[/dim]\n")
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
