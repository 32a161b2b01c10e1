"""The session switcher: the command palette over the open sessions, fuzzy by name
and command (`o`, or "Switch to session" in ctrl+p)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from ccx_tui.widgets.safe import printable

MATCH_STYLE = "bold underline"


@dataclass(frozen=True, slots=True)
class Entry:
    """One session as the switcher lists it: all of it text from users or programs."""

    session_id: str
    title: str
    command: str
    state: str


class SwitchHost(Protocol):
    """What the app gives the switcher: its sessions in tab order, and a way to show
    one."""

    def switcher_entries(self) -> list[Entry]: ...

    def switch_to(self, session_id: str) -> None: ...


class SessionsProvider(Provider):
    """Hits for the open sessions: the title (name) first, the command and state as
    help.  Titles and commands are data: shown literally, never as markup."""

    def _host(self) -> SwitchHost | None:
        app = self.app
        return app if hasattr(app, "switcher_entries") else None  # type: ignore[return-value]

    def _entries(self) -> Iterable[tuple[Entry, Callable[[], None]]]:
        host = self._host()
        if host is None:
            return []
        return [(e, partial(host.switch_to, e.session_id)) for e in host.switcher_entries()]

    async def discover(self) -> Hits:
        for entry, switch in self._entries():
            yield DiscoveryHit(
                Content(printable(entry.title)), switch, text=entry.title, help=_help(entry)
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry, switch in self._entries():
            shown = printable(f"{entry.title}  {entry.command}")
            score = matcher.match(shown)
            if score > 0:
                yield Hit(score, _highlight(matcher, query, shown), switch, text=entry.title)


def _help(entry: Entry) -> str:
    # Help is read as markup by the palette: escaped, on one line.
    return escape(printable(f"{entry.state} · {entry.command}"))


def _highlight(matcher: object, query: str, text: str) -> Content:
    """`text` with the query's matched characters styled (Textual's own highlight
    reads the text as markup: not for a user's command)."""
    content = Content(text)
    fuzzy = getattr(matcher, "fuzzy_search", None)
    if fuzzy is None:
        return content
    _score, offsets = fuzzy.match(query, text)
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(MATCH_STYLE, offset, offset + 1)
    return content
