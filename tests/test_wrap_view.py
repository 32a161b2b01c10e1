"""Soft wrap (`W`) and the separators between a restarted session's runs, in the real
TranscriptView driven by Pilot, over real files and a real engine restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.geometry import Offset
from textual.pilot import Pilot
from textual.selection import Selection

from ccx_tui.app import make_app
from ccx_tui.config import Settings
from ccx_tui.config_file import load_config
from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.transcripts.runs import (
    RUNS_NAME,
    RunEnd,
    RunStart,
    read_runs,
    record_end,
    record_start,
    separator_label,
)
from ccx_tui.engine.transcripts.transcript import STDOUT, TranscriptWriter
from ccx_tui.errors import ConfigError
from ccx_tui.viewer import ViewerApp
from ccx_tui.widgets.transcript_view import TranscriptView
from ccx_tui.widgets.wrap_scan import rows_for
from tests.helpers import until
from tests.test_transcript_view import SIZE, ViewApp, rows, wait_for


async def _wrapped(pilot: Pilot[None], view: TranscriptView) -> None:
    """Turn wrap on with its key and wait until every line is measured."""
    await pilot.press("W")
    assert view.wrap
    await wait_for(pilot, lambda: not view.wrap_pending)
    await pilot.pause()


async def test_wrap_shows_a_long_line_on_several_rows(tmp_path: Path) -> None:
    """`W` wraps a long line onto rows of the text's width, the lines after it move
    down, nothing scrolls sideways; `W` again puts it back on one row."""
    path = tmp_path / "f.log"
    long = "".join(chr(ord("a") + i % 26) for i in range(200))
    path.write_text(f"first\n{long}\nafter\n")
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 3)
        assert rows(view)[1] == long[: view.scrollable_content_region.width]
        await _wrapped(pilot, view)
        width = view.text_size[0]
        parts = [long[i : i + width] for i in range(0, len(long), width)]
        assert rows(view)[: 2 + len(parts)] == ["first", *parts, "after"]
        assert view.virtual_size.width <= view.scrollable_content_region.width
        await pilot.press("right")
        assert view.scroll_x == 0
        await pilot.press("W")
        assert rows(view)[:3] == ["first", long[: view.scrollable_content_region.width], "after"]


async def test_wrap_keeps_the_top_line_and_reaches_the_true_bottom(tmp_path: Path) -> None:
    """Wrapping a long file keeps the line at the top of the screen there; `G` then
    shows the end of the last (long) line on the last row, and `g` the first line."""
    path = tmp_path / "f.log"
    with path.open("w") as f:
        for i in range(5000):
            f.write(f"line {i} " + ("x" * 300 if i % 10 == 0 else "") + "\n")
        f.write("end " + "y" * 250 + " LAST\n")
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 5001)
        await pilot.press("g")
        view.scroll_to(y=2503, animate=False, immediate=True)
        await pilot.pause()
        assert rows(view)[0].startswith("line 2503")
        await _wrapped(pilot, view)
        assert rows(view)[0].startswith("line 2503")
        await pilot.press("G")
        await wait_for(pilot, lambda: rows(view)[-1].endswith("LAST"))
        assert view.following
        await pilot.press("g")
        assert rows(view)[0] == "line 0 " + "x" * (view.text_size[0] - 7)
        # Line k takes ceil(len / width) rows: the long ones 4 at 78 columns.
        width = view.text_size[0]
        layout = [
            n
            for n in range(40)
            for _ in range(rows_for(len(f"line {n} ") + (300 if n % 10 == 0 else 0), width))
        ]
        first, last = view.visible_lines() or (-1, -1)
        assert (first, last) == (0, layout[view.scrollable_content_region.height - 1])


async def test_wrap_follows_a_growing_file_and_an_unfinished_line(tmp_path: Path) -> None:
    """While following with wrap on, new long lines and a long unfinished last line
    (a prompt) show whole at the bottom."""
    path = tmp_path / "f.log"
    path.write_text("start\n")
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 1)
        await _wrapped(pilot, view)
        with path.open("a") as f:
            f.write("long " + "z" * 300 + " TAIL1\n")
        view.refresh_source()
        await wait_for(pilot, lambda: "".join(rows(view)).endswith("z" * 300 + " TAIL1"))
        with path.open("a") as f:
            f.write("prompt " + "q" * 200 + " ANSWER? ")
        view.refresh_source()
        prompt = "prompt " + "q" * 200 + " ANSWER?"
        await wait_for(pilot, lambda: "".join(rows(view)).endswith(prompt))
        assert view.following


async def test_a_narrower_window_wraps_again(tmp_path: Path) -> None:
    """A resize measures the lines again at the new width."""
    path = tmp_path / "f.log"
    path.write_text("a" * 150 + "\nend\n")
    app = ViewApp(path)
    async with app.run_test(size=(200, 24)) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 2)
        await _wrapped(pilot, view)
        assert rows(view)[:2] == ["a" * 150, "end"]
        await pilot.resize_terminal(60, 24)
        width = 60 - view.styles.scrollbar_size_vertical
        await wait_for(pilot, lambda: rows(view)[:2] == ["a" * width, "a" * width])
        assert rows(view)[3] == "end"


async def test_wrapped_selection_copies_the_line_without_breaks(tmp_path: Path) -> None:
    """Selecting the rows of a wrapped line copies it as one line."""
    path = tmp_path / "f.log"
    long = "0123456789" * 20
    path.write_text(f"{long}\nnext\n")
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 2)
        await _wrapped(pilot, view)
        selected = view.get_selection(Selection(Offset(0, 0), Offset(4, 3)))
        assert selected is not None
        assert selected[0] == long + "\nnext"


@pytest.fixture
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def _two_runs(tmp_path: Path) -> Path:
    """A session directory whose transcript has two runs, as the engine records them."""
    directory = tmp_path / "s1"
    directory.mkdir()
    writer = TranscriptWriter(directory)
    writer.write(STDOUT, b"run one line\n" * 3)
    record_start(directory, RunStart(1, 0, 0, 1_700_000_000.0))
    record_end(directory, RunEnd(1, 1_700_000_005.0, 3, None, None))
    record_start(directory, RunStart(2, writer.offset, 3, 1_700_000_010.0))
    writer.write(STDOUT, b"run two line\n" * 2)
    writer.close()
    return writer.path


async def test_separator_between_runs(tmp_path: Path, utc: None) -> None:
    """A separator row above the second run's first line says when it started and how
    the first ended; line numbers, g/G and search moves are not shifted by it."""
    path = _two_runs(tmp_path)
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 5)
        await wait_for(pilot, lambda: any("run 2" in r for r in rows(view)))
        shown = rows(view)
        assert shown[:3] == ["run one line"] * 3
        assert shown[3].startswith("── run 2 started 22:13:30 · run 1 exited 3 ──")
        assert shown[4:6] == ["run two line"] * 2
        view.show_line_numbers = True
        await pilot.pause()
        assert rows(view)[4].split() == ["4", "run", "two", "line"]
        view.goto_line(3)
        assert view.cursor_line == 3
        assert view.current_line() == 3
        # A third run that has printed nothing yet shows its separator at once.
        record_end(path.parent, RunEnd(2, 1_700_000_020.0, None, 15, "restarted"))
        record_start(path.parent, RunStart(3, path.stat().st_size, 5, 1_700_000_021.0))
        with path.open("ab"):
            pass
        os.utime(path)
        path.write_bytes(path.read_bytes() + b"run three\n")
        view.refresh_source()
        await wait_for(pilot, lambda: any("run 3" in r for r in rows(view)))
        assert any("run 2 killed by SIGTERM (restarted)" in r for r in rows(view))


def test_separator_labels() -> None:
    start = RunStart(4, 0, 0, 0.0)
    assert "run 3 exited 0" in separator_label(start, RunEnd(3, 0.0, 0, None, None))
    assert separator_label(start, RunEnd(3, 0.0, None, None, "cannot start sh")).endswith(
        "run 3 ended (cannot start sh)"
    )
    assert separator_label(start, None).startswith("run 4 started ")


def test_torn_runs_file_is_skipped(tmp_path: Path) -> None:
    """A line torn by a crash, or anything not ours, is skipped."""
    (tmp_path / RUNS_NAME).write_bytes(
        b'{"start":1,"offset":0,"line":0,"at":1}\n{"start":2,"off\n[1,2]\n\xff\n'
        b'{"end":1,"at":2,"exit_code":"x"}\n{"start":2,"offset":9,"line":1,"at":3}\n'
    )
    starts, ends = read_runs(tmp_path)
    assert [s.run for s in starts] == [1, 2]
    assert ends == {}


async def test_engine_records_where_each_run_begins(tmp_path: Path) -> None:
    """A restarted session's runs file names each run's first byte and line and how the
    run before it ended; the transcript holds only the program's bytes."""
    config = EngineConfig(data_dir=tmp_path / "data", max_sessions=4)
    async with LocalEngine(config) as engine:
        info = await engine.start(
            SessionSpec(command="printf 'a\\nb\\npartial'; exit 3", tty=False)
        )
        await engine.wait(info.id)
        await engine.restart(info.id)
        await engine.wait(info.id)
        final = engine.get(info.id)
    assert final.state is State.EXITED
    data = final.transcript.read_bytes()
    assert data == b"a\nb\npartial\na\nb\npartial"
    starts, ends = read_runs(final.directory)
    assert [(s.run, s.offset, s.line) for s in starts] == [(1, 0, 0), (2, 12, 3)]
    assert ends[1].exit_code == 3 and ends[2].exit_code == 3
    assert data[starts[1].offset :].startswith(b"a\nb")
    lines = [json.loads(raw) for raw in (final.directory / RUNS_NAME).read_text().splitlines()]
    assert len(lines) == 4


def test_snapshot_wrap_and_separator(snap_compare: Any, tmp_path: Path, utc: None) -> None:
    path = _two_runs(tmp_path)
    with path.open("ab") as f:
        f.write(b"wrapped: " + b"0123456789" * 20 + b" end\n")

    async def wrap(pilot: Pilot[Any]) -> None:
        view = pilot.app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 6)
        await _wrapped(pilot, view)
        await wait_for(pilot, lambda: any("run 2" in r for r in rows(view)))

    assert snap_compare(ViewApp(path), terminal_size=SIZE, run_before=wrap)


async def test_app_restart_draws_the_separator_and_wraps(data_dir: Path) -> None:
    """In the app: `r` on an ended session runs it again; its tab shows the separator
    above the new run's output, with how the first run ended; `W` wraps that tab."""
    app = make_app(
        Settings(data_dir=data_dir, kill_grace=0.3, tty=False),
        ["echo out-$(date +%N); echo " + "w" * 150 + "; exit 4"],
        sample_usage=False,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: len(app._sidebar.sessions) == 1, what="the tab")
        (session_id,) = app._open
        await until(lambda: app.engine.get(session_id).state is State.EXITED, what="exit")
        view = app._panes[session_id].query_one(TranscriptView)
        await until(lambda: view.line_count == 2, what="the first run's lines")
        await pilot.press("r")
        await until(lambda: app.engine.get(session_id).run == 2, what="run 2")
        await until(lambda: app.engine.get(session_id).state is State.EXITED, what="exit 2")

        def run_2_shown() -> bool:
            # The separator can be drawn a pass before run 2's output is indexed (it
            # comes from runs.jsonl): wait for both, then check where each sits.
            shown = rows(view)
            return (
                any("run 1 exited 4" in r for r in shown)
                and sum(r.startswith("out-") for r in shown) == 2
            )

        await until(run_2_shown, what=lambda: "\n".join(rows(view)))
        shown = rows(view)
        separator = next(i for i, r in enumerate(shown) if "── run 2 started" in r)
        assert shown[separator - 1].startswith("www") and shown[separator + 1].startswith("out-")
        await pilot.press("W")
        await until(lambda: view.wrap and not view.wrap_pending, what="wrapped")
        width = view.text_size[0]
        await until(lambda: ("w" * width) in rows(view))
        assert view.virtual_size.width <= view.scrollable_content_region.width


def test_wrap_setting_from_flag_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wrap is off by default; `--wrap`, CCX_TUI_WRAP and `wrap` in [defaults] turn it on,
    in that order of precedence; a bad value is a clear error."""
    monkeypatch.delenv("CCX_TUI_WRAP", raising=False)
    assert Settings.resolve(data_dir=str(tmp_path)).wrap is False
    config = tmp_path / "ccx.toml"
    config.write_text("[defaults]\nwrap = true\n")
    file = load_config(config).defaults
    assert Settings.resolve(data_dir=str(tmp_path), file=file).wrap is True
    monkeypatch.setenv("CCX_TUI_WRAP", "0")
    assert Settings.resolve(data_dir=str(tmp_path), file=file).wrap is False
    assert Settings.resolve(data_dir=str(tmp_path), wrap=True, file=file).wrap is True
    monkeypatch.setenv("CCX_TUI_WRAP", "sometimes")
    with pytest.raises(ConfigError, match="bad CCX_TUI_WRAP"):
        Settings.resolve(data_dir=str(tmp_path))
    config.write_text("[defaults]\nwrap = 'yes'\n")
    with pytest.raises(ConfigError, match="ccx.toml:2"):
        load_config(config)


async def test_a_truncated_file_is_wrapped_afresh(tmp_path: Path) -> None:
    """A file truncated and rewritten while wrapped is measured again: the rows of
    its old long lines do not linger."""
    path = tmp_path / "f.log"
    path.write_text("x" * 500 + "\nend\n")
    app = ViewApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 2)
        await _wrapped(pilot, view)
        assert rows(view)[7] == "end"
        path.write_text("short\nlines\n")
        view.refresh_source()
        await wait_for(pilot, lambda: rows(view)[:3] == ["short", "lines", ""])
        await wait_for(pilot, lambda: not view.wrap_pending)
        assert view.virtual_size.height == 2


async def test_wrap_setting_and_W_apply_to_every_tab(data_dir: Path) -> None:
    """`wrap = true` opens every tab wrapped; `W` in one tab unwraps them all, the tabs
    in the background too, and a tab opened later follows the last choice."""
    long = "printf 'x%.0s' $(seq 1 300); echo"
    app = make_app(
        Settings(data_dir=data_dir, kill_grace=0.3, tty=False, wrap=True),
        [long, long],
        sample_usage=False,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: len(app._sidebar.sessions) == 2, what="both tabs")
        first, second = (app._panes[s].view for s in app._open)
        await until(lambda: first.line_count == 1 and not first.wrap_pending, what="wrapped")
        width = first.text_size[0]
        await until(lambda: rows(first)[:2] == ["x" * width, "x" * width], what="two rows")
        assert second.wrap
        await pilot.press("2")  # measured once first shown
        await until(lambda: app._current() == app._open[1])
        await until(lambda: second.line_count == 1 and not second.wrap_pending)
        await until(lambda: rows(second)[:2] == ["x" * width, "x" * width], what="wrapped")
        await pilot.press("W")
        await until(lambda: not first.wrap and not second.wrap, what="all unwrapped")
        await until(lambda: rows(second)[1] == "", what="one row")
        await pilot.press("1")
        await until(lambda: app._current() == app._open[0])
        await until(lambda: rows(first)[1] == "", what="the first tab on one row too")
        info = await app.engine.start(SessionSpec("echo third", tty=False))
        await until(lambda: info.id in app._panes, what="a third tab")
        assert not app._panes[info.id].view.wrap
        await app.engine.kill_all()


async def test_viewer_opens_wrapped(tmp_path: Path) -> None:
    """`ccx-tui view --wrap FILE` (ViewerApp with wrap) shows long lines wrapped."""
    path = tmp_path / "f.log"
    path.write_text("y" * 200 + "\n")
    app = ViewerApp(path, "f.log", wrap=True)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 1 and not view.wrap_pending)
        width = view.text_size[0]
        await wait_for(pilot, lambda: rows(view)[:2] == ["y" * width, "y" * width])
