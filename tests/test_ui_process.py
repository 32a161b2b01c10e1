"""A UI process sets itself up for drawing (ui_process.py): the app and the viewer."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.app import App
from textual.strip import Strip

from ccx_tui.viewer import ViewerApp
from ccx_tui.widgets import fast_strip, ui_process
from tests.test_layout import app_with


@pytest.fixture
def untuned() -> Iterator[None]:
    """Python's switch interval and Textual's Strips, as a process starts."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    fast_strip.uninstall()
    yield
    sys.setswitchinterval(interval)
    fast_strip.install()


@pytest.mark.parametrize("make", ["app", "viewer"])
def test_each_ui_sets_the_process_up(
    untuned: None, data_dir: Path, tmp_path: Path, make: str
) -> None:
    original_init = Strip.__init__
    log = tmp_path / "log.txt"
    log.write_text("x\n")
    makers: dict[str, Callable[[], App[object]]] = {
        "app": lambda: app_with(data_dir),
        "viewer": lambda: ViewerApp(log, "log"),
    }
    makers[make]()
    assert sys.getswitchinterval() == ui_process.SWITCH_INTERVAL
    assert Strip.__init__ is not original_init  # the fast constructor
