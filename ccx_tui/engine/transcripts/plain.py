"""Transcript text as a terminal finally shows it: no escape sequences, `\\r` resolved."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

# Escape sequences and control strings as `ccx_tui.textsafe.terminal_tokens` parses them
# (ECMA-48, as in the VT500 parser), in one pattern so that a C-speed `sub` drops them from
# many lines at once (ESC factored out: twice as fast).  The view parses a line at a time,
# so a control string's content stops at a newline here.
_CSI = r"[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # after ESC [ or U+009B
# OSC, DCS, SOS, PM, APC, after their opener: to BEL, ST (ESC \ or U+009C), CAN or SUB;
# ESC aborts one and starts a sequence of its own (so it is not consumed).
_STRING = r"[^\x07\x9c\x1b\x18\x1a\n]*(?:\x07|\x1b\\|\x9c|[\x18\x1a])?"
_SEQUENCE = re.compile(
    rf"\x1b(?:\[{_CSI}|[\]PX^_]{_STRING}|[\x20-\x2f]+[\x30-\x7e]?|[\x30-\x7e])"
    rf"|\x9b{_CSI}|[\x90\x98\x9d\x9e\x9f]{_STRING}"
    r"|\x9c"  # a lone 8-bit ST
)
# Sequences cut short by the end of a piece, which the next piece may go on with.
_OPEN_CSI = re.compile(r"(?:\x1b\[|\x9b)[\x30-\x3f]*([\x20-\x2f]*)")
_OPEN_STRING = re.compile(r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x9c\x1b\x18\x1a\n]*")
_OPEN_NF = re.compile(r"\x1b[\x20-\x2f]+")
# Any character that makes a line need more than copying: C0 but tab and newline, DEL,
# C1 (ESC and the 8-bit introducers among them).
_SPECIAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What is left to remove once sequences are gone: controls but tab, newline, backspace.
_CONTROLS = re.compile(r"[\x00-\x07\x0b-\x1f\x7f-\x9f]")
_STRING_END = re.compile(r"[\x07\x9c\x1b\x18\x1a]")
_BACKSPACE_RUNS = re.compile(r"\x08+|[^\x08]+")


def plain_text(text: str) -> str:
    """Decoded output (lines separated by ``\\n``, any ending in ``\\r\\n``) as plain text.

    Each line becomes what a terminal finally shows of it: the text after its last
    ``\\r`` (a trailing ``\\r``, as in CRLF, does not count), every escape sequence and
    control string removed (colours, titles, cursor moves...), backspaces applied (a
    character after one overwrites the one before: ``_\\bX`` is ``X``), and every other
    control character but tab removed.  Line ends come out as ``\\n``.  The result is
    what the transcript view shows of the line, without its colours.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            text = _each_line_with(text, "\r", _final_state)
    if _SPECIAL.search(text):
        text = _CONTROLS.sub("", _SEQUENCE.sub("", text))
        if "\b" in text:
            text = _each_line_with(text, "\b", _overstrike)
    return text


def plain_bytes(data: bytes) -> bytes:
    """`plain_text` of `data` decoded as UTF-8 (an invalid byte becomes U+FFFD).

    `data` must hold whole lines: a multi-byte character cut at its end is invalid.
    """
    return plain_text(data.decode("utf-8", errors="replace")).encode("utf-8")


class PlainStream:
    """One line too long to hold, made plain piece by piece, in bounded memory.

    Feed it the bytes after the line's last ``\\r`` (but trailing ones) up to its end,
    without its trailing ``\\r`` or newline: the caller resolves carriage returns by
    where it starts.  A multi-byte character, an escape sequence or a control string
    may span pieces (a control string's content is dropped as it comes, not kept).
    Backspaces apply within a piece: one at a piece's start cannot reach back into
    text already returned and is dropped.  Otherwise the result is `plain_text`'s.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._carry = ""  # the start of a sequence cut by the end of the last piece
        self._in_string = False  # inside a control string cut by the end of the last piece

    def feed(self, data: bytes, *, final: bool = False) -> str:
        """The plain text of `data`, the next piece of the line (`final`: the last)."""
        text = self._carry + self._decoder.decode(data, final)
        self._carry = ""
        if self._in_string:
            end = _STRING_END.search(text)
            if end is None:
                return ""
            self._in_string = False
            # ESC ends the string and starts a sequence (ESC \ then is one to drop).
            text = text[end.start() if end.group() == "\x1b" else end.end() :]
        kept: list[str] = []
        pos = 0
        last: re.Match[str] | None = None
        for last in _SEQUENCE.finditer(text):
            kept.append(text[pos : last.start()])
            pos = last.end()
        tail = text[pos:]
        if not final:
            if last is not None and last.end() == len(text):
                self._hold(last)
            elif tail.endswith("\x1b"):
                tail, self._carry = tail[:-1], "\x1b"
        kept.append(tail)
        out = _CONTROLS.sub("", "".join(kept))
        return _overstrike(out) if "\b" in out else out

    def _hold(self, last: re.Match[str]) -> None:
        """The piece ended in sequence `last`: if it may go on, keep what the next
        piece needs to go on with it.

        Only the kind of sequence and where in it the piece ended matter (its text is
        dropped all the same), so what is kept is a few characters, however long it is.
        """
        sequence = last.group()
        if csi := _OPEN_CSI.fullmatch(sequence):
            self._carry = "\x1b[ " if csi.group(1) else "\x1b["
        elif _OPEN_STRING.fullmatch(sequence):
            self._in_string = True
        elif _OPEN_NF.fullmatch(sequence):
            self._carry = "\x1b "


def _final_state(line: str) -> str:
    line = line.rstrip("\r")
    return line[line.rfind("\r") + 1 :]


def _overstrike(line: str) -> str:
    """Backspaces applied as a terminal does: the cursor goes back one column (never
    past the line's start) and what follows overwrites; one column per character."""
    cells: list[str] = []
    column = 0
    for run in _BACKSPACE_RUNS.finditer(line):
        chars = run.group()
        if chars[0] == "\b":
            column = max(0, column - len(chars))
        else:
            cells[column : column + len(chars)] = chars
            column += len(chars)
    return "".join(cells)


def _each_line_with(text: str, char: str, change: Callable[[str], str]) -> str:
    """`text` with `change` applied to each line that holds `char` (others untouched)."""
    parts: list[str] = []
    pos = 0
    at = text.find(char)
    while at >= 0:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        if end < 0:
            end = len(text)
        parts.append(text[pos:start])
        parts.append(change(text[start:end]))
        pos = end
        at = text.find(char, end)
    parts.append(text[pos:])
    return "".join(parts)
