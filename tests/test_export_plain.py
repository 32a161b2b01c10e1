"""Plain text out (issue 13): `save_transcript(plain=True)`, the save dialog's choice of
plain text or exact bytes, and what `e` gives the pager."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.widgets import Input, RadioButton

import ccx_tui.engine.transcripts.export as export
from ccx_tui.engine.transcripts.export import save_transcript
from ccx_tui.engine.transcripts.plain import PlainStream, plain_bytes, plain_text
from ccx_tui.errors import ExportError
from ccx_tui.textsafe import terminal_tokens
from ccx_tui.widgets.ansi import final_state
from ccx_tui.widgets.dialogs import SaveDialog
from ccx_tui.widgets.transcript_panel import pager_shows_colour, with_colour
from tests.helpers import until
from tests.test_e2e_tmux import TMUX, Tmux, ccx
from tests.test_panel import SIZE, PanelApp, parts, search, status

# What a program on a terminal leaves in a transcript: colours, a window title, a
# hyperlink, a progress bar redrawn with \r, CRLF line ends, a byte that is not UTF-8.
PTY_OUTPUT = (
    b"\x1b]0;build: step 1\x07\x1b[1;32mok\x1b[0m compiled\r\n"
    b"\x1b[38;5;208mwarn\x1b[m see \x1b]8;;https://example.com\x1b\\the docs\x1b]8;;\x1b\\\r\n"
    b" 10% [#    ]\r 50% [##   ]\r100% [#####]\r\n"
    b"bad \xff byte\tand a tab\r\n"
    b"\x1b[2K\x1b[1Gprompt$ "
)
PTY_PLAIN = (
    b"ok compiled\nwarn see the docs\n100% [#####]\nbad \xef\xbf\xbd byte\tand a tab\nprompt$ \n"
)


def save(tmp_path: Path, data: bytes, **kwargs: object) -> bytes:
    """`data` saved from a transcript file with `kwargs`; the bytes written."""
    source = tmp_path / "transcript.log"
    source.write_bytes(data)
    dest = tmp_path / "out.txt"
    written = save_transcript(source, dest, **kwargs)  # type: ignore[arg-type]
    out = dest.read_bytes()
    assert written == len(out)
    return out


def shown(line: str) -> str:
    """What the transcript view shows of one decoded line, without its colours: the
    view's own `final_state` and parser, control characters but tab left out, and
    backspaces (which the view shows as symbols) applied a character at a time."""
    text = "".join(t for t in terminal_tokens(final_state(line)) if isinstance(t, str))
    cells: list[str] = []
    column = 0
    for char in re.sub(r"[\x00-\x07\x0b-\x1f\x7f-\x9f]", "", text):
        if char == "\b":
            column = max(0, column - 1)
            continue
        if column < len(cells):
            cells[column] = char
        else:
            cells.append(char)
        column += 1
    return "".join(cells)


# -- the conversion -------------------------------------------------------------------


def test_a_terminal_transcript_comes_out_as_the_text_it_shows(tmp_path: Path) -> None:
    """Colours, titles, links and cursor moves go, the progress bar is its last state,
    CRLF is LF, a bad byte is U+FFFD, a tab stays; the unterminated last line gets a
    newline."""
    assert save(tmp_path, PTY_OUTPUT, plain=True) == PTY_PLAIN


def test_exact_mode_is_unchanged_byte_for_byte(tmp_path: Path) -> None:
    """The default (and plain=False) still copies the recorded bytes as they are."""
    assert save(tmp_path, PTY_OUTPUT) == PTY_OUTPUT
    assert save(tmp_path, PTY_OUTPUT, plain=False) == PTY_OUTPUT
    lines = PTY_OUTPUT.split(b"\n")
    assert save(tmp_path, PTY_OUTPUT, lines=[1, 4]) == lines[1] + b"\n" + lines[4] + b"\n"


@pytest.mark.parametrize(
    ("line", "plain"),
    [
        (
            "\x1b[31mred\x1b[0m \x1b[1;4;38;2;255;0;0mtrue\x1b[m \x1b[38:5:208mcolon",
            "red true colon",
        ),
        ("\x9b31m8-bit CSI\x9b0m", "8-bit CSI"),
        ("a\x1b[2Jb\x1b[10;5Hc\x1b[?25ld\x1b[>0ce", "abcde"),
    ],
)
def test_colours_and_other_csi_sequences_are_removed(line: str, plain: str) -> None:
    assert plain_text(line) == plain


@pytest.mark.parametrize(
    ("line", "plain"),
    [
        ("\x1b]0;window title\x07text", "text"),  # BEL
        ("\x1b]2;title\x1b\\text", "text"),  # ST as ESC \
        ("\x9d0;title\x9ctext", "text"),  # 8-bit OSC and ST
        ("\x1bP1$r0m\x1b\\after DCS", "after DCS"),
        ("\x1b]8;;https://x.org\x07link\x1b]8;;\x07", "link"),
        ("\x1b]0;aborted\x1b[31mred", "red"),  # ESC ends the title and starts a CSI
        ("before\x1b]0;never ends", "before"),  # dropped to the line's end...
    ],
)
def test_osc_titles_and_other_control_strings_are_removed(line: str, plain: str) -> None:
    assert plain_text(line) == plain


def test_an_unterminated_title_ends_with_its_line() -> None:
    """...but not past it: the view parses a line at a time, and so does plain text."""
    assert plain_text("a\x1b]0;never ends\nnext line\n") == "a\nnext line\n"


@pytest.mark.parametrize(
    ("line", "plain"),
    [
        ("10%\r50%\r100%", "100%"),
        ("10%\r50%\r100%\r", "100%"),  # a CR before the newline is not a rewrite
        ("crlf\r\r", "crlf"),
        ("\x1b[32m10%\r\x1b[32m100%\x1b[0m", "100%"),
        ("long old text\rnew", "new"),  # as the view shows it: the last state only
        ("a\x1b]0;t\rx\x07b", "xb"),  # a \r inside a title counts too, as in the view
    ],
)
def test_carriage_returns_leave_the_last_state(line: str, plain: str) -> None:
    assert plain_text(line) == plain == shown(line)


def test_crlf_is_one_line_end(tmp_path: Path) -> None:
    assert save(tmp_path, b"one\r\ntwo\r\n\r\nfour\r\n", plain=True) == b"one\ntwo\n\nfour\n"


def test_backspaces_overwrite_and_other_controls_go() -> None:
    """Backspace moves back a column (overstrike: `_\\bX` is `X`, man-page bold `X\\bX`
    too; a spinner ends on its last frame; never before the line's start); BEL, form
    feed, DEL, a stray ESC and C1 controls are removed; tab stays."""
    assert plain_text("_\bB_\bO\bOld") == "BOld"
    assert plain_text("spin |\b/\b-\b\\ done") == "spin \\ done"
    assert plain_text("\b\bx") == "x"
    assert plain_text("abc\b") == "abc"
    assert plain_text("a\x07b\x0cc\x7fd\x1b\x01e\x85f\tg") == "abcdef\tg"


def test_invalid_utf8_is_kept_as_replacement_characters(tmp_path: Path) -> None:
    out = save(tmp_path, b"\xff\xfe ok \xc3( \xe2\x82 \xc3\xa9\n", plain=True)
    assert out.decode("utf-8") == "\ufffd\ufffd ok \ufffd( \ufffd \u00e9\n"


def test_filtered_lines_come_out_plain(tmp_path: Path) -> None:
    """`lines=` with runs and gaps, the unterminated last line, and a number past the
    end (ignored), as the exact mode does."""
    out = save(tmp_path, PTY_OUTPUT, plain=True, lines=[0, 1, 3, 4, 99])
    assert out == b"ok compiled\nwarn see the docs\nbad \xef\xbf\xbd byte\tand a tab\nprompt$ \n"
    assert save(tmp_path, PTY_OUTPUT, plain=True, lines=[2]) == b"100% [#####]\n"
    assert save(tmp_path, PTY_OUTPUT, plain=True, lines=[]) == b""


def test_a_cancelled_plain_save_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "transcript.log"
    source.write_bytes(PTY_OUTPUT)
    with pytest.raises(ExportError, match="cancelled"):
        save_transcript(source, tmp_path / "out.txt", plain=True, cancelled=lambda: True)
    assert list(tmp_path.iterdir()) == [source]


def test_a_line_longer_than_a_block_comes_out_whole(tmp_path: Path) -> None:
    """A 9 MiB line (two blocks and more) with colours throughout, a control string
    across a block boundary, a rewrite with \\r in its middle and CRLF: the same text as
    if it were converted in one go, and the lines around it untouched."""
    unit = b"\x1b[31mred\x1b[0m and plain "  # 27 bytes, 18 shown
    before = unit * 100_000  # ~2.6 MiB, rewritten by the \r below
    title = b"\x1b]0;" + b"t" * 3_000_000 + b"\x07"  # spans the 4 MiB mark
    after = unit * 250_000  # ~6.4 MiB
    line = before + b"\rshown " + title + after + b"\r\n"
    out = save(tmp_path, b"first\n" + line + b"last\n", plain=True)
    assert out == b"first\nshown " + b"red and plain " * 250_000 + b"\nlast\n"
    assert len(line) > 2 * export.COPY_BLOCK


def test_memory_stays_bounded_on_a_huge_line(tmp_path: Path) -> None:
    """A 160 MiB line (and a 48 MiB clipboard OSC 52 in it) costs no more memory to save
    as plain text than a short one: it is read and converted a block at a time (peak
    RSS of a child process, from the kernel)."""
    small, big = tmp_path / "small.log", tmp_path / "big.log"
    small.write_bytes(b"\x1b[31mshort\x1b[0m\n")
    chunk = b"x" * 1000 + b"\x1b[32mgreen\x1b[0m"
    with open(big, "wb") as f:
        for _ in range(56 * 1024):  # 56 MiB of text with colours
            f.write(chunk)
        f.write(b"\x1b]52;c;" + b"QUFB" * (12 * 1024 * 1024) + b"\x07")
        for _ in range(56 * 1024):
            f.write(chunk)
        f.write(b"\n")

    def peak_kib(source: Path) -> int:
        code = (
            "import sys; from pathlib import Path; from ccx_tui.engine.transcripts.export import "
            "save_transcript; save_transcript(Path(sys.argv[1]), Path(sys.argv[2]), plain=True)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code, str(source), f"{source}.txt"])
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return usage.ru_maxrss

    grown = peak_kib(big) - peak_kib(small)
    assert grown < 64 * 1024, grown
    assert Path(f"{big}.txt").stat().st_size == 2 * 56 * 1024 * 1005 + 1


# (That export and plain pull in no UI: tests/test_daemon.py checks every engine module.)


# -- the same text as the view, in one go or in pieces ------------------------------------

_PARTS = [
    *"\x1b[]PX^_\\\x07\x9c\x9b\x9d\x90\x98\x18\x1a\r\b\t a1;m ?!/#(%@~\x80\x85é中",
    "\x1b[31m",
    "\x1b]0;t\x07",
]
_LINE = st.lists(st.sampled_from(_PARTS), max_size=40).map("".join)
_TEXT = st.lists(st.sampled_from([*_PARTS, "\n", "\r\n"]), max_size=60).map("".join)


@settings(max_examples=500, deadline=None)
@given(_TEXT)
def test_each_line_comes_out_as_the_view_shows_it(text: str) -> None:
    """Any mix of sequences, controls and text: each line is what the view shows of it
    (its parser, its `final_state`), without the colours."""
    assert plain_text(text) == "\n".join(shown(line) for line in text.split("\n"))


@settings(max_examples=500, deadline=None)
@given(_LINE, st.lists(st.integers(0, 200), max_size=8))
def test_a_line_fed_in_pieces_comes_out_as_in_one_go(line: str, cuts: list[int]) -> None:
    """Sequences, control strings and UTF-8 characters cut anywhere between pieces
    (a long line is converted piece by piece): the same text.  Backspaces are left out:
    one at a piece's start cannot reach back into the piece before."""
    line = line.replace("\b", "").replace("\r", "")
    data = line.encode()
    stream = PlainStream()
    pieces, prev = [], 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        pieces.append(stream.feed(data[prev:cut]))
        prev = cut
    pieces.append(stream.feed(b"", final=True))
    assert "".join(pieces) == plain_text(line)


_BYTES = st.lists(
    st.sampled_from(
        [b"\x1b", b"[", b"]", b"\\", b"\x07", b"\xc2\x9c", b"\r", b"\n", b"\r\n", b"a", b"m"]
        + [b";", b"\xff", b"\xc3", b"\xa9", b"\xe4\xb8\xad", b"\x1b[31m", b"\x1b]0;x\x07"]
    ),
    max_size=80,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_BYTES, st.integers(1, 16), st.lists(st.integers(0, 30), max_size=8))
def test_block_boundaries_do_not_change_the_text(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, block: int, lines: list[int]
) -> None:
    """Saved with blocks of a few bytes (every line longer than a block, every boundary
    somewhere new), whole or filtered: the text of converting each line at once."""
    tmp = tmp_path_factory.mktemp("blocks")
    source, dest = tmp / "t.log", tmp / "out.txt"
    source.write_bytes(data)
    every = data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")
    every = every if data else []
    saved = export.COPY_BLOCK
    export.COPY_BLOCK = block
    try:
        save_transcript(source, dest, plain=True)
        assert dest.read_bytes() == b"".join(plain_bytes(line) + b"\n" for line in every)
        chosen = sorted(set(lines))
        save_transcript(source, dest, plain=True, lines=chosen)
        want = b"".join(plain_bytes(every[i]) + b"\n" for i in chosen if i < len(every))
        assert dest.read_bytes() == want
    finally:
        export.COPY_BLOCK = saved


# -- the save dialog ------------------------------------------------------------------


async def test_the_save_dialog_saves_plain_text_by_default(tmp_path: Path) -> None:
    """`s`, a name, Enter: plain text is the choice already made, and the note says so."""
    path = tmp_path / "t.log"
    path.write_bytes(PTY_OUTPUT)
    out = tmp_path / "out.txt"
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, SaveDialog)
        assert dialog.query_one("#plain", RadioButton).value
        assert not dialog.query_one("#exact", RadioButton).value
        app.screen.query_one("#path", Input).value = str(out)
        await pilot.press("enter")
        await until(lambda: any(n.startswith("saved transcript") for n in app.notes))
        assert out.read_bytes() == PTY_PLAIN
        assert app.notes[-1].startswith("saved transcript as plain text (")


async def test_the_save_dialog_can_save_the_exact_bytes(tmp_path: Path) -> None:
    """Choosing "exact bytes" saves what was recorded, colour codes and CRLF included."""
    path = tmp_path / "t.log"
    path.write_bytes(PTY_OUTPUT)
    out = tmp_path / "out.log"
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, SaveDialog)
        dialog.query_one("#path", Input).value = str(out)
        await pilot.click("#exact")
        assert not dialog.query_one("#plain", RadioButton).value
        await pilot.click("#save")
        await until(lambda: any(n.startswith("saved transcript") for n in app.notes))
        assert out.read_bytes() == PTY_OUTPUT
        assert app.notes[-1].startswith(f"saved transcript ({len(PTY_OUTPUT):,} bytes)")


async def test_the_choice_can_be_made_from_the_keyboard(tmp_path: Path) -> None:
    """Tab to the choice, Down and Enter pick "exact bytes", shift+Tab back to the
    name and Enter saves them."""
    path = tmp_path / "t.log"
    path.write_bytes(PTY_OUTPUT)
    out = tmp_path / "out.log"
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, SaveDialog)
        dialog.query_one("#path", Input).value = str(out)
        await pilot.press("tab", "down", "enter")
        assert dialog.query_one("#exact", RadioButton).value
        await pilot.press("shift+tab", "enter")
        await until(lambda: any(n.startswith("saved transcript") for n in app.notes))
        assert out.read_bytes() == PTY_OUTPUT


async def test_filtered_lines_are_saved_plain_too(tmp_path: Path) -> None:
    """With `&` on, the matching lines are saved, as plain text."""
    path = tmp_path / "t.log"
    path.write_bytes(b"".join(b"\x1b[31mERROR\x1b[0m %d\r\nline %d\r\n" % (i, i) for i in range(3)))
    out = tmp_path / "out.txt"
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        _, bar = parts(app)
        await search(pilot, "ERROR")
        await until(lambda: status(bar) == "3 matching lines")
        await pilot.press("enter", "ampersand", "s")
        assert isinstance(app.screen, SaveDialog)
        app.screen.query_one("#path", Input).value = str(out)
        await pilot.press("enter")
        await until(lambda: any(n.startswith("saved 3 lines") for n in app.notes))
        assert out.read_bytes() == b"ERROR 0\nERROR 1\nERROR 2\n"


# -- the pager ------------------------------------------------------------------------


def test_only_less_gets_the_colours() -> None:
    assert pager_shows_colour(["less"]) and pager_shows_colour(["/usr/bin/less", "-S"])
    assert not pager_shows_colour(["more"]) and not pager_shows_colour(["vim"])
    assert with_colour(["less", "+3", "f"]) == ["less", "-R", "+3", "f"]
    assert with_colour(["less", "-R", "f"]) == ["less", "-R", "f"]


async def test_another_pager_gets_a_plain_copy_that_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pager that is not `less` gets a temporary plain copy, made in a thread; under
    Pilot there is no terminal to hand over, so the note says so, and the copy is gone
    afterwards (the run itself is tested in tmux below)."""
    monkeypatch.setenv("PAGER", "cat")
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    path = tmp_path / "t.log"
    path.write_bytes(PTY_OUTPUT)
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await until(lambda: "cannot suspend the app in this terminal" in app.notes)
        await app.workers.wait_for_complete()
        assert list(temp_dir.iterdir()) == []


async def test_a_missing_pager_is_named_before_any_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGER", "no-such-pager-here")
    path = tmp_path / "t.log"
    path.write_bytes(PTY_OUTPUT)
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        assert app.notes[-1] == "cannot run 'no-such-pager-here': not found (set $PAGER)"


def _recording_pager(path: Path, record: Path) -> Path:
    """A stand-in pager at `path` that writes its arguments and the file it was given
    (its last argument) under `record`."""
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {record}/args\n'
        "for last; do :; done\n"
        f'cp "$last" {record}/got\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
@pytest.mark.timeout(60)
def test_e_gives_another_pager_a_plain_copy_then_removes_it(tmux: Tmux, tmp_path: Path) -> None:
    """In the real app, `e` with a pager that is not `less`: it is given a plain-text
    copy of the transcript (at the same line), removed once the pager is done."""
    log = tmp_path / "t.log"
    log.write_bytes(PTY_OUTPUT)
    record, temp_dir = tmp_path / "record", tmp_path / "tmp"
    record.mkdir()
    temp_dir.mkdir()
    pager = _recording_pager(tmp_path / "bin" / "show", record)
    tmux.start(ccx("view", str(log)), extra_env={"PAGER": str(pager), "TMPDIR": str(temp_dir)})
    tmux.wait_for_screen("prompt$")
    tmux.send("e")
    tmux.wait_screen(lambda s: (record / "got").exists(), "the pager to run")
    args = (record / "args").read_text().split("\n")[:-1]
    assert len(args) == 1 and args[0].startswith(f"{temp_dir}/") and args[0].endswith(".txt")
    assert (record / "got").read_bytes() == PTY_PLAIN
    tmux.wait_screen(lambda s: not any(temp_dir.iterdir()), "the copy to be removed")
    tmux.send("q")
    assert tmux.wait_exit() == 0


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
@pytest.mark.timeout(60)
def test_e_gives_less_the_exact_bytes_with_colours_on(tmux: Tmux, tmp_path: Path) -> None:
    """In the real app, `e` with `less`: the transcript itself, at the last line shown,
    with -R so that less shows the colours (no copy is made)."""
    log = tmp_path / "t.log"
    log.write_bytes(PTY_OUTPUT)
    record, temp_dir = tmp_path / "record", tmp_path / "tmp"
    record.mkdir()
    temp_dir.mkdir()
    less = _recording_pager(tmp_path / "bin" / "less", record)
    tmux.start(ccx("view", str(log)), extra_env={"PAGER": str(less), "TMPDIR": str(temp_dir)})
    tmux.wait_for_screen("prompt$")
    tmux.send("e")
    tmux.wait_screen(lambda s: (record / "got").exists(), "the pager to run")
    assert (record / "args").read_text().split("\n")[:-1] == ["-R", "+5", str(log)]
    assert (record / "got").read_bytes() == PTY_OUTPUT
    assert not any(temp_dir.iterdir())
    tmux.send("q")
    assert tmux.wait_exit() == 0
