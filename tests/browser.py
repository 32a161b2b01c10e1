"""A real `ccx-tui web` and a real headless Chromium (for tests/test_web.py and
tools/web_screenshot.py)."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = (
    "headless Chromium is needed: apt-get install chromium chromium-driver (.ci/run installs them)"
)

# textual-serve's page keeps its xterm.js Terminal in a closure.  Before any of the
# page's scripts run, a setter for `terminal` on Object.prototype catches the object
# its terminal class assigns (the one that also has `websocket_url`), so the test can
# read the screen from xterm's buffer (the page draws on a canvas: no text in the DOM).
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, 'terminal', {
  configurable: true,
  set(value) {
    Object.defineProperty(this, 'terminal',
      {value: value, writable: true, configurable: true, enumerable: true});
    if ('websocket_url' in this) { window.__ccxTerminal = value; }
  },
  get() { return undefined; },
});
"""
READ_SCREEN = """
const term = window.__ccxTerminal;
if (!term) { return null; }
const buffer = term.buffer.active;
const rows = [];
for (let i = 0; i < term.rows; i++) {
  const line = buffer.getLine(buffer.viewportY + i);
  rows.push(line ? line.translateToString(true) : '');
}
return rows.join('\\n');
"""


def poll(check: Callable[[], Any], what: str | Callable[[], str], timeout: float = 20.0) -> Any:
    """Call `check` until it returns something true (returned); fail after `timeout`.

    `what` names the wait in the failure (a callable: computed then, to show the state).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.02)


class WebProcess:
    """`ccx-tui web ARGS` on a free loopback port, its output on a pseudo-terminal
    (`tty=True`: as in a user's terminal, where it prints the login link) or pipes."""

    def __init__(self, args: list[str], home: Path, *, tty: bool = True) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCX_TUI_")}
        env.update(HOME=str(home), PYTHONPATH=str(REPO), LANG="C.UTF-8")
        argv = [sys.executable, "-m", "ccx_tui", "web", "--port", "0", *args]
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        if tty:
            master, slave = pty.openpty()
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=home
            )
            os.close(slave)
            self._reader = threading.Thread(target=self._read_pty, args=(master,), daemon=True)
        else:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=home,
            )
            assert self.proc.stdout is not None
            fd = self.proc.stdout.fileno()
            self._reader = threading.Thread(target=self._read_pipe, args=(fd,), daemon=True)
        self._reader.start()
        found = poll(
            lambda: re.search(r"serving on (https?://[^/\s]+)/", self.output),
            lambda: f"`ccx-tui web` to listen; it said: {self.output!r}",
        )
        self.base_url: str = found.group(1)

    def _read_pty(self, fd: int) -> None:
        with contextlib.suppress(OSError):  # EIO once the last writer is gone
            while chunk := os.read(fd, 65536):
                with self._lock:
                    self._chunks.append(chunk)
        os.close(fd)

    def _read_pipe(self, fd: int) -> None:
        while chunk := os.read(fd, 65536):
            with self._lock:
                self._chunks.append(chunk)

    @property
    def output(self) -> str:
        """Everything it printed so far (stdout and stderr)."""
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace").replace("\r\n", "\n")

    def login_url(self) -> str:
        """The one-time login link it printed (only on a terminal)."""
        found = poll(
            lambda: re.search(r"log in: (\S+/login\?code=\S+)", self.output),
            lambda: f"the login link; it said: {self.output!r}",
        )
        return str(found.group(1))

    def apps(self) -> list[psutil.Process]:
        """The app processes it runs now, one per browser connection."""
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        alive = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
        return alive

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `signum`, wait for the exit and the last output; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return code


def chrome(width: int = 1000, height: int = 600) -> Any:
    """A headless Chromium (Debian's, with its chromedriver) that can read the screen
    of textual-serve's page (see CATCH_TERMINAL).  Raises RuntimeError if missing."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        raise RuntimeError(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # we run as root in CI
        "--disable-dev-shm-usage",
        "--enable-unsafe-swiftshader",  # WebGL without a GPU, for xterm.js's renderer
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The page itself WIDTHxHEIGHT (--window-size also counts the hidden browser UI).
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    _catch_terminal(driver)
    return driver


def _catch_terminal(driver: Any) -> None:
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_TERMINAL})


def new_tab(driver: Any) -> None:
    """Open a tab and switch to it (each tab needs CATCH_TERMINAL of its own)."""
    driver.switch_to.new_window("tab")
    _catch_terminal(driver)


def screen(driver: Any) -> str:
    """The text on the page's terminal now ("" before it exists)."""
    return str(driver.execute_script(READ_SCREEN) or "")


def wait_screen(driver: Any, text: str, timeout: float = 20.0) -> str:
    """Poll the page's terminal until it shows `text`; the screen then."""

    def showing() -> str:
        now = screen(driver)
        return now if text in now else ""

    return str(poll(showing, lambda: f"{text!r} on the page; it shows:\n{screen(driver)}", timeout))


def type_keys(driver: Any, keys: str) -> None:
    """Type `keys` into the page's terminal."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(keys)


@contextlib.contextmanager
def closing(driver: Any) -> Iterator[Any]:
    try:
        yield driver
    finally:
        driver.quit()
