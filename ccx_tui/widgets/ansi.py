"""Pure helpers that turn raw transcript bytes into styled rich `Text` (no Textual)."""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Sequence

from rich.ansi import AnsiDecoder
from rich.style import Style
from rich.text import Text

from ccx_tui.engine.transcripts.transcript import STDOUT, Segment
from ccx_tui.textsafe import Sgr, terminal_tokens

TAB_SIZE = 8
UNKNOWN = -1
"""`omitted` value for a line known to be cut by an unknown number of bytes."""

_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_INTRODUCERS = re.compile(r"[\x1b\x80-\x9f]")
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Control characters that survive ANSI decoding would move the real terminal's cursor;
# show them as same-width symbols instead so span offsets stay valid.
_CONTROL_PICTURES = {c: 0x2400 + c for c in range(0x20) if c != 0x09}
_CONTROL_PICTURES[0x7F] = 0x2421
_CONTROL_PICTURES.update({c: 0xFFFD for c in range(0x80, 0xA0)})


def decode(data: bytes, *, cut: bool = False) -> str:
    """Decode UTF-8, showing invalid bytes as U+FFFD.

    A line cut for display may end inside a multi-byte character; that partial
    character is dropped rather than shown as U+FFFD.
    """
    if not cut:
        return data.decode("utf-8", errors="replace")
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data, final=False)


def final_state(line: str) -> str:
    """What a terminal finally shows for a line rewritten with carriage returns.

    The text after the last ``\\r`` wins (progress bars); trailing ``\\r`` (CRLF)
    is ignored.  Colour codes before the last ``\\r`` are kept, since a terminal's
    colour state carries over them.
    """
    line = line.rstrip("\r")
    cr = line.rfind("\r")
    if cr < 0:
        return line
    carried = "".join(_SGR.findall(line, 0, cr))
    return carried + line[cr + 1 :]


def format_size(size: int) -> str:
    """A byte count for people: ``512 B``, ``12.3 KB``, ``1.0 GB`` (powers of 1000)."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def cut_marker(omitted: int) -> str:
    """The note shown at the end of a line cut for display."""
    if omitted == UNKNOWN:
        return " … [cut]"
    return f" … [+{format_size(omitted)}]"


def line_text(
    data: bytes,
    *,
    omitted: int = 0,
    style: Style | None = None,
    marker_style: Style | None = None,
) -> Text:
    """Render one transcript line (without its newline) as single-line rich `Text`.

    Args:
        data: The line's bytes, possibly only its start.
        omitted: Bytes of the line not in `data` (`UNKNOWN` if cut by an unknown
            amount, 0 if complete); a cut line ends with a dim marker.
        style: Base style under the line's own ANSI colours.
        marker_style: Style of the cut marker.
    """
    text = styled_text(final_state(decode(data, cut=omitted != 0)))
    if "\t" in text.plain:
        text.expand_tabs(TAB_SIZE)
    if omitted:
        text.append(cut_marker(omitted), marker_style or Style(dim=True))
    if style:
        # A span, not `Text.style`: `Text.render` drops the latter on unstyled text.
        text.stylize_before(style)
    return text


def styled_text(line: str) -> Text:
    """One line of output as rich `Text`: its colours and plain-URL hyperlinks kept,
    every other escape sequence dropped (see `textsafe.terminal_tokens`).

    This is the one way output reaches the screen: Textual writes a `Text`'s styles as
    its own SGR and OSC 8 sequences and its text as it is, so a link's URL must be a
    `safe_url` (it goes to the terminal inside ours) and C0/C1 controls left in the text
    (BEL, a stray ESC, U+0085...) are shown as symbols of the same width; tabs stay.
    """
    text = Text(no_wrap=True, end="")
    if _INTRODUCERS.search(line):
        _append_tokens(text, line)
    else:
        text.append(line)  # Rich drops BEL, BS, VT, FF and CR here
    if _CONTROLS.search(text.plain):
        text.plain = text.plain.translate(_CONTROL_PICTURES)
    return text


def _append_tokens(text: Text, line: str) -> None:
    colours = AnsiDecoder()  # Rich's SGR state machine, fed only well-formed SGR
    link: Style | None = None
    for token in terminal_tokens(line):
        if isinstance(token, str):
            style = colours.style + link if link else colours.style
            text.append(token, style or None)
        elif isinstance(token, Sgr):
            colours.decode_line(f"\x1b[{token.params}m")
        else:
            link = Style(link=token.url) if token.url else None


def line_streams(offsets: Sequence[int], segments: Sequence[Segment]) -> list[int]:
    """The stream each line came from, given the lines' start offsets (ascending).

    `segments` are sorted by offset (as `read_segments` returns them); lines before
    the first segment count as stdout.  `LineMux` merges streams at line boundaries,
    so the stream at a line's first byte is the line's stream.
    """
    starts = [seg.offset for seg in segments]
    out: list[int] = []
    for offset in offsets:
        i = bisect_right(starts, offset) - 1
        out.append(segments[i].stream if i >= 0 else STDOUT)
    return out


def line_times(offsets: Sequence[int], segments: Sequence[Segment]) -> list[float | None]:
    """When each line arrived (its first byte's segment time), given the lines' start
    offsets (ascending); None where the sidecar has no time (before the first record,
    or a file without a sidecar)."""
    starts = [seg.offset for seg in segments]
    out: list[float | None] = []
    for offset in offsets:
        i = bisect_right(starts, offset) - 1
        when = segments[i].time if i >= 0 else 0.0
        out.append(when or None)
    return out
