"""Strips built by fast_strip behave as Textual's: the same results from every
operation, and the same caching (hits return the same object, at most 4 or 16
entries, the oldest dropped first)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import Monochrome
from textual.strip import Strip

from ccx_tui.widgets import fast_strip
from tests.helpers import until
from tests.test_app import screen_text
from tests.test_layout import app_with

RED = Style(color="red", bold=True)
SEGMENTS = [Segment("hello ", RED), Segment("wörld", Style()), Segment(" 日本", Style(italic=True))]


@pytest.fixture
def textual_strips() -> Iterator[None]:
    """Textual's own Strip constructor for the test, the fast one after it."""
    fast_strip.uninstall()
    yield
    fast_strip.install()


def _work(make: Callable[[], Strip]) -> list[object]:
    """Every Strip operation the drawing uses, on a new strip, as plain data."""
    strip = make()
    results = [
        strip.crop(2, 9),
        strip.crop_extend(1, 30, RED),
        strip.adjust_cell_length(25, RED),
        strip.adjust_cell_length(5),
        strip.extend_cell_length(22, RED),
        strip.apply_style(Style(underline=True)),
        strip.apply_filter(Monochrome(), Color(0, 0, 0)),
        strip.apply_offsets(3, 4),
        *strip.divide([3, 8, 13]),
        Strip.join([strip, strip.crop(0, 4)]),
        strip.simplify(),
    ]
    return [(list(r), r.cell_length) for r in results]


def test_every_operation_gives_what_textual_gives(textual_strips: None) -> None:
    theirs = _work(lambda: Strip(SEGMENTS))
    fast_strip.install()
    assert Strip.__init__ is fast_strip._init
    assert _work(lambda: Strip(SEGMENTS)) == theirs


@pytest.mark.parametrize("fast", [False, True], ids=["textual", "fast"])
def test_caches_hit_and_drop_the_oldest_as_textual_does(textual_strips: None, fast: bool) -> None:
    if fast:
        fast_strip.install()
    strip = Strip(SEGMENTS * 3)
    first = strip.crop(0, 3)
    assert strip.crop(0, 3) is first  # a hit: the same object
    for end in range(4, 4 + 16):  # 16 more crops: the crop cache holds 16
        strip.crop(0, end)
    assert strip.crop(0, 3) is not first  # the oldest was dropped
    divided = strip.divide([2])
    for cut in range(3, 7):  # the divide cache holds 4
        assert strip.divide([cut]) is strip.divide([cut])
    assert strip.divide([2]) is not divided
    assert strip.divide([2]) == divided


def _strips() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is Strip)


@pytest.mark.parametrize("fast", [False, True], ids=["textual", "fast"])
def test_a_strip_drawn_whole_is_freed_without_the_collector(
    textual_strips: None, fast: bool
) -> None:
    """Textual's caches keep a strip that `divide` or `crop_extend` returned whole in
    the strip itself, a reference cycle only the full collection frees; ours never
    keep the strip itself, so it goes when its last reference does."""
    if fast:
        fast_strip.install()
    gc.collect()
    gc.disable()
    try:
        before = _strips()
        for _ in range(200):
            strip = Strip(SEGMENTS)
            assert strip.divide([strip.cell_length]) == [strip]  # a line drawn whole
            assert strip.divide([strip.cell_length])[0] is strip
            assert strip.crop_extend(0, strip.cell_length, None) is strip
        del strip
        left = _strips() - before
    finally:
        gc.enable()
    assert left == 0 if fast else left >= 199


async def test_the_app_draws_with_fast_strips(data_dir: Path) -> None:
    fast_strip.uninstall()
    app = app_with(data_dir, "printf 'hello\\n'; sleep 100")
    assert Strip.__init__ is fast_strip._init  # the app installs them
    async with app.run_test(size=(100, 30)):
        await until(lambda: "hello" in screen_text(app), what="the session's output")
        assert type(Strip([])._crop_cache).__name__ == "_Crop"
        await app.engine.kill_all()


def test_a_strip_makes_each_cache_when_it_first_uses_it() -> None:
    fast_strip.install()
    strip = Strip(SEGMENTS)
    made = [attr for attr in fast_strip._CACHES if fast_strip._own_cache(strip, attr)]
    assert made == []  # none yet: most strips use one cache or none
    cropped = strip.crop(0, 4)
    assert strip.crop(0, 4) is cropped  # the cache made on first use holds the crop
    made = [attr for attr in fast_strip._CACHES if fast_strip._own_cache(strip, attr)]
    assert made == ["_crop_cache"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        strip.nothing  # type: ignore[attr-defined]  # noqa: B018
    fast_strip.uninstall()  # strips made before still make their caches
    try:
        assert strip.divide([2]) == [Strip(SEGMENTS).crop(0, 2)]
    finally:
        fast_strip.install()
