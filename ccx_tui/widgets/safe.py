"""Untrusted text (from a process, a file, a session record, a server, the environment)
made safe to show in a widget: never markup, no control characters."""

from __future__ import annotations

import re

from textual.content import Content

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
