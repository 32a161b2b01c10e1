"""The views hidden last keep the lines they show, the others drop theirs
(widgets/recently_hidden.py): a switch back to a tab left lately draws from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccx_tui.widgets.recently_hidden import KEEP, RecentlyHidden
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.helpers import until
from tests.test_app import screen_text
from tests.test_layout import app_with

LINES = 60
SIZE = (120, 36)


class _View:
    def __init__(self) -> None:
        self.dropped = 0

    def drop_lines(self) -> None:
        self.dropped += 1


def test_the_oldest_hidden_view_drops_its_lines() -> None:
    a, b, c, d = _View(), _View(), _View(), _View()
    kept = RecentlyHidden(keep=2)
    kept.hidden(a)
    kept.hidden(b)
    assert (a.dropped, b.dropped) == (0, 0)
    kept.hidden(c)
    assert (a.dropped, b.dropped, c.dropped) == (1, 0, 0)
    assert a not in kept and b in kept and c in kept
    kept.hidden(b)  # hidden again (shown in between): the newest now
    kept.hidden(d)
    assert (b.dropped, c.dropped, d.dropped) == (0, 1, 0)
    kept.left(b)  # shown: not to be dropped, and makes room
    kept.hidden(a)
    assert (a.dropped, b.dropped, d.dropped) == (1, 0, 0)
    assert b not in kept and d in kept and a in kept


def _script(k: int) -> str:
    return f'for i in $(seq 1 {LINES}); do echo "@S{k} line $i"; done; sleep 100'


async def test_a_switch_back_to_a_tab_left_lately_reads_no_line(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = KEEP + 2
    loads: list[int] = []
    load_window = TranscriptView._load_window

    def counted(view: TranscriptView, index: int, window_end: int):  # noqa: ANN202
        loads.append(index)
        return load_window(view, index, window_end)

    monkeypatch.setattr(TranscriptView, "_load_window", counted)
    app = app_with(data_dir, *(_script(k) for k in range(1, sessions + 1)))
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == sessions)
        await pilot.press("1")
        for k in range(1, sessions + 1):  # every tab in turn, each drawn whole
            await until(lambda k=k: f"@S{k} line {LINES}" in screen_text(app), what=f"S{k}")
            await pilot.press("right_square_bracket")
        await pilot.press("left_square_bracket")  # `]` from the last tab wrapped to 1
        await until(lambda: f"@S{sessions} line {LINES}" in screen_text(app))
        await pilot.pause()

        views = {view.line_plain(0): view for view in app.query(TranscriptView)}
        view = {k: views[f"@S{k} line 1"] for k in range(1, sessions + 1)}
        hidden = [k for k in range(1, sessions) if view[k].cached_lines]
        dropped = [k for k in range(1, sessions) if not view[k].cached_lines]
        # KEEP of them; one less if the view switched to last was still on the list
        # when the one it replaced was hidden (each widget handles its Show and Hide
        # in its own task).
        assert KEEP - 1 <= len(hidden) <= KEEP and len(hidden) + len(dropped) == sessions - 1
        assert all(view[k].cached_lines <= SIZE[1] for k in hidden)  # a screen's worth

        loads.clear()
        back = max(k for k in hidden if k <= 9)
        await pilot.press(str(back))  # kept: drawn from what it kept
        await until(lambda: f"@S{back} line {LINES}" in screen_text(app))
        await pilot.pause()
        assert loads == []
        await pilot.press(str(dropped[0]))  # dropped: read again
        await until(lambda: f"@S{dropped[0]} line {LINES}" in screen_text(app))
        assert loads
