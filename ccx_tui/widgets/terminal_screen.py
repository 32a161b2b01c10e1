"""The live screen of a full-screen program (htop, vim, less) through a pyte emulator."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

import pyte
from pyte.screens import Char
from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

MAX_SEQUENCE = 256
"""Characters one escape sequence may take before it is ignored up to its final byte
(real ones take a few dozen; pyte would keep the digits of `ESC [ 1111...` forever)."""
MAX_CELL = 8
"""Code points kept in one cell: a character and its combining marks (no Zalgo piles)."""
MAX_SAVEPOINTS = 8
"""Saved cursors kept (pyte stacks every `ESC 7`; xterm keeps one)."""
MAX_STYLES = 1024
"""Styles cached; truecolour output can ask for millions of distinct ones."""

_ANSI = {"black": 0, "red": 1, "green": 2, "brown": 3, "blue": 4, "magenta": 5}
_ANSI |= {"cyan": 6, "white": 7}
_COLOURS: dict[str, Color] = {name: Color.from_ansi(n) for name, n in _ANSI.items()}
_COLOURS |= {f"bright{name}": Color.from_ansi(n + 8) for name, n in _ANSI.items()}
_COLOURS["bfightmagenta"] = Color.from_ansi(13)  # sic: pyte's name for SGR 105
_HEX = re.compile(r"[0-9a-fA-F]{6}")
# What reaches the real terminal must be text: C0, DEL, C1 (and lone surrogates, which
# no encoding can print) become spaces.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Control strings (OSC, DCS, SOS, PM, APC), 7-bit and 8-bit: pyte draws the payload of
# all but OSC as text and keeps an OSC's whole payload in memory, so they are dropped
# before it sees them.  A trailing ESC waits for the next chunk to tell.
_STRING_START = re.compile(r"\x1b(?:[\]PX^_]|$)|[\x90\x98\x9d\x9e\x9f]")
# A string ends at BEL, ST (ESC \ or U+009C); CAN and SUB abort it, and so does an ESC
# that starts another sequence.
_STRING_END = re.compile(r"[\x07\x9c\x18\x1a]|\x1b\\?")
# A control sequence ends at its final byte; CAN and SUB abort it, and so does an ESC
# (which starts the next one).
_SEQUENCE_END = re.compile(r"[\x40-\x7e\x18\x1a]|(\x1b)")

Attrs = tuple[str, str, bool, bool, bool, bool, bool]
"""A cell's look: fg, bg, bold, italics, underscore, strikethrough, reverse."""


def _colour(name: str) -> Color | None:
    """pyte's colour (a name, "default" or 6 hex digits) as a rich colour; None: default
    (and anything else pyte may produce, e.g. 7 digits from `38;2;300;0;0`)."""
    colour = _COLOURS.get(name)
    if colour is None and _HEX.fullmatch(name):
        colour = Color.parse(f"#{name}")
    return colour


def _cell_style(base: Style, attrs: Attrs) -> Style:
    fg, bg, bold, italics, underscore, strike, reverse = attrs
    own = Style(
        color=_colour(fg),
        bgcolor=_colour(bg),
        bold=bold or None,
        italic=italics or None,
        underline=underscore or None,
        strike=strike or None,
        reverse=reverse or None,
    )
    return base + own


class _Screen(pyte.Screen):
    """A pyte screen whose answers to queries go to `reply`, and whose memory stays
    bounded whatever a program prints."""

    def __init__(self, columns: int, lines: int, reply: Callable[[str], None]) -> None:
        self._reply = reply
        super().__init__(columns, lines)

    def write_process_input(self, data: str) -> None:
        self._reply(data)

    def save_cursor(self) -> None:
        super().save_cursor()
        del self.savepoints[:-MAX_SAVEPOINTS]

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """pyte's resize, but as xterm does it: lines go from the top only as far as
        needed to keep the cursor's line (pyte drops them whatever they hold and
        leaves the cursor past a shrunk edge, tab stops past the right one)."""
        lines, columns = lines or self.lines, columns or self.columns
        buffer, cursor = self.buffer, self.cursor
        drop = max(0, cursor.y + 1 - lines)
        kept = {y - drop: line for y, line in buffer.items() if drop <= y < drop + lines}
        buffer.clear()
        buffer.update(kept)
        cursor.y -= drop
        if columns < self.columns:
            for line in buffer.values():
                for x in [x for x in line if x >= columns]:
                    del line[x]
        self.tabstops = {t for t in self.tabstops if t < columns}
        self.tabstops.update(range((self.columns + 7) // 8 * 8, columns, 8))
        self.lines, self.columns = lines, columns
        self.set_margins()
        self.ensure_hbounds()
        self.ensure_vbounds()
        self.dirty.update(range(lines))

    def draw(self, data: str) -> None:
        if data.isascii():
            super().draw(data)
            return
        # pyte appends each combining mark to the previous cell (renormalising it): cap
        # a run of marks here, and a cell grown across calls below.
        super().draw(_cap_marks(data))
        cursor = self.cursor
        if cursor.x:
            self._trim(cursor.y, cursor.x - 1)
        elif cursor.y:
            self._trim(cursor.y - 1, self.columns - 1)

    def _trim(self, y: int, x: int) -> None:
        line = self.buffer.get(y)
        if line is not None and x in line and len(line[x].data) > MAX_CELL:
            line[x] = line[x]._replace(data=line[x].data[:MAX_CELL])


def _cap_marks(data: str) -> str:
    kept: list[str] = []
    run = 0
    for char in data:
        run = run + 1 if unicodedata.combining(char) else 0
        if run < MAX_CELL:
            kept.append(char)
    return "".join(kept)


class _Stream(pyte.ByteStream):
    """pyte's byte stream, made safe for untrusted output: control strings dropped, an
    overlong sequence ignored, and a sequence pyte chokes on skipped (pyte raises on
    `ESC [ 1;2;3;4 A` or `ESC [ ² m`) instead of losing the rest of the chunk."""

    def __init__(self, screen: _Screen) -> None:
        super().__init__(screen)
        self._in_string = False
        self._held = ""  # a trailing ESC, until the next chunk says what it starts
        self._in_sequence = 0  # characters of the current escape sequence so far
        self._skipping = False  # an overlong sequence is being dropped

    def feed(self, data: bytes) -> None:  # type: ignore[override]  # pyte's own signature
        text = self.utf8_decoder.decode(data) if self.use_utf8 else data.decode("latin-1")
        self._feed_text(self._strip_strings(self._held + text))

    def _strip_strings(self, text: str) -> str:
        self._held = ""
        kept: list[str] = []
        pos, end = 0, len(text)
        while pos < end:
            if not self._in_string:
                start = _STRING_START.search(text, pos)
                if start is None:
                    kept.append(text[pos:])
                    break
                kept.append(text[pos : start.start()])
                if start.group() == "\x1b":
                    self._held = "\x1b"
                    break
                self._in_string, pos = True, start.end()
            else:
                stop = _STRING_END.search(text, pos)
                if stop is None:
                    break
                if stop.group() != "\x1b":
                    self._in_string, pos = False, stop.end()
                elif stop.end() == end:
                    self._held = "\x1b"
                    break
                else:  # ESC starting another sequence: it aborts the string
                    self._in_string, pos = False, stop.start()
        return "".join(kept)

    def _feed_text(self, data: str) -> None:
        # pyte's `Stream.feed`, with the guards above.
        assert self.listener is not None
        draw = self.listener.draw
        match_text = self._text_pattern.match
        taking_text = self._taking_plain_text
        offset, length = 0, len(data)
        while offset < length:
            if self._skipping:
                stop = _SEQUENCE_END.search(data, offset)
                self._skipping = stop is None
                if stop is None:
                    break
                offset = stop.start() if stop.group(1) else stop.end()
                continue
            if taking_text:
                match = match_text(data, offset)
                if match:
                    start, offset = match.span()
                    draw(data[start:offset])
                    continue
                taking_text = False
            try:
                taking_text = self._send_to_parser(data[offset])
            except Exception:  # a handler refused the parameters; the parser was reset
                taking_text = True
            offset += 1
            if taking_text:
                self._in_sequence = 0
            else:
                self._in_sequence += 1
                if self._in_sequence > MAX_SEQUENCE:
                    self._initialize_parser()
                    taking_text, self._in_sequence, self._skipping = True, 0, True
        self._taking_plain_text = taking_text


class TerminalScreen(Widget, can_focus=True):
    """A terminal's screen: bytes a program writes (to a pseudo-terminal) go to `feed`,
    and the widget shows what a terminal would, at `cols` x `rows`, drawn through the
    Line API.  Only one screen is kept (no scrollback), so memory stays bounded.

    Nothing a program prints reaches the real terminal but text and the colours and
    attributes of its cells.  Queries the program makes of its terminal (cursor
    position, device attributes) are answered with `Reply` messages for the app to
    type into the program.
    """

    DEFAULT_CSS = """
    TerminalScreen {
        height: 1fr;
        width: 1fr;
        background: $surface;
        color: $foreground;
    }
    """

    show_cursor: reactive[bool] = reactive(True)
    """Draw the cursor even when the widget has no focus (when the program shows it)."""

    class Reply(Message):
        """The terminal's answer to a program's query, to be written to its input."""

        def __init__(self, terminal_screen: TerminalScreen, data: str) -> None:
            self.terminal_screen = terminal_screen
            self.data = data
            """What a terminal would send, e.g. `ESC [ 5 ; 10 R`."""
            super().__init__()

        @property
        def control(self) -> TerminalScreen:
            return self.terminal_screen

    def __init__(
        self,
        *,
        cols: int = 80,
        rows: int = 24,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """A blank screen of `cols` x `rows` cells (both at least 1)."""
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        _check_size(cols, rows)
        self._screen = self._new_screen(cols, rows)
        self._stream = _Stream(self._screen)
        self._cursor_at = self._cursor_state()
        self._base = Style()
        self._styles: dict[Attrs, Style] = {}
        self.replies = True
        """Post `Reply` for the queries in what is fed (off while replaying old output:
        its queries were answered long ago)."""

    def watch_show_cursor(self) -> None:
        self._refresh_lines([self._screen.cursor.y])

    def on_focus(self) -> None:
        self._refresh_lines([self._screen.cursor.y])

    def on_blur(self) -> None:
        self._refresh_lines([self._screen.cursor.y])

    @property
    def cols(self) -> int:
        """Columns of the emulated screen."""
        return self._screen.columns

    @property
    def rows(self) -> int:
        """Rows (lines) of the emulated screen."""
        return self._screen.lines

    @property
    def pyte_screen(self) -> pyte.Screen:
        """The emulated screen (read it, don't change it)."""
        return self._screen

    def feed(self, data: bytes) -> None:
        """Process output of the program; the changed lines are redrawn at the next
        frame (call it as often as output comes: refreshes coalesce)."""
        self._stream.feed(data)
        screen = self._screen
        dirty = screen.dirty
        cursor = self._cursor_state()
        if cursor != self._cursor_at:  # the cursor moved without changing the text
            dirty.update((self._cursor_at[1], cursor[1]))
            self._cursor_at = cursor
        self._refresh_lines(dirty)
        dirty.clear()

    def reset(self) -> None:
        """Start over with a blank screen of the same size (e.g. for a new program)."""
        self._screen = self._new_screen(self.cols, self.rows)
        self._stream = _Stream(self._screen)
        self._cursor_at = self._cursor_state()
        self.refresh()

    def resize(self, cols: int, rows: int) -> None:
        """Give the screen `cols` x `rows` cells (both at least 1), as a terminal does
        when its window changes: text is kept, cut at the right, lines dropped from
        the top only as far as needed to keep the cursor's line.  (The program learns
        of the new size from its pseudo-terminal, not from here.)"""
        _check_size(cols, rows)
        self._screen.resize(lines=rows, columns=cols)
        self._screen.dirty.clear()
        self._cursor_at = self._cursor_state()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        base = self.rich_style
        if base != self._base:  # a new theme: cached styles hold the old background
            self._base = base
            self._styles.clear()
        width = self.size.width
        if y >= self._screen.lines:
            return Strip.blank(width, base)
        return self._render_row(y).adjust_cell_length(width, base)

    def _render_row(self, y: int) -> Strip:
        """Row `y` of the screen: exactly `cols` cells, the cursor in reverse video."""
        screen = self._screen
        cols = screen.columns
        cursor = screen.cursor
        cursor_x = -1
        if cursor.y == y and not cursor.hidden and (self.show_cursor or self.has_focus):
            cursor_x = min(cursor.x, cols - 1)  # at `cols` when a wrap is pending
        # `get`: reading the buffer (a defaultdict) must not add lines to it.
        line = screen.buffer.get(y)
        blank = screen.default_char
        segments: list[Segment] = []
        run: list[str] = []
        run_attrs: Attrs | None = None
        x = 0
        while x < cols:
            char: Char = blank if line is None else line[x]
            text = char.data
            width = 1
            if len(text) != 1 or not " " <= text <= "~":  # not one printable ASCII
                text, width = _cell_text(text, room=cols - x)
            attrs: Attrs = char[1:8]  # fg..reverse
            if x <= cursor_x < x + width:
                attrs = (*attrs[:6], not attrs[6])
            if attrs != run_attrs:
                if run_attrs is not None:
                    segments.append(Segment("".join(run), self._style(run_attrs)))
                run, run_attrs = [], attrs
            run.append(text)
            x += width
        if run_attrs is not None:
            segments.append(Segment("".join(run), self._style(run_attrs)))
        return Strip(segments, cols)

    def _style(self, attrs: Attrs) -> Style:
        style = self._styles.get(attrs)
        if style is None:
            if len(self._styles) >= MAX_STYLES:
                self._styles.clear()
            style = self._styles[attrs] = _cell_style(self._base, attrs)
        return style

    def _refresh_lines(self, lines: Iterable[int]) -> None:
        rows = [y for y in lines if 0 <= y < self._screen.lines]
        if rows:
            top = min(rows)
            self.refresh(Region(0, top, self.size.width, max(rows) - top + 1))

    def _cursor_state(self) -> tuple[int, int, bool]:
        cursor = self._screen.cursor
        return (cursor.x, cursor.y, cursor.hidden)

    def _new_screen(self, cols: int, rows: int) -> _Screen:
        return _Screen(cols, rows, self._post_reply)

    def _post_reply(self, data: str) -> None:
        if self.replies:
            self.post_message(self.Reply(self, data))


def _cell_text(text: str, room: int) -> tuple[str, int]:
    """What to print for a cell holding `text` (never a control character), and the
    cells it takes: 2 for a wide character with `room` for it, else 1 (the cell after
    a wide character is skipped; an empty one, pyte's stub after a wide character
    overwritten, is a space)."""
    text = _UNPRINTABLE.sub(" ", text)
    width = cell_len(text)
    if width == 1 or (width == 2 and room >= 2):
        return text, width
    return " ", 1


def _check_size(cols: int, rows: int) -> None:
    if cols < 1 or rows < 1:
        raise ValueError(f"a terminal screen needs at least 1x1 cells, not {cols}x{rows}")
