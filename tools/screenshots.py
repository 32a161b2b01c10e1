"""Regenerate the SVG screenshots of the real app in screenshots/: python tools/screenshots.py."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's ccx_tui, installed or not

from textual.widgets import Input  # noqa: E402

from ccx_tui.app import CcxApp, make_app  # noqa: E402
from ccx_tui.config import Settings  # noqa: E402
from ccx_tui.engine import SessionInfo, SessionSpec, State  # noqa: E402
from ccx_tui.engine.server.daemon_client import stop_engine  # noqa: E402
from ccx_tui.viewer import ViewerApp  # noqa: E402
from ccx_tui.widgets.dialogs import CreateSessionDialog  # noqa: E402
from ccx_tui.widgets.help import HelpScreen  # noqa: E402
from ccx_tui.widgets.search_bar import SearchBar  # noqa: E402
from ccx_tui.widgets.session_pane import SessionPane, pane_id  # noqa: E402
from ccx_tui.widgets.sidebar import Sidebar  # noqa: E402
from ccx_tui.widgets.transcript_view import TranscriptView  # noqa: E402

SIZE = (120, 36)
VIEW_LINES = 300_000
WAIT = 30.0

# Small scripts run as sessions: their command lines make the tab titles, their output is
# the same on every run.
SCRIPTS = {
    "build": r"""#!/bin/sh
for step in "resolving dependencies" "compiling ccx_tui (42 modules)" \
    "linking" "writing dist/ccx_tui-0.1.0-py3-none-any.whl"; do
  echo "  $step"
done
echo "build finished: 1 artefact, 0 warnings"
""",
    "loadtest": r"""#!/bin/sh
i=0
while [ $i -lt 40 ]; do
  i=$((i + 1))
  echo "batch $i: 50 requests, p50 $((11 + i % 5))ms, p99 $((40 + i % 13))ms, 0 errors"
done
sleep 600
""",
    # Fails on its first run (a flaky test), passes on the next: the restart screenshot.
    "flaky-test": r"""#!/bin/sh
echo "collected 3 items"
echo "tests/test_cart.py::test_add PASSED"
echo "tests/test_cart.py::test_checkout PASSED"
if [ ! -e .flaky-ran ]; then
  touch .flaky-ran
  echo "tests/test_cart.py::test_discount FAILED"
  items="[Item(sku='A-100', qty=2, price=Decimal('19.99')), Item(sku='B-200', qty=1, \
price=Decimal('5.00'))]"
  echo "E   AssertionError: assert Cart(items=$items, discount=Decimal('0.10')).total == \
Decimal('40.48')"
  echo "1 failed, 2 passed in 0.31s"
  exit 1
fi
echo "tests/test_cart.py::test_discount PASSED"
echo "3 passed in 0.29s"
""",
    # stdout and stderr are two pipes, merged in the order their bytes arrive; the gates
    # (files the screenshot script creates once the lines before are in) fix that order.
    "dev-server": r"""#!/bin/sh
e=$(printf '\033')
gate() { while [ ! -e "$1" ]; do sleep 0.01; done; }
echo "${e}[1mdev-server${e}[0m 2.4.1 listening on ${e}[4;36mhttp://127.0.0.1:8000${e}[0m"
echo ""
for n in 1 2 3 4 5 6; do
  echo "${e}[2m12:00:0$n${e}[0m ${e}[32mINFO ${e}[0m GET  /api/items/$n ${e}[32m200${e}[0m 4ms"
done
echo "${e}[2m12:00:07${e}[0m ${e}[33mWARN ${e}[0m GET  /api/items/99 ${e}[33m404${e}[0m 1ms"
gate .stderr-gate
echo "${e}[2m12:00:08${e}[0m ${e}[1;31mERROR${e}[0m POST /api/cart ${e}[1;31m500${e}[0m 12ms" >&2
echo "  Traceback (most recent call last): KeyError: 'sku'" >&2
gate .stdout-gate
echo "${e}[2m12:00:09${e}[0m ${e}[32mINFO ${e}[0m reloading: src/cart.py changed"
echo "${e}[2m12:00:10${e}[0m ${e}[32mINFO ${e}[0m POST /api/cart ${e}[32m201${e}[0m 9ms"
echo "${e}[35m✓${e}[0m ${e}[1mready${e}[0m in 312ms"
sleep 600
""",
}


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll app state until `predicate` holds (never a fixed sleep)."""
    try:
        async with asyncio.timeout(WAIT):
            # The state lives in the app and the engine, which signal no event we could
            # await for each condition; a short poll with a deadline is the honest wait.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise TimeoutError(f"timed out waiting for {what}") from None


def write_scripts(workdir: Path) -> None:
    for name, text in SCRIPTS.items():
        script = workdir / name
        script.write_text(text)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)


def shown(app: CcxApp, info: SessionInfo) -> bool:
    """The session's tab shows all the output its session has produced."""
    pane = app.query_one(f"#{pane_id(info.id)}", SessionPane)
    return pane.view.line_count >= app.engine.get(info.id).lines > 0


def has_lines(app: CcxApp, info: SessionInfo, lines: int) -> Callable[[], bool]:
    return lambda: app.engine.get(info.id).lines == lines


async def shoot_app(workdir: Path, out: Path) -> list[Path]:
    """The main screen with three sessions, then the create dialog and the help screen."""
    # The sidebar's clock is pinned once everything runs, so the durations and the TTL
    # read the same on every run (the engine itself keeps real time).
    pinned: list[float] = []
    app = make_app(
        Settings(data_dir=workdir / "data", kill_grace=0.5),
        [],
        sample_usage=True,
        clock=lambda: pinned[0] if pinned else time.time(),
    )
    cwd = str(workdir)
    shots = []
    async with app.run_test(size=SIZE) as pilot:
        build = await app.engine.start(SessionSpec("./build --release", cwd=cwd))
        await until(lambda: app.engine.get(build.id).state is State.EXITED, "build to exit")
        load = await app.engine.start(SessionSpec("./loadtest --rate 50", cwd=cwd, ttl=900))
        dev = await app.engine.start(SessionSpec("./dev-server --port 8000", cwd=cwd))
        await until(lambda: len(app.query(SessionPane)) == 3, "three tabs")
        await until(lambda: len(app.query_one(Sidebar).sessions) == 3, "three tabs added")
        await pilot.press("3")  # the dev server's tab (the app opens on the first)
        await until(lambda: app._current() == dev.id, "the dev server's tab")
        await until(lambda: app.engine.get(build.id).exit_code == 0, "build to exit 0")
        await until(lambda: app.engine.get(load.id).lines == 40, "the load test's output")
        for lines, gate in [(9, ".stderr-gate"), (11, ".stdout-gate"), (14, None)]:
            await until(has_lines(app, dev, lines), f"{lines} lines")
            if gate is not None:
                await asyncio.to_thread((workdir / gate).touch)
        await until(lambda: shown(app, dev), "the dev server's output on screen")
        started = app.engine.get(load.id).started_at
        assert started is not None
        pinned.append(started + 65)
        sidebar = app.query_one(Sidebar)
        await until(lambda: sidebar.now == pinned[0], "the pinned clock in the sidebar")
        await until(lambda: {load.id, dev.id} <= set(sidebar.usage), "cpu and memory figures")
        await pilot.pause()
        shots.append(Path(app.save_screenshot(filename="main.svg", path=str(out))))

        await pilot.press("c")
        await until(lambda: isinstance(app.screen, CreateSessionDialog), "the create dialog")
        dialog = app.screen
        dialog.query_one("#command", Input).value = "pytest -x tests/"
        dialog.query_one("#cwd", Input).value = "~/src/shop"  # not this machine's path
        dialog.query_one("#ttl", Input).value = "10m"
        dialog.query_one("#env", Input).value = "PYTHONWARNINGS=error"
        dialog.query_one("#command", Input).focus()
        await pilot.pause()
        shots.append(Path(app.save_screenshot(filename="create.svg", path=str(out))))
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, CreateSessionDialog), "dialog closed")

        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.pause()
        shots.append(Path(app.save_screenshot(filename="help.svg", path=str(out))))
        await pilot.press("escape")

        await app.engine.kill_all()  # the engine process would keep them running
        app.exit(0)
    return shots


async def shoot_terminals(workdir: Path, out: Path) -> list[Path]:
    """Terminal sessions: a Python REPL typed into, and `top` on its live screen in
    input mode."""
    app = make_app(Settings(data_dir=workdir / "terminals"), [], sample_usage=True)
    cwd = str(workdir)
    async with app.run_test(size=SIZE) as pilot:
        repl = await app.engine.start(SessionSpec("python3 -q", cwd=cwd, tty=True))
        await until(lambda: b">>> " in repl.transcript.read_bytes(), "the REPL's prompt")
        await pilot.press("i", *"sum(range(10**6))", "enter")
        await until(lambda: b"499999500000" in repl.transcript.read_bytes(), "the answer")
        await pilot.press("ctrl+right_square_bracket")
        top = await app.engine.start(SessionSpec("top -d 1", cwd=cwd, tty=True, name="top"))
        await until(lambda: app.engine.get(top.id).alt_screen is not None, "top's screen")
        await until(lambda: len(app.query_one(Sidebar).sessions) == 2, "top's tab added")
        await pilot.press("2")
        await until(lambda: app._current() == top.id, "top's tab")
        pane = app.query_one(f"#{pane_id(top.id)}", SessionPane)
        screen = pane.terminal_screen
        await until(lambda: screen is not None and "PID" in screen.pyte_screen.display[6], "top")
        await pilot.press("i")
        await until(lambda: app.screen.has_class("-input"), "input mode")
        await pilot.pause()
        shot = Path(app.save_screenshot(filename="terminal.svg", path=str(out)))
        await pilot.press("q")  # top's: input mode
        await until(lambda: app.engine.get(top.id).state.final, "top to quit")
        await app.engine.kill_all()
        app.exit(0)
    return [shot]


async def shoot_restart(workdir: Path, out: Path) -> list[Path]:
    """A failing test run restarted with `r`: the separator between the runs, and `W`
    wrapping the long assertion line."""
    app = make_app(Settings(data_dir=workdir / "restart", tty=False), [], sample_usage=True)
    cwd = str(workdir)
    async with app.run_test(size=SIZE) as pilot:
        info = await app.engine.start(SessionSpec("./flaky-test -x", cwd=cwd))
        await until(lambda: app.engine.get(info.id).exit_code == 1, "the first run to fail")
        await until(lambda: len(app.query_one(Sidebar).sessions) == 1, "its tab")
        await until(lambda: app._current() == info.id, "its tab shown")
        await pilot.press("r")
        await until(lambda: app.engine.get(info.id).run == 2, "run 2")
        await until(lambda: app.engine.get(info.id).exit_code == 0, "the second run to pass")
        pane = app.query_one(f"#{pane_id(info.id)}", SessionPane)
        view = pane.query_one(TranscriptView)
        await until(lambda: view.line_count == 11, "both runs' lines")
        await pilot.press("W")
        await until(lambda: view.wrap and not view.wrap_pending, "wrapped")
        await pilot.pause()
        shot = Path(app.save_screenshot(filename="restart.svg", path=str(out)))
        app.exit(0)
    return [shot]


def write_log(path: Path, lines: int) -> None:
    """A server log, the same bytes every time."""
    levels = ["INFO ", "INFO ", "INFO ", "DEBUG", "INFO ", "WARN ", "INFO ", "INFO "]
    routes = ["/api/items", "/api/cart", "/api/users", "/healthz", "/api/orders"]
    with path.open("w") as f:
        for i in range(1, lines + 1):
            millis = i * 143  # about 7 requests a second
            secs = millis // 1000
            clock = f"{9 + secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
            stamp = f"2025-03-14 {clock}.{millis % 1000:03d}"
            level = levels[i % len(levels)]
            route = routes[i % len(routes)]
            f.write(
                f"{stamp} {level} worker-{i % 8} GET {route}/{i * 7919 % 10007}"
                f" {404 if level == 'WARN ' else 200} {3 + i * 13 % 47}ms req={i:06d}\n"
            )


async def shoot_viewer(workdir: Path, out: Path) -> list[Path]:
    """`ccx-tui view` on a big log: its end is shown while the whole file is indexed."""
    log = workdir / "server.log"
    app = ViewerApp(log, "server.log")
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await until(lambda: view.line_count == VIEW_LINES and not view.showing_tail, "indexed")
        await pilot.pause()
        shot = Path(app.save_screenshot(filename="view.svg", path=str(out)))

        # `/` over the whole file, Enter to the first match, `n` to the next, `&` filter.
        await pilot.press("g", "slash", *"warn .*cart")
        bar = app.query_one(SearchBar)
        await until(lambda: bar.status.endswith("matching lines"), "the search to finish")
        await pilot.press("enter", "n", "ampersand")
        await until(lambda: view.filtering and bar.status.startswith("match 2/"), "the filter")
        # The status line follows the filter at its next tick (4 a second).
        title = app.query_one("#viewer-title")
        await until(lambda: "only matching lines" in str(title.render()), "the status line")
        await pilot.pause()
        search_shot = Path(app.save_screenshot(filename="search.svg", path=str(out)))
        await pilot.press("q")
    return [shot, search_shot]


def to_png(svg: Path) -> Path | None:
    """A PNG beside the SVG, if rsvg-convert is installed (for looking at, not committed)."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        return None
    png = svg.with_suffix(".png")
    subprocess.run([tool, "-o", str(png), str(svg)], check=True)
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="where to write")
    parser.add_argument("--png", action="store_true", help="also write PNGs (rsvg-convert)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ccx-screenshots-") as tmp:
        workdir = Path(tmp)
        write_scripts(workdir)
        write_log(workdir / "server.log", VIEW_LINES)
        try:
            shots = asyncio.run(shoot_app(workdir, out))
            shots += asyncio.run(shoot_terminals(workdir, out))
            shots += asyncio.run(shoot_restart(workdir, out))
        finally:
            stop_engine(workdir / "data")  # whatever went wrong, no engine is left behind
            stop_engine(workdir / "terminals")
            stop_engine(workdir / "restart")
        shots += asyncio.run(shoot_viewer(workdir, out))
    for shot in shots:
        print(shot)
        if args.png and (png := to_png(shot)) is not None:
            print(png)


if __name__ == "__main__":
    main()
