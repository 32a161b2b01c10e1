"""TranscriptView: on-demand rendering, following, tail-first opening, styling, snapshots."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style
from textual.app import App, ComposeResult
from textual.geometry import Offset, Region
from textual.pilot import Pilot
from textual.selection import Selection
from textual.strip import Strip
from textual.widget import Widget

from ccx_tui.engine.transcripts.reader import TranscriptReader
from ccx_tui.engine.transcripts.search import compile_query
from ccx_tui.engine.transcripts.transcript import STDERR, STDOUT, Segment, TranscriptWriter
from ccx_tui.widgets import transcript_view
from ccx_tui.widgets.ansi import UNKNOWN, final_state, format_size, line_streams, line_text
from ccx_tui.widgets.transcript_view import CACHE_LINES, TranscriptView

SIZE = (80, 24)


class ViewApp(App[None]):
    """Mounts just the view; records the FollowChanged messages it posts."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__()
        self.path = path
        self.kwargs = kwargs
        self.follow_changes: list[tuple[bool, int]] = []

    def compose(self) -> ComposeResult:
        yield TranscriptView(self.path, id="view", **self.kwargs)

    def on_transcript_view_follow_changed(self, message: TranscriptView.FollowChanged) -> None:
        assert message.control is self.query_one(TranscriptView)
        self.follow_changes.append((message.following, message.new_lines))


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 10) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.01)


def rows(view: TranscriptView) -> list[str]:
    """The visible text of the view, one string per row, right-stripped."""
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


def numbered(path: Path, count: int, start: int = 1) -> Path:
    with path.open("a") as f:
        f.writelines(f"line {i}\n" for i in range(start, start + count))
    return path


@pytest.fixture
def lines_100k(tmp_path: Path) -> Path:
    return numbered(tmp_path / "big.log", 100_000)


# -- pure helpers ---------------------------------------------------------------------


def test_final_state_keeps_text_after_last_carriage_return() -> None:
    assert final_state("10%\r50%\r100%") == "100%"
    assert final_state("done\r") == "done"  # CRLF: the trailing \r is not a rewrite
    assert final_state("\x1b[32m10%\r100%") == "\x1b[32m100%"  # colour state carries over


def test_line_text_decodes_expands_and_marks_cuts() -> None:
    assert line_text(b"a\tb").plain == "a       b"
    assert line_text(b"ok \xff end").plain == "ok \ufffd end"
    assert line_text(b"bell\x07 esc\x1b").plain == "bell esc\u241b"
    # a cut inside a multi-byte character drops the partial character
    assert line_text("é".encode()[:1] + b"", omitted=5).plain == " … [+5 B]"
    assert line_text(b"x", omitted=UNKNOWN).plain == "x … [cut]"
    assert format_size(12_345_678) == "12.3 MB"
    assert format_size(999) == "999 B"


def test_line_streams_uses_the_segment_at_each_line_start() -> None:
    segments = [Segment(0, 0.0, STDOUT), Segment(10, 0.0, STDERR), Segment(20, 0.0, STDOUT)]
    assert line_streams([0, 5, 10, 15, 20, 99], segments) == [0, 0, 1, 1, 0, 0]


# -- the widget -----------------------------------------------------------------------


async def test_opens_at_bottom_navigates_and_follows(lines_100k: Path) -> None:
    """g/G/End move top/bottom; scrolling up stops following and counts new lines
    without moving the view; f follows again."""
    app = ViewApp(lines_100k)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 100_000)
        await wait_for(pilot, lambda: rows(view)[-1] == "line 100000")
        assert view.following

        await pilot.press("g")
        assert rows(view)[0] == "line 1"
        assert not view.following
        await pilot.press("G")
        assert rows(view)[-1] == "line 100000"
        assert view.following
        await pilot.press("g", "end")
        assert rows(view)[-1] == "line 100000"
        assert view.following

        await pilot.press("up", "k", "pageup")
        assert not view.following
        before = rows(view)
        numbered(lines_100k, 7, start=100_001)
        view.refresh_source()
        await wait_for(pilot, lambda: view.new_lines == 7)
        assert rows(view) == before
        assert view.line_count == 100_007
        # The view posts the change; the app gets it a message later (under load, after
        # the counter is already seen here): wait for it, do not assume the same instant.
        await wait_for(pilot, lambda: (False, 7) in app.follow_changes)

        await pilot.press("f")
        await wait_for(pilot, lambda: rows(view)[-1] == "line 100007")
        assert view.following and view.new_lines == 0
        await wait_for(pilot, lambda: app.follow_changes[-1] == (True, 0))


async def test_growing_file_keeps_newest_line_visible(tmp_path: Path) -> None:
    path = numbered(tmp_path / "grow.log", 3)
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: rows(view)[2] == "line 3")
        for last in range(43, 203, 40):
            numbered(path, 40, start=last - 39)
            view.refresh_source()
            await wait_for(pilot, lambda: rows(view)[-1] == f"line {last}")  # noqa: B023
        # an unterminated last line that is later completed is re-read, not stale
        with path.open("a") as f:
            f.write("partial")
        view.refresh_source()
        await wait_for(pilot, lambda: rows(view)[-1] == "partial")
        with path.open("a") as f:
            f.write(" and done\n")
        view.refresh_source()
        await wait_for(pilot, lambda: rows(view)[-1] == "partial and done")
        assert view.following and view.new_lines == 0
        # a wide line brings a horizontal scrollbar, which must not hide the last line
        with path.open("a") as f:
            f.write("W" * 200 + "\nlast line\n")
        view.refresh_source()
        await wait_for(pilot, lambda: view.show_horizontal_scrollbar)
        await wait_for(pilot, lambda: rows(view)[-1] == "last line")


async def test_rows_past_the_end_take_the_style_once_per_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short output under a tall view: its empty rows are the widget's blank rows, and
    the widget's style (worked out through its ancestors) is taken once per frame."""
    app = ViewApp(numbered(tmp_path / "short.log", 3))
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: rows(view)[2] == "line 3")
        region = view.scrollable_content_region
        assert region.height > 10  # rows past the end, many
        style = view.rich_style
        taken = [0]
        rich_style = TranscriptView.rich_style

        def counted(self: TranscriptView) -> Style:
            taken[0] += 1
            return rich_style.__get__(self)

        monkeypatch.setattr(TranscriptView, "rich_style", property(counted))
        view._cache.clear()  # the three lines read again too (their base style)
        strips = view.render_lines(region.reset_offset)
        assert taken[0] <= 2
        blank = Strip.blank(region.width, style)
        assert [list(strip) for strip in strips[3:]] == [list(blank)] * (region.height - 3)
        assert [strip.text.rstrip() for strip in strips[:3]] == ["line 1", "line 2", "line 3"]


async def test_lines_are_styled_as_textuals_pipeline_styles_them(tmp_path: Path) -> None:
    """The view styles its lines itself (plain_lines.py): in every mode, the same lines
    as Textual's pipeline, whole or cropped; and a line drawn again is the same strip."""
    path = tmp_path / "mixed.log"
    lines = [
        f"\x1b[3{n % 8}mcolour {n}\x1b[0m plain \x1b[1;4mbold\x1b[0m 日本 {'x' * (n * 7)}"
        for n in range(1, 60)
    ]
    path.write_text("\n".join(lines) + "\n\xff invalid \x1b]0;title\x07 end\n")
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: "end" in rows(view)[-1])
        region = view.size.region

        def same(what: str) -> None:
            for crop in (region, Region(3, 2, region.width - 10, region.height - 5)):
                ours = view.render_lines(crop)
                view._styles_cache.clear()
                textual = Widget.render_lines(view, crop)
                assert [list(s) for s in ours] == [list(s) for s in textual], what
                assert ours and all(strip.cell_length == crop.width for strip in ours)

        same("following the end")
        # Scrolled a line, the lines still on screen are the strips drawn before (what
        # is cached on them is found again); Textual's pipeline makes every one anew.
        before = view.render_lines(region)
        view.scroll_to(y=view.scroll_y - 1, animate=False, immediate=True)
        await pilot.pause()
        after = view.render_lines(region)
        assert [line.text for line in after[1:]] == [line.text for line in before[:-1]]
        assert all(a is b for a, b in zip(after[1:], before[:-1], strict=True))
        view.show_line_numbers = True
        await pilot.pause()
        same("line numbers")
        view.search(compile_query("colou?r [0-9]+"))
        await wait_for(pilot, lambda: view.match_index is not None or view.searcher is not None)
        await pilot.pause(0.2)
        same("matches highlighted")
        view.scroll_to(x=12, y=3, animate=False, immediate=True)
        view.cursor_line = 5
        await pilot.pause()
        same("scrolled sideways, a cursor line")
        view.screen.selections = {view: Selection(Offset(2, 4), Offset(9, 7))}
        await pilot.pause()
        same("a selection")
        view.wrap = True
        await wait_for(pilot, lambda: not view.wrap_pending)
        same("wrapped")


@pytest.fixture
def held_indexer(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make files over 64 KiB "big" and hold the indexing worker until the returned
    event is set, so what the view shows before indexing ends can be checked."""
    monkeypatch.setattr(transcript_view, "SYNC_INDEX_BYTES", 64 * 1024)
    monkeypatch.setattr(transcript_view, "INDEX_STEP", 256 * 1024)
    gate = threading.Event()
    refresh = TranscriptReader.refresh

    def gated_refresh(self: TranscriptReader, max_bytes: int | None = None) -> bool:
        if threading.current_thread() is not threading.main_thread():
            gate.wait(10)
        return refresh(self, max_bytes)

    monkeypatch.setattr(TranscriptReader, "refresh", gated_refresh)
    return gate


async def test_opens_huge_file_at_its_tail_before_indexing(
    lines_100k: Path, held_indexer: threading.Event
) -> None:
    """A file too big to index at once shows its last screen from the tail at once,
    then switches to the indexed view at the bottom when the worker is done."""
    gate = held_indexer
    app = ViewApp(lines_100k)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await pilot.pause()
        assert view.showing_tail and view.line_count == 0
        assert rows(view)[-1] == "line 100000"
        gate.set()
        await wait_for(pilot, lambda: not view.showing_tail)
        assert view.line_count == 100_000
        assert rows(view)[-1] == "line 100000"
        await pilot.press("g")
        assert rows(view)[0] == "line 1"


def open_fds(path: Path) -> int:
    """How many file descriptors of this process are open on `path` (Linux)."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


async def test_not_following_opens_huge_file_at_the_top_while_indexing(
    lines_100k: Path, held_indexer: threading.Event
) -> None:
    """With follow=False the indexed start is shown at once and grows; the lines
    indexed later are not counted as new output."""
    app = ViewApp(lines_100k, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await pilot.pause()
        assert not view.showing_tail
        assert 0 < view.line_count < 100_000
        assert rows(view)[0] == "line 1"
        held_indexer.set()
        await wait_for(pilot, lambda: view.line_count == 100_000)
        assert rows(view)[0] == "line 1"
        assert view.new_lines == 0 and not view.following


async def test_truncated_or_replaced_file_is_shown_afresh(tmp_path: Path) -> None:
    path = numbered(tmp_path / "rot.log", 100)
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: rows(view)[-1] == "line 100")
        path.write_text("truncated 1\ntruncated 2\n")
        view.refresh_source()
        await wait_for(pilot, lambda: view.line_count == 2)
        assert rows(view)[:3] == ["truncated 1", "truncated 2", ""]
        path.rename(tmp_path / "rot.log.1")
        path.write_text("".join(f"rotated {i}\n" for i in range(1, 31)))
        view.refresh_source()
        await wait_for(pilot, lambda: view.line_count == 30)
        await wait_for(pilot, lambda: rows(view)[-1] == "rotated 30")
        assert rows(view)[0] == "rotated 7"


async def test_removed_while_indexing_closes_the_file_when_the_worker_stops(
    lines_100k: Path, held_indexer: threading.Event
) -> None:
    """Unmounting never closes the reader under a running index worker (its fd could
    be reused mid-read); the worker closes it when it stops."""
    gate = held_indexer
    app = ViewApp(lines_100k)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await pilot.pause()
        assert view.showing_tail
        await view.remove()
        assert open_fds(lines_100k) == 1
        gate.set()
        await wait_for(pilot, lambda: open_fds(lines_100k) == 0)


def first_row_segments(view: TranscriptView, y: int = 0) -> list[tuple[str, Style | None]]:
    return [(seg.text, seg.style) for seg in view.render_line(y) if seg.text.strip()]


async def test_ansi_carriage_return_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "styled.log"
    path.write_bytes(
        b"plain \x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[0m\n"
        b"progress 10%\rprogress 55%\rprogress 100%\r\n"
        b"bad \xff\xfe bytes\n"
    )
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 3)
        styles = dict(first_row_segments(view))
        red, green = styles["red"], styles["bold green"]
        assert red is not None and red.color is not None and red.color.number == 1
        assert green is not None and green.bold and green.color is not None
        plain = styles["plain "]
        assert plain is None or plain.color != red.color
        assert rows(view)[:3] == [
            "plain red bold green",
            "progress 100%",
            "bad \ufffd\ufffd bytes",
        ]


async def test_huge_single_line_renders_cut_and_app_stays_responsive(tmp_path: Path) -> None:
    """A 20 MB line renders from its first 16 KiB with a size marker; keys still work."""
    path = tmp_path / "long.log"
    with path.open("wb") as f:
        f.write(b"0123456789" * 2_000_000 + b"\nafter\n")
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 2)
        assert rows(view)[:2] == ["0123456789" * 8, "after"]
        await wait_for(pilot, lambda: view.max_scroll_x > 16_000)
        await pilot.press("right")  # half a screen sideways, as in less (was 4 columns)
        assert view.scroll_x == view.scrollable_content_region.width // 2 == 40
        view.scroll_to(x=view.max_scroll_x, animate=False)
        await pilot.pause()
        assert rows(view)[0].endswith("… [+20.0 MB]")


async def test_stderr_lines_get_the_stderr_style(tmp_path: Path) -> None:
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, b"to stdout\n")
    writer.write(STDERR, b"to stderr\n")
    writer.write(STDOUT, b"stdout again\n")
    writer.close()
    app = ViewApp(writer.path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 3)
        tint = view.get_component_rich_style("transcript-view--stderr").bgcolor
        assert tint is not None
        backgrounds = [{s.bgcolor for _, s in first_row_segments(view, y) if s} for y in range(3)]
        assert backgrounds[1] == {tint}
        assert tint not in backgrounds[0] | backgrounds[2]


async def test_line_cache_stays_bounded_while_scrolling(lines_100k: Path) -> None:
    """Scrolling through 100k lines keeps at most CACHE_LINES rendered lines."""
    app = ViewApp(lines_100k, follow=False)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 100_000)
        for y in range(0, 100_000, 331):
            view.scroll_to(y=y, animate=False)
            assert rows(view)[0] == f"line {min(y, view.max_scroll_y) + 1}"
        for _ in range(30):
            await pilot.press("pagedown")
        assert rows(view)[0] == f"line {view.max_scroll_y + 1}"
        assert 0 < view.cached_lines <= CACHE_LINES


async def test_line_numbers_gutter(tmp_path: Path) -> None:
    path = numbered(tmp_path / "n.log", 120)
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        view.show_line_numbers = True
        await wait_for(pilot, lambda: rows(view)[-1] == "120 line 120")
        await pilot.press("g")
        assert rows(view)[0] == "  1 line 1"


# -- snapshots ------------------------------------------------------------------------


@pytest.fixture
def ansi_file(tmp_path: Path) -> Iterator[Path]:
    writer = TranscriptWriter(tmp_path)
    writer.write(STDOUT, b"$ make test\n")
    writer.write(STDOUT, b"\x1b[1mcollecting\x1b[0m ... \x1b[32m12 items\x1b[0m\n")
    for name, ok in [("alpha", True), ("beta", False), ("gamma", True)]:
        mark = b"\x1b[32mPASSED\x1b[0m" if ok else b"\x1b[31;1mFAILED\x1b[0m"
        writer.write(STDOUT, b"tests/test_%s.py::test_it " % name.encode() + mark + b"\n")
    writer.write(STDERR, b"warning: \x1b[33mdeprecated\x1b[0m call in beta\n")
    writer.write(STDOUT, b"downloading [###       ] 30%\rdownloading [##########] 100%\r\n")
    writer.write(STDOUT, b"col1\tcol2\tcol3\n\xff invalid utf-8\n")
    writer.write(STDOUT, b"\x1b[44;97m white on blue \x1b[0m \x1b[4munderlined\x1b[0m\n")
    writer.close()
    yield writer.path


def test_snapshot_ansi_colours(snap_compare: Any, ansi_file: Path) -> None:
    async def show_line_numbers(pilot: Pilot[None]) -> None:
        pilot.app.query_one(TranscriptView).show_line_numbers = True

    assert snap_compare(ViewApp(ansi_file), terminal_size=SIZE, run_before=show_line_numbers)


def test_snapshot_long_line(snap_compare: Any, tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    path.write_bytes(b"start " + b"0123456789" * 3_000 + b"\nshort line\n")

    async def scroll_to_end_of_long_line(pilot: Pilot[None]) -> None:
        view = pilot.app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.max_scroll_x > 16_000)
        view.scroll_to(x=view.max_scroll_x, animate=False)

    assert snap_compare(ViewApp(path), terminal_size=SIZE, run_before=scroll_to_end_of_long_line)
