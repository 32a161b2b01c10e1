"""RowMap and WrapScanner: rows of a soft-wrapped view with run separators, checked
against laying every row out one by one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ccx_tui.engine.transcripts.reader import MAX_LINE_BYTES
from ccx_tui.widgets.ansi import line_text
from ccx_tui.widgets.row_map import SEPARATOR, Place, RowMap
from ccx_tui.widgets.wrap_scan import WrapScanner, rows_for


def _layout(heights: list[int], separators: set[int], line_count: int) -> list[Place]:
    """Every row, the slow way."""
    rows: list[Place] = []
    for line in range(line_count + 1):
        if line in separators:
            rows.append(Place(line, SEPARATOR))
        if line < line_count:
            rows += [Place(line, part) for part in range(heights[line])]
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_rows_match_a_full_layout(seed: int) -> None:
    """Every row maps to the line and part a full layout gives, and back."""
    rng = random.Random(seed)
    count = rng.randrange(0, 60)
    heights = [rng.choice([1, 1, 1, 2, 3, 7]) for _ in range(count)]
    separators = {rng.randrange(0, count + 1) for _ in range(rng.randrange(0, 5))}
    row_map = RowMap()
    for line, height in enumerate(heights):
        row_map.add_tall(line, height)
    row_map.set_separators(list(separators))
    rows = _layout(heights, separators, count)
    assert row_map.total(count) == len(rows)
    for row, place in enumerate(rows):
        assert row_map.place(row) == place, row
        if place.part == 0:
            assert row_map.first_row(place.line) == row
    for line in range(count):
        assert row_map.height(line) == heights[line]


def test_a_prefix_counts_only_its_lines() -> None:
    """total(n) counts rows of lines below n only (tall lines measured further on and
    separators below n do not count), with the separator of a run not printed yet."""
    row_map = RowMap()
    row_map.add_tall(2, 3)
    row_map.add_tall(10, 4)
    row_map.set_separators([5, 20])
    assert row_map.total(5) == 5 + 2 + 1  # line 2's two extra rows, run 2's separator
    assert row_map.total(10) == 10 + 2 + 1
    assert row_map.total(11) == 11 + 2 + 3 + 1


def test_the_unfinished_last_line_is_provisional() -> None:
    """The last, unfinished line's height is replaced as it grows, and by the scan's."""
    row_map = RowMap()
    row_map.add_tall(1, 2)
    row_map.set_provisional(4, 3)
    assert row_map.total(5) == 5 + 1 + 2
    row_map.set_provisional(4, 5)
    assert row_map.total(5) == 5 + 1 + 4
    row_map.set_provisional(4, 1)
    assert row_map.total(5) == 5 + 1
    row_map.set_provisional(4, 2)
    row_map.add_tall(4, 6)  # the line is complete now
    assert row_map.total(5) == 5 + 1 + 5
    assert row_map.place(row_map.first_row(4) + 5) == Place(4, 5)


def test_out_of_order_is_refused() -> None:
    row_map = RowMap()
    row_map.add_tall(3, 2)
    with pytest.raises(ValueError):
        row_map.add_tall(3, 2)


def _measure(data: bytes, omitted: int) -> int:
    return line_text(data, omitted=omitted).cell_len


@pytest.mark.parametrize("width", [1, 7, 40, 80])
def test_scanner_finds_exactly_the_tall_lines(tmp_path: Path, width: int) -> None:
    """The scan, in small steps, finds every line taller than a row and only those:
    long lines, tabs, wide characters, colours, invalid bytes, CRs, a line longer than
    a step and one longer than what is shown."""
    rng = random.Random(width)
    pieces = [
        b"",
        b"short",
        b"x" * width,
        b"y" * (width + 1),
        b"\tindented\ttwice",
        b"\x1b[31m" + b"r" * width + b"\x1b[0m",
        "界".encode() * width,
        b"\xff\xfe" * width,
        b"progress 10%\rprogress 100%",
        b"z" * 5000,
        b"w" * (MAX_LINE_BYTES + 300),
    ]
    lines = [rng.choice(pieces) for _ in range(300)]
    path = tmp_path / "f.log"
    path.write_bytes(b"".join(line + b"\n" for line in lines) + b"unfinished" * 50)
    expected = [
        (n, rows_for(_measure(line[:MAX_LINE_BYTES], len(line[MAX_LINE_BYTES:])), width))
        for n, line in enumerate(lines)
    ]
    expected = [(n, rows) for n, rows in expected if rows > 1]
    with path.open("rb") as f:
        scanner = WrapScanner(width, _measure)
        found: list[tuple[int, int]] = []
        size = path.stat().st_size
        for _ in range(10_000):
            step = scanner.scan(f.fileno(), size, max_bytes=4096)
            found += step
            if scanner.pos >= size or (not step and scanner.line == len(lines)):
                break
    assert found == expected
    assert scanner.line == len(lines)
