"""Untrusted text (from a process, a file, a session record, a server, the environment)
made safe to show in a widget: never markup, no control characters."""

from __future__ import annotations

import re

from textual.app import App
from textual.content import Content
from textual.notifications import SeverityLevel

from ccx_tui.textsafe import escape_controls

_SEPARATORS = re.compile("[\u2028\u2029]")  # Unicode line breaks: no C0/C1 control


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` with every control character shown as a visible escape, as the CLI shows
    it (ESC as `\\x1b`, a newline as `\\n`, U+2028 as `\\u2028`); with `multiline`,
    newlines are kept."""
    lines = text.split("\n") if multiline else [text]
    return "\n".join(
        _SEPARATORS.sub(lambda m: f"\\u{ord(m.group()):04x}", escape_controls(line))
        for line in lines
    )


def plain(text: str, *, multiline: bool = False) -> Content:
    """`text` as literal content: not parsed as markup, control characters visible."""
    return Content(printable(text, multiline=multiline))


TOAST_CHARS = 400
"""A toast longer than this (a server's error page, say) is cut."""


class LiteralToastsApp(App[int]):
    """An app whose toasts are always literal: never markup (`markup` is ignored),
    control characters shown as visible escapes, at most TOAST_CHARS long.  Every toast
    may carry a command, a path, a session's reason or a server's words, and a `[/]`
    parsed as markup ended the app, killing every session.  Widgets' `notify` comes
    here too."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Safe from any thread, as Textual's own."""
        if len(message) > TOAST_CHARS:
            message = message[: TOAST_CHARS - 1] + "…"
        super().notify(
            printable(message, multiline=True),
            title=printable(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )
