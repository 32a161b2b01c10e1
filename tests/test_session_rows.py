"""The sidebar's rows (SessionRows) draw what a Static holding all of them draws, while
measuring and drawing again only the rows that changed."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Static

from ccx_tui.widgets.sidebar import SessionRows, _joined

WIDTH = 24


class RowsApp(App[None]):
    def compose(self) -> ComposeResult:
        yield SessionRows(id="rows")
        yield Static(id="whole")


def _row(title: str, *lines: str, wraps: bool = False) -> Text:
    text = Text(no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    text.append(f"› {title}", style="bold")
    for line in lines:
        text.append(f"\n   {line}", style="green")
    return text


async def test_rows_redrawn_one_by_one_match_a_static_of_all_of_them() -> None:
    app = RowsApp()
    async with app.run_test(size=(WIDTH, 60)) as pilot:
        rows = app.query_one(SessionRows)
        whole = app.query_one("#whole", Static)
        measured: list[list[int]] = []
        original = SessionRows._measure

        def spy(self: SessionRows, width: int, changed: list[int] | None = None) -> None:
            measured.append(list(range(len(self._rows))) if changed is None else list(changed))
            original(self, width, changed)

        SessionRows._measure = spy  # type: ignore[method-assign]
        try:
            current = [_row(f"s{i}", "running 1s") for i in range(6)]
            rows.set_rows(list(current))
            await pilot.pause()
            steps: list[tuple[str, dict[int, Text], list[int] | None]] = [
                # (what changes, the new rows by index, the rows measured again; None:
                # all of them, as the number of rows changed)
                ("nothing", {}, []),
                ("a row's text, same height", {2: _row("s2", "running 2s")}, [2]),
                ("a row grows a line", {4: _row("s4", "x", "ttl")}, [4]),
                ("a row wraps", {1: _row("s1" + "w" * 40, wraps=True)}, [1]),
                ("it shrinks back", {1: _row("s1", "running 3s")}, [1]),
                ("two rows at once", {0: _row("a", "b"), 5: _row("c")}, [0, 5]),
                ("a row goes", {}, None),  # (row 3: removed below)
            ]
            for what, new, expected in steps:
                for index, row in new.items():
                    current[index] = row
                if expected is None:
                    del current[3]
                measured.clear()
                rows.set_rows(list(current))
                whole.update(_joined(current))
                await pilot.pause()
                if expected is not None:
                    assert measured[:1] == ([expected] if expected else []), what
                fresh = SessionRows()  # measures every row
                await app.mount(fresh)
                fresh.set_rows(list(current))
                await pilot.pause()
                assert rows._starts == fresh._starts, what
                await fresh.remove()
                assert rows.region.height == whole.region.height, what
                height = whole.region.height
                ours = [rows.render_line(y).text for y in range(height)]
                theirs = [whole.render_line(y).text for y in range(height)]
                assert ours == theirs, what
        finally:
            SessionRows._measure = original  # type: ignore[method-assign]
