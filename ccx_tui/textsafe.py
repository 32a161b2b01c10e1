"""Untrusted text made safe to print on a terminal: control characters escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code > 0xFF:  # any other lone surrogate: no encoding can print it
        return f"\\u{code:04x}"
    return _NAMED.get(char) or f"\\x{code:02x}"


def escape_controls(text: str) -> str:
    """`text` with every C0/C1 control and DEL shown as a visible escape (ESC -> `\\x1b`,
    newline -> `\\n`), and every lone surrogate too (a byte that was not UTF-8, kept by
    surrogateescape, as `\\xff`); other characters, Unicode included, unchanged."""
    return _CONTROLS.sub(_escape, text)


# -- terminal output -------------------------------------------------------------------
#
# What a program writes is parsed the way a terminal would (ECMA-48, as in the VT500
# parser xterm and tmux follow) so that nothing but text, colours and plain hyperlinks
# comes out: every other sequence is recognised whole and dropped.  ESC and the 8-bit
# introducers (U+009B CSI, U+009D OSC, ...) are the only ways into a sequence; anything
# left in a text token is printable but for C0/C1 controls the renderer must show as
# symbols (it never passes them on).

MAX_URL = 2048
"""Longest hyperlink target kept; a longer one is dropped (its text stays)."""

_INTRODUCER = re.compile(r"[\x1b\x80-\x9f]")
_CSI = re.compile(r"([\x30-\x3f]*)([\x20-\x2f]*)([\x40-\x7e])?")
_SGR_PARAMS = re.compile(r"[0-9;:]*")
_NF = re.compile(r"[\x20-\x2f]*([\x30-\x7e])?")
# A control string (OSC, DCS, SOS, PM, APC) ends at BEL, ST (ESC \ or U+009C); ESC
# (starting another sequence), CAN and SUB abort it.
_STRING_END = re.compile(r"\x07|\x1b\\|\x9c|[\x1b\x18\x1a]")
_STRINGS_7BIT = "]PX^_"  # after ESC: OSC, DCS, SOS, PM, APC
_STRINGS_8BIT = "\x9d\x90\x98\x9e\x9f"  # the same, 8-bit
_URL = re.compile(r"(?:https?|ftp|file|mailto):[\x21-\x7e]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Sgr:
    """Select Graphic Rendition (colours, bold...): the parameters of `CSI ... m`."""

    params: str


@dataclass(frozen=True, slots=True)
class Link:
    """OSC 8: the following text links to `url` (None: to nothing)."""

    url: str | None


Token = str | Sgr | Link
"""Text (possibly with C0/C1 controls to show as symbols), colours, or a link change."""


def safe_url(url: str) -> str | None:
    """`url` if it is a plain URL a terminal may be given as a hyperlink target (scheme
    http, https, ftp, file or mailto; printable ASCII only; at most MAX_URL long)."""
    if len(url) <= MAX_URL and _URL.fullmatch(url):
        return url
    return None


def terminal_tokens(text: str) -> Iterator[Token]:
    """Split `text` (one line of decoded output) into text, SGR and OSC 8 tokens,
    dropping every other escape sequence and control string, whole.

    An OSC 8 link whose target is not a `safe_url` becomes `Link(None)` (its text stays,
    unlinked).  A sequence cut off by the end of `text` is dropped to the end.  An ESC
    that starts no sequence (at the end, or before a control) stays in the text.
    """
    pos, end = 0, len(text)
    while pos < end:
        found = _INTRODUCER.search(text, pos)
        if found is None:
            yield text[pos:]
            return
        at = found.start()
        if at > pos:
            yield text[pos:at]
        char = text[at]
        following = text[at + 1] if at + 1 < end else ""
        if char == "\x9b" or (char == "\x1b" and following == "["):
            pos, token = _csi(text, at + (1 if char == "\x9b" else 2))
        elif char in _STRINGS_8BIT or (char == "\x1b" and following and following in _STRINGS_7BIT):
            kind = char if char != "\x1b" else following
            pos, token = _control_string(text, at + (1 if char != "\x1b" else 2), kind)
        elif char == "\x1b" and "\x20" <= following <= "\x7e":
            # nF (ESC SP..'/' ... final) or a two-character escape (ESC 7, ESC c, ...)
            nf = _NF.match(text, at + 1)
            assert nf is not None  # it starts with an intermediate or a final
            pos, token = nf.end(), None
        elif char == "\x9c":  # a lone 8-bit ST
            pos, token = at + 1, None
        else:  # ESC before a control or at the end; any other C1: text, to be shown
            pos, token = at + 1, char
        if token is not None:
            yield token


def _csi(text: str, start: int) -> tuple[int, Token | None]:
    match = _CSI.match(text, start)
    assert match is not None  # every part is optional
    params, intermediates, final = match.groups()
    # Interrupted by a control, ESC or non-ASCII: dropped up to there; what interrupted
    # it is parsed afresh (a terminal executes the control, ESC starts over).
    if final == "m" and not intermediates and _SGR_PARAMS.fullmatch(params):
        return match.end(), Sgr(params)
    return match.end(), None


def _control_string(text: str, start: int, kind: str) -> tuple[int, Token | None]:
    match = _STRING_END.search(text, start)
    if match is None:
        return len(text), None  # unterminated: nothing of it is shown
    terminator = match.group()
    if terminator in ("\x1b", "\x18", "\x1a"):  # aborted
        return match.start() + (terminator != "\x1b"), None
    payload = text[start : match.start()]
    if kind in "]\x9d" and payload.startswith("8;"):
        _params, semicolon, url = payload[2:].partition(";")
        if semicolon:
            return match.end(), Link(safe_url(url) if url else None)
    return match.end(), None
