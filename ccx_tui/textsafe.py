"""Untrusted text made safe to print on a terminal: control characters escaped."""

from __future__ import annotations

import re

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def escape_controls(text: str) -> str:
    """`text` with every C0/C1 control and DEL shown as a visible escape (ESC -> `\\x1b`,
    newline -> `\\n`); other characters, Unicode included, unchanged."""
    return _CONTROLS.sub(_escape, text)
