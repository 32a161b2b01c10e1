"""The app's end of `ccx-tui web`: Textual's WebDriver, quitting when the server is gone."""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial
from typing import Any

from textual import messages
from textual.app import App
from textual.drivers.web_driver import WebDriver


def _write_or_drop(fd: int, data: bytes) -> int:
    # With the server gone nobody reads: drop the frames (the app is quitting).
    with contextlib.suppress(BrokenPipeError):
        return os.write(fd, data)
    return len(data)


class ServedDriver(WebDriver):
    """Textual's WebDriver (frames on stdout, keys on stdin, from textual-serve), plus:
    the end of stdin quits the app, as a closed terminal does.

    Textual's own driver ends its input thread at end of input and leaves the app
    running for good, an orphan nobody can reach, when the web server dies without
    asking it to quit (SIGKILL, a crash, the OOM killer).
    """

    def __init__(self, app: App[Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._write = partial(_write_or_drop, self.fileno)

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if not self.exit_event.is_set():  # not the app's own stop: the server is gone
            asyncio.run_coroutine_threadsafe(
                self._app._post_message(messages.ExitApp()), loop=self._loop
            )
