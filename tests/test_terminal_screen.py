"""TerminalScreen: a program's live screen through pyte, rendered safely and bounded."""

from __future__ import annotations

from typing import Any

import pytest
from rich.cells import cell_len
from rich.color import Color
from rich.style import Style
from textual import on
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from ccx_tui.widgets.terminal_screen import (
    MAX_CELL,
    MAX_SAVEPOINTS,
    MAX_SEQUENCE,
    TerminalScreen,
)
from tests.helpers import until

COLS, ROWS = 20, 6
CURSES = b"\x1b[?1049h\x1b[2J\x1b[H\x1b[1;31mRED\x1b[0m\x1b[5;10Hhere"
"""What a curses program writes: alternate screen, clear, home, bold red, a move."""
UNPRINTABLE = {*range(0x20), *range(0x7F, 0xA0)}


class TermApp(App[None]):
    """Mounts just the widget; records the Reply messages it posts."""

    def __init__(self, cols: int = COLS, rows: int = ROWS, **kwargs: Any) -> None:
        super().__init__()
        self.size_ = (cols, rows)
        self.kwargs = kwargs
        self.replies: list[TerminalScreen.Reply] = []

    def compose(self) -> ComposeResult:
        cols, rows = self.size_
        yield TerminalScreen(cols=cols, rows=rows, **self.kwargs)

    @on(TerminalScreen.Reply)
    def _replied(self, message: TerminalScreen.Reply) -> None:
        self.replies.append(message)


def term(app: App[None]) -> TerminalScreen:
    return app.query_one(TerminalScreen)


def text(widget: TerminalScreen, y: int) -> str:
    return "".join(segment.text for segment in widget.render_line(y))


def cells(widget: TerminalScreen, y: int) -> list[tuple[str, Style]]:
    """Row `y` as rendered, one (text, style) per cell ("" after a wide character)."""
    out: list[tuple[str, Style]] = []
    for segment in widget.render_line(y):
        assert segment.style is not None
        for char in segment.text:
            out.append((char, segment.style))
            if cell_len(char) == 2:
                out.append(("", segment.style))
    return out


def style_at(widget: TerminalScreen, y: int, x: int) -> Style:
    return cells(widget, y)[x][1]


async def test_curses_screen() -> None:
    """A curses-like screen: "RED" bold red at the top left, "here" at row 4 col 9,
    every row exactly as wide as the widget."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)) as pilot:
        widget = term(app)
        widget.feed(CURSES)
        await pilot.pause()
        assert text(widget, 0).startswith("RED ")
        red = style_at(widget, 0, 0)
        assert red.color == Color.from_ansi(1) and red.bold
        assert not style_at(widget, 0, 3).bold
        assert text(widget, 4)[9:13] == "here"
        assert all(widget.render_line(y).cell_length == COLS for y in range(ROWS))
        assert widget.pyte_screen.display[4].rstrip() == " " * 9 + "here"


@pytest.mark.parametrize(
    ("sgr", "attr", "colour"),
    [
        (b"32", "color", Color.from_ansi(2)),
        (b"93", "color", Color.from_ansi(11)),
        (b"44", "bgcolor", Color.from_ansi(4)),
        (b"105", "bgcolor", Color.from_ansi(13)),  # pyte calls it "bfightmagenta"
        (b"38;5;208", "color", Color.parse("#ff8700")),
        (b"38;5;3", "color", Color.parse("#cdcd00")),
        (b"38;2;1;2;3", "color", Color.parse("#010203")),
        (b"48;2;10;20;30", "bgcolor", Color.parse("#0a141e")),
    ],
)
async def test_colours(sgr: bytes, attr: str, colour: Color) -> None:
    """16-colour names map to the ANSI colours, 256-colour and truecolour to theirs."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(b"\x1b[" + sgr + b"mX\x1b[0mY")
        assert getattr(style_at(widget, 0, 0), attr) == colour
        assert getattr(style_at(widget, 0, 1), attr) == getattr(widget.rich_style, attr)


async def test_default_and_invalid_colours_use_the_widget_style() -> None:
    """Cells in the default colours (and in colours pyte cannot express, such as a
    truecolour component over 255) show the widget's own colours."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(b"a\x1b[38;2;300;0;0mb")
        base = widget.rich_style
        assert base.bgcolor is not None
        for x in (0, 1, 5):
            style = style_at(widget, 0, x)
            assert (style.color, style.bgcolor) == (base.color, base.bgcolor)


async def test_attributes_and_reverse_video() -> None:
    """Italic, underline, strike-through and reverse video reach the cells' styles."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(b"\x1b[3mi\x1b[0;4mu\x1b[0;9ms\x1b[0;7mr\x1b[0;31;7mR\x1b[0m.")
        styles = [style_at(widget, 0, x) for x in range(6)]
        assert styles[0].italic and styles[1].underline and styles[2].strike
        assert styles[3].reverse and not styles[2].reverse
        assert styles[4].reverse and styles[4].color == Color.from_ansi(1)
        assert not any(styles[5].test(name) for name in ("italic", "underline", "reverse"))


async def test_wide_characters_keep_the_row_width() -> None:
    """A wide character is printed once and takes two cells; one that does not fit in
    the last column is a space: every row is exactly `cols` cells."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed("a漢b\x1b[2;20H字\x1b[3;1H漢字".encode())
        assert text(widget, 0) == "a漢b" + " " * (COLS - 4)
        assert [c for c, _ in cells(widget, 0)[:5]] == ["a", "漢", "", "b", " "]
        assert text(widget, 1) == " " * COLS
        widget.feed(b"\x1b[3;2Hx")  # over the second half of 漢
        for y in range(ROWS):
            strip = widget.render_line(y)
            assert strip.cell_length == COLS
            assert sum(cell_len(segment.text) for segment in strip) == COLS


async def test_control_characters_never_reach_the_output() -> None:
    """Controls, control strings (OSC, DCS, APC, 8-bit ones) and latin-1 C1 bytes are
    never printed: no segment holds a C0/C1 control, nor a control string's payload."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(
            b"a\x07b\x1b]0;title\x07c\x1b]52;c;Zm9v\x1b\\d\xc2\x90dcs\xc2\x9ce\x7ff\x1bP+q544e"
            b"\x1b\\g\x1b_Gapc\x1b\\h\x1b^pm\x1b\\i\x1bXsos\x1b\\j\r\n"
        )
        assert text(widget, 0).rstrip() == "abcdefghij"
        widget.feed(b"\x1b%@")  # latin-1 from the next chunk: bytes 0x80-0x9f are C1
        widget.feed(bytes(range(0x80, 0xA0)) + b"\xa9")
        widget.feed(b"\x1b%G\r\nend\x01\x1b")
        widget.pyte_screen.buffer[3][0] = widget.pyte_screen.buffer[3][0]._replace(data="\x1b[2J")
        widget.pyte_screen.buffer[3][1] = widget.pyte_screen.buffer[3][1]._replace(data="\x9b")
        assert text(widget, 2).startswith("end ")
        for y in range(ROWS):
            for segment in widget.render_line(y):
                assert not UNPRINTABLE & {ord(char) for char in segment.text}, segment


async def test_control_strings_split_across_chunks() -> None:
    """A control string cut anywhere between two feeds is still dropped whole, and an
    ESC at the end of a chunk still starts the sequence it begins."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        data = b"x\x1b]2;a title\x1b\\y\x1bPq#0;2;0;0;0\x1b\\z\x1b[31mr"
        for cut in range(len(data)):
            widget.reset()
            widget.feed(data[:cut])
            widget.feed(data[cut:])
            assert text(widget, 0).startswith("xyzr "), cut
            assert style_at(widget, 0, 3).color == Color.from_ansi(1), cut


async def test_malformed_sequences_are_skipped() -> None:
    """Sequences pyte raises on (too many parameters, a superscript digit, 5,000
    digits) are skipped; the rest of the chunk is still drawn."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(b"a\x1b[1;2;3;4Ab\x1b[5;5;5rc" + "\x1b[²md".encode())
        assert text(widget, 0).startswith("abcd ")
        widget.feed(b"\r\n\x1b[" + b"1" * 5000)  # dropped up to its final byte...
        widget.feed(b"1" * 5000 + b"mok")
        assert text(widget, 1).startswith("ok ")
        widget.feed(b"\r\n\x1b[" + b";" * 5000 + b"\x1b[32mgreen")  # ...or the next ESC
        assert text(widget, 2).startswith("green ")
        assert style_at(widget, 2, 0).color == Color.from_ansi(2)


async def test_resize() -> None:
    """`resize` sizes the emulated screen: text is cut at the right, lines go from the
    top, the cursor stays inside; growing adds blank cells."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)) as pilot:
        widget = term(app)
        widget.feed(b"0123456789ABCDEF\r\nline 1\r\nline 2\r\nline 3")
        widget.resize(10, 3)
        await pilot.pause()
        screen = widget.pyte_screen
        assert (screen.columns, screen.lines) == (10, 3) == (widget.cols, widget.rows)
        assert [text(widget, y) for y in range(3)] == [
            "line 1".ljust(COLS),
            "line 2".ljust(COLS),
            "line 3".ljust(COLS),
        ]
        assert (screen.cursor.x, screen.cursor.y) == (6, 2)
        assert text(widget, 3) == " " * COLS  # under the screen: the widget's blank
        assert all(x < 10 for line in screen.buffer.values() for x in line)
        widget.resize(COLS, ROWS)
        widget.feed(b"\r\n\t\tX")
        assert text(widget, 3) == " " * 16 + "X" + " " * 3  # tab stops in the new columns
        with pytest.raises(ValueError):
            widget.resize(0, 5)


async def test_narrow_widget_crops_and_wide_widget_pads() -> None:
    """Rows are cut or padded to the widget's width, with the widget's style."""
    app = TermApp(cols=30, rows=3)
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(b"x" * 30)
        assert text(widget, 0) == "x" * COLS
        widget.resize(5, 3)
        strip = widget.render_line(0)
        assert strip.text == "xxxxx" + " " * (COLS - 5)
        assert cells(widget, 0)[10][1] == widget.rich_style


async def test_reset_clears_the_screen() -> None:
    """`reset` gives a blank screen of the same size, cursor home, default colours."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(CURSES + b"\x1b[32m\x1b]0;half a title")
        widget.reset()
        assert widget.pyte_screen.display == [" " * COLS] * ROWS
        assert (widget.pyte_screen.cursor.x, widget.pyte_screen.cursor.y) == (0, 0)
        assert (widget.cols, widget.rows) == (COLS, ROWS)
        widget.feed(b"ok")  # neither the colour nor the unfinished title carried over
        assert text(widget, 0).startswith("ok ")
        assert style_at(widget, 0, 0).color == widget.rich_style.color


async def test_cursor_is_reverse_video() -> None:
    """The cell under the cursor is drawn reversed while the program shows the cursor
    and the widget has focus or `show_cursor` is set; a reversed cell un-reverses."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)) as pilot:
        widget = term(app)
        widget.feed(b"ab\x1b[7mc\x1b[0m\x1b[1;3H")
        assert widget.has_focus
        assert [bool(style_at(widget, 0, x).reverse) for x in range(4)] == [False] * 4
        widget.feed(b"\x1b[2;5H")
        assert style_at(widget, 1, 4).reverse and style_at(widget, 0, 2).reverse
        widget.feed(b"\x1b[?25l")  # hidden by the program
        assert not style_at(widget, 1, 4).reverse
        widget.feed(b"\x1b[?25h")
        app.set_focus(None)
        await pilot.pause()
        assert style_at(widget, 1, 4).reverse  # show_cursor
        widget.show_cursor = False
        assert not style_at(widget, 1, 4).reverse
        widget.focus()
        await pilot.pause()
        assert style_at(widget, 1, 4).reverse
        widget.feed("\x1b[3;1H漢\x1b[3;2H".encode())  # on a wide character's second half
        assert cells(widget, 2)[0][1].reverse


async def test_queries_are_answered_with_reply_messages() -> None:
    """A program asking for the cursor position (ESC [ 6 n), the terminal's status or
    its attributes gets an answer through a Reply message, in order."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        widget.feed(b"\x1b[3;5H\x1b[6n")
        widget.feed(b"\x1b[5n\x1b[c")
        await until(lambda: len(app.replies) == 3, what=lambda: f"replies {app.replies}")
        assert [reply.data for reply in app.replies] == ["\x1b[3;5R", "\x1b[0n", "\x1b[?6c"]
        assert all(reply.control is widget for reply in app.replies)
        assert text(widget, 2) == " " * COLS  # a query prints nothing


async def test_memory_stays_bounded() -> None:
    """Whatever a program prints, one screen is kept: 50,000 lines leave at most `rows`
    lines of at most `cols` cells; saved cursors, combining marks piled on one cell,
    an unterminated control string and endless parameter digits stay bounded too."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)):
        widget = term(app)
        screen = widget.pyte_screen
        chunk = b"".join(b"line %d \xe6\xbc\xa2 \x1b[31mx\x1b[0m\r\n" % n for n in range(1000))
        for _ in range(50):
            widget.feed(chunk)
        assert len(screen.buffer) <= ROWS
        assert all(len(line) <= COLS for line in screen.buffer.values())
        assert text(widget, ROWS - 2).startswith("line 999 漢 x")
        widget.feed(b"\x1b7" * 10_000)
        assert len(screen.savepoints) <= MAX_SAVEPOINTS
        widget.feed(("\r\na" + "\u0301\u0302" * 5_000).encode())
        for _ in range(1_000):
            widget.feed("\u0303".encode())
        assert len(screen.buffer[screen.cursor.y][0].data) <= MAX_CELL
        widget.feed(b"\r\n\x1b]0;" + b"x" * 1_000_000)  # never terminated
        widget.feed(b"\x07\x1b[" + b"1" * 100_000)
        widget.feed(b"\x1b[" + b";" * 100_000)
        # What pyte's parser (a generator) holds of the sequence it is in: its locals.
        parser = widget._stream._parser
        assert parser is not None and parser.gi_frame is not None
        kept = {k: v for k, v in parser.gi_frame.f_locals.items() if isinstance(v, str | list)}
        assert all(len(v) <= MAX_SEQUENCE for v in kept.values()), {
            k: len(v) for k, v in kept.items()
        }
        widget.feed(b"\x1b[0m\x1b[H\x1b[2Jdone")
        assert text(widget, 0).startswith("done ")


async def test_feed_refreshes_the_display() -> None:
    """Output fed after mounting shows on the real (test) screen at the next frame."""
    app = TermApp()
    async with app.run_test(size=(COLS, ROWS)) as pilot:
        widget = term(app)
        widget.feed(b"\x1b[4;3Hhello")
        await pilot.pause()
        assert "hello" in screen_text(app, 3)
        widget.feed(b"\x1b[4;3H\x1b[2Kbye")
        await pilot.pause()
        assert "hello" not in screen_text(app, 3) and "bye" in screen_text(app, 3)


def screen_text(app: App[None], y: int) -> str:
    """Row `y` of what the app's screen shows (its compositor's output)."""
    return app.screen._compositor.render_strips()[y].text


def test_snapshot(snap_compare: Any) -> None:
    """A small coloured screen: bold red, 256-colour and truecolour text, a reversed
    cell, a blue background, a wide character and the cursor after "prompt$"."""

    async def draw(pilot: Pilot[None]) -> None:
        widget = term(pilot.app)
        widget.feed(
            "\x1b[?1049h\x1b[2J\x1b[H\x1b[1;31mRED\x1b[0m \x1b[38;5;208morange\x1b[0m "
            "\x1b[38;2;0;200;120mtrue\x1b[0m\r\n\x1b[7mreverse\x1b[0m \x1b[44;97m blue bg "
            "\x1b[0m\r\n漢字 wide \x1b[4munder\x1b[0m \x1b[9mstrike\x1b[0m\r\n"
            "\x1b[6;3Hprompt$ ".encode()
        )
        await pilot.pause()

    assert snap_compare(TermApp(cols=32, rows=8), terminal_size=(32, 8), run_before=draw)
