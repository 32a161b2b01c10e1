"""Below a transcript the disk stopped keeping: the latest output, from memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ccx_tui.engine.sessions.tap import Chunk
from ccx_tui.engine.transcripts.transcript import STDERR
from ccx_tui.widgets.ansi import UNKNOWN, line_text
from ccx_tui.widgets.safe import plain

MAX_LINES = 200
"""Lines of the latest output shown (the block is bounded like the memory behind it)."""
MAX_LINE_BYTES = 4096
"""A longer line is shown cut, with a marker."""


Line = tuple[int, bytes, int]
"""(stream of its last byte, its first bytes, bytes left out: UNKNOWN if not counted)."""


def tail_lines(chunks: Sequence[Chunk], max_lines: int = MAX_LINES) -> list[Line]:
    """The last `max_lines` lines of `chunks` (without their newlines), each cut to
    MAX_LINE_BYTES; an unfinished last line is a line too.  Only the chunks that hold
    them are looked at."""
    first, newlines = len(chunks), 0
    while first > 0 and newlines <= max_lines:
        first -= 1
        newlines += chunks[first].data.count(b"\n")
    lines: list[Line] = []
    pending = b""
    cut = False  # the pending line was cut short to stay bounded
    stream = 0
    for n, chunk in enumerate(chunks[first:]):
        data = chunk.data
        if n == 0 and newlines > max_lines:  # start at the first line wanted
            data = data.split(b"\n", newlines - max_lines)[-1]
        stream = chunk.stream
        for i, part in enumerate(data.split(b"\n")):
            if i:  # the pending line ended
                lines.append(_line(stream, pending, cut))
                pending, cut = b"", False
            pending += part[: MAX_LINE_BYTES + 1 - len(pending)]
            if len(pending) > MAX_LINE_BYTES:
                pending, cut = pending[:MAX_LINE_BYTES], True
    if pending or cut:
        lines.append(_line(stream, pending, cut))
    return lines[-max_lines:]


def _line(stream: int, data: bytes, cut: bool) -> Line:
    return (stream, data, UNKNOWN if cut else 0)


class LiveTail(Vertical):
    """A clearly marked block: how much output the disk did not keep, then the latest
    lines of it (from an in-memory window: see `SessionPane`).  Hidden when empty."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"live-tail--stderr"}

    DEFAULT_CSS = """
    LiveTail {
        height: 40%;
        display: none;
        &.-shown { display: block; }
        #live-header { color: $warning; text-style: bold; height: auto; }
        #live-scroll { height: 1fr; }
        & > .live-tail--stderr { background: $error 15%; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="live-header")
        with VerticalScroll(id="live-scroll"):
            yield Static(id="live-lines")

    def on_mount(self) -> None:
        # Anchored: every layout keeps the newest line in view (a scroll_end done before
        # the block's first layout, as when a tab opens on a finished session, did not).
        # (Mounted as the app exits, its children may never come: nothing to anchor.)
        for scroll in self.query("#live-scroll").results(VerticalScroll):
            scroll.anchor()

    def show(self, header: str, lines: list[Line]) -> None:
        """Show `header` (plain text) and `lines` (output bytes, rendered safely: only
        the colours the transcript view understands, no terminal control)."""
        # The header quotes the write error (a path, the OS's words): escaped.
        self.query_one("#live-header", Static).update(plain(header))
        stderr = self.get_component_rich_style("live-tail--stderr")
        body = Text()
        for i, (stream, data, omitted) in enumerate(lines):
            style: Style | None = stderr if stream == STDERR else None
            if i:
                body.append("\n")
            body.append_text(line_text(data, omitted=omitted, style=style))
        self.query_one("#live-lines", Static).update(body)
        self.add_class("-shown")
        self.query_one("#live-scroll", VerticalScroll).scroll_end(animate=False)

    def hide(self) -> None:
        self.remove_class("-shown")
