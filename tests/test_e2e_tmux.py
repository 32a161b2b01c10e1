"""End to end: the real `ccx-tui` command in a private tmux server, driven by keys."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import marked_processes, wait_gone

TMUX = shutil.which("tmux")
pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
    pytest.mark.timeout(60),
]

WIDTH, HEIGHT = 120, 36
REPO = Path(__file__).resolve().parent.parent
# The commands print text that their own command lines do not contain ("ALPHA%s" prints
# "ALPHA-OUT"), so tab titles and the sidebar cannot satisfy a wait for their output.
ALPHA = "printf 'ALPHA%s\\n' -OUT; sleep 1000"
ROWS = "for i in 1 2 3; do echo row-$i; done; sleep 1000"


class TmuxError(Exception):
    pass


class Tmux:
    """One tmux server on a private socket, one pane running the command under test."""

    def __init__(self, tmp_path: Path) -> None:
        assert TMUX is not None
        self.tmux = TMUX
        self.socket = f"ccx-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.status_file = tmp_path / "exit-status"
        self.home = tmp_path / "home"
        self.home.mkdir()

    def run(self, *args: str) -> str:
        # -f /dev/null: a user's ~/.tmux.conf must not change what the pane looks like.
        proc = subprocess.run(
            [self.tmux, "-u", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if proc.returncode:
            raise TmuxError(f"tmux {' '.join(args[:1])} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        """Run `argv` in a WIDTHxHEIGHT pane with a fixed environment (plus `extra_env`);
        record its exit."""
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            **(extra_env or {}),
        }
        # `env -i` so no CCX_TUI_* (or anything else) leaks in from the caller's shell;
        # the `sh` around it writes the app's exit status where the test can read it.
        wrapped = [
            "sh",
            "-c",
            '"$@"; echo $? > "$0"',
            str(self.status_file),
            "env",
            "-i",
            *[f"{key}={value}" for key, value in env.items()],
            *argv,
        ]
        # One tmux command line, so no server can exit (empty) between the steps;
        # remain-on-exit keeps the pane after the app exits, to see that it did.
        self.run(
            "start-server",
            ";",
            "set-option",
            "-g",
            "exit-empty",
            "off",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            # OSC 52 from the app lands in a tmux paste buffer: `y` can be checked.
            "set-option",
            "-g",
            "set-clipboard",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "-c",
            str(self.home),
            "--",
            *wrapped,
        )

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "e2e")

    def scrollback(self) -> str:
        """The pane's history and screen (once the pane is dead, tmux moves what the
        process printed last into its history)."""
        return self.run("capture-pane", "-p", "-S", "-", "-t", "e2e")

    def send(self, *keys: str) -> None:
        self.run("send-keys", "-t", "e2e", *keys)

    def pane_dead(self) -> bool:
        """True once the pane's process has exited (or the server is gone with it)."""
        try:
            return self.run("display-message", "-p", "-t", "e2e", "#{pane_dead}").strip() == "1"
        except TmuxError:
            return True  # no pane, no server: the process is long gone

    def wait_screen(self, check: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        """Poll the pane until `check(screen)` holds; fail showing the last screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
            time.sleep(0.05)

    def wait_for_screen(self, text: str, timeout: float = 10.0) -> str:
        return self.wait_screen(lambda screen: text in screen, repr(text), timeout)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the pane's process to end; its exit status."""
        deadline = time.monotonic() + timeout
        while not (self.pane_dead() and self.status_file.exists()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the app did not exit; the screen:\n{self.screen()}")
            time.sleep(0.05)
        return int(self.status_file.read_text().strip())

    def close(self) -> None:
        subprocess.run(
            [self.tmux, "-L", self.socket, "kill-server"], capture_output=True, timeout=10
        )
        # tmux 3.3 leaves its socket file behind.
        tmpdir = os.environ.get("TMUX_TMPDIR", "/tmp")
        Path(tmpdir, f"tmux-{os.getuid()}", self.socket).unlink(missing_ok=True)


def ccx(*args: str) -> list[str]:
    return [sys.executable, "-m", "ccx_tui", *args]


def sessions(data_dir: Path) -> dict[str, dict[str, Any]]:
    """{command: session} as `ccx-tui sessions --json` lists them."""
    proc = subprocess.run(
        ccx("sessions", "--data-dir", str(data_dir), "--json"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=REPO,
    )
    return {item["spec"]["command"]: item for item in json.loads(proc.stdout)}


def rows(screen: str) -> list[str]:
    return screen.split("\n")[:HEIGHT]


def sidebar(screen: str) -> list[str]:
    """The sidebar's rows (right of its border)."""
    return [line.rpartition("▏")[2].strip() for line in rows(screen)]


def shows_tab(output: str, title: str) -> Callable[[str], bool]:
    """The tab with `output` is shown and the sidebar marks `title` as selected.

    The sidebar's mark is drawn after the app has focused the new tab's view; waiting for
    it too keeps the next key out of the window in which the previous switch's stale
    `TabPane.Focused` can still switch back (a race in the app, reported separately).
    """
    return lambda screen: (
        output in screen and any(row.startswith(f"›▶ {title}") for row in sidebar(screen))
    )


def test_run_kill_restart_quit(tmux: Tmux, tmp_path: Path) -> None:
    """Two sessions from the command line: both outputs show, `x` kills one (its tab and
    the sidebar say so), `r` runs it again, `q` `y` quits and leaves no process behind."""
    data = tmp_path / "data"
    tmux.start(ccx("--data-dir", str(data), "--kill-grace", "0.5", ALPHA, ROWS))

    # The first tab is active first (the second opens behind it).
    tmux.wait_for_screen("ALPHA-OUT")
    tmux.send("2")
    tmux.wait_for_screen("row-3")
    assert "ALPHA-OUT" not in tmux.screen()
    found = sessions(data)
    alpha, numbered = found[ALPHA]["id"], found[ROWS]["id"]
    # Markers are "<id>.<run>": both commands run, so the final check below means something.
    assert marked_processes(f"{alpha}.1")
    assert marked_processes(f"{numbered}.1")

    tmux.send("1")
    tmux.wait_screen(shows_tab("ALPHA-OUT", "printf"), "tab 1")
    tmux.send("]")
    tmux.wait_screen(shows_tab("row-1", "echo row-$i (loop)"), "the next tab")
    tmux.send("[")
    screen = tmux.wait_screen(shows_tab("ALPHA-OUT", "printf"), "the previous tab")
    assert "running · run 1" in screen

    tmux.send("x")
    screen = tmux.wait_for_screen("killed · run 1")  # the status bar under the output
    tab_bar = rows(screen)[0]
    assert "■ printf" in tab_bar, tab_bar
    assert "▶ echo row-$i (loop)" in tab_bar, tab_bar  # the other one runs on
    assert any(row.startswith("killed") for row in sidebar(screen)), screen
    assert wait_gone(f"{alpha}.") == []
    assert marked_processes(f"{numbered}.")

    tmux.send("r")
    screen = tmux.wait_screen(
        lambda s: "running · run 2" in s and s.count("ALPHA-OUT") == 2,
        "the second run's output under the first",
    )
    assert "▶ printf" in rows(screen)[0]
    assert marked_processes(f"{alpha}.2")

    tmux.send("q")
    tmux.wait_for_screen("still running or queued")  # the confirm dialog
    tmux.send("k")  # kill them and quit
    assert tmux.wait_exit() == 0
    for session_id in (alpha, numbered):
        assert wait_gone(f"{session_id}.") == [], f"{session_id} left processes behind"
    after = sessions(data)
    assert {command: item["state"] for command, item in after.items()} == {
        ALPHA: "killed",
        ROWS: "killed",
    }
    assert after[ALPHA]["run"] == 2


def test_view_big_file(tmux: Tmux, tmp_path: Path) -> None:
    """`ccx-tui view` opens a 200,000-line file at its end; `g` goes to line 1, `G` back
    to the end, `q` quits."""
    log = tmp_path / "big.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(1, 200_001)))
    tmux.start(ccx("view", "--data-dir", str(tmp_path / "data"), str(log)))

    def bottom_is_last_line(screen: str) -> bool:
        # The last two rows are the title bar and the footer; the last line sits above.
        return rows(screen)[HEIGHT - 3].split()[:2] == ["line", "200000"]

    def top_is_first_line(screen: str) -> bool:
        return rows(screen)[0].split()[:2] == ["line", "1"]

    screen = tmux.wait_screen(bottom_is_last_line, "line 200000 at the bottom")
    assert str(log) in rows(screen)[HEIGHT - 2]
    tmux.send("g")
    screen = tmux.wait_screen(top_is_first_line, "line 1 at the top")
    assert rows(screen)[1].split()[:2] == ["line", "2"]
    tmux.send("G")
    tmux.wait_screen(bottom_is_last_line, "line 200000 at the bottom again")
    tmux.send("q")
    assert tmux.wait_exit() == 0


def test_search_filter_and_pager_in_view(tmux: Tmux, tmp_path: Path) -> None:
    """In `ccx-tui view` of a 200,000-line file: `/` finds 200 error lines over the whole
    file (smart case), Enter and `n` step through them (`match i/N`), `e` opens $PAGER at
    the cursor's line and comes back, `&` shows only the matching lines with their
    numbers, Esc shows everything again."""
    log = tmp_path / "big.log"
    log.write_bytes(
        b"".join(
            b"ERROR code=%d\n" % i if i % 1000 == 500 else b"line %d\n" % i
            for i in range(1, 200_001)
        )
    )
    pager_args = tmp_path / "pager-args"
    (tmp_path / "bin").mkdir()
    pager = tmp_path / "bin" / "less"  # a stand-in `less` that records how it was called
    pager.write_text(f'#!/bin/sh\necho "$@" > {pager_args}\n')
    pager.chmod(0o755)
    tmux.start(ccx("view", str(log)), extra_env={"PAGER": str(pager)})
    tmux.wait_screen(lambda s: "line 200000" in s, "the end of the file")

    tmux.send("/")
    tmux.wait_for_screen("regex (smart case)")  # the bar has the keyboard now
    tmux.send("-l", "error code=")
    tmux.wait_for_screen("200 matching lines")
    tmux.send("Enter")  # from the top of the screen on: wraps to the first match
    screen = tmux.wait_for_screen("match 1/200")
    assert "ERROR code=500" in screen
    tmux.send("n")
    screen = tmux.wait_for_screen("match 2/200")
    assert "ERROR code=1500" in screen

    tmux.send("e")
    tmux.wait_screen(lambda s: pager_args.exists(), "the pager to run")
    # less gets the transcript itself, with -R so its colours show
    assert pager_args.read_text().split() == ["-R", "+1500", str(log)]
    tmux.wait_for_screen("match 2/200")  # back in the app, at the same place

    tmux.send("&")

    def only_matches(screen: str) -> bool:
        # Polled as a whole: a capture can catch the terminal halfway through a redraw.
        shown = [row for row in rows(screen)[: HEIGHT - 3] if row.strip()]
        return len(shown) == 33 and all("ERROR code=" in row for row in shown)

    screen = tmux.wait_screen(only_matches, "only matching lines")
    shown = [row for row in rows(screen)[: HEIGHT - 3] if row.strip()]
    assert any(row.split()[:2] == ["1500", "ERROR"] for row in shown), screen

    tmux.send("Escape")
    screen = tmux.wait_screen(lambda s: "match" not in s and "line 1499" in s, "all lines")
    tmux.send("q")
    assert tmux.wait_exit() == 0


def test_ccx_toml_sessions_and_a_crash_loop(tmux: Tmux, tmp_path: Path) -> None:
    """`ccx-tui` in a directory with a ccx.toml: its sessions come up by name, a failing
    one is restarted with backoff until it gives up (the tab's ↻ count and the sidebar
    show it), an autostart = false one waits until `r`; no process is left after `q`."""
    data = tmp_path / "data"
    (tmux.home / "ccx.toml").write_text(
        f"""
[defaults]
data_dir = "{data}"
kill_grace = 0.5

[[session]]
name = "ticker"
command = "printf 'TICK%s\\\\n' -OUT; sleep 1000"

[[session]]
name = "flaky"
command = "printf 'FLAKY%s\\\\n' -RUN; exit 3"
restart = "on-failure"
max_restarts = 2
restart_delay = 0.2

[[session]]
name = "later"
command = "printf 'LATER%s\\\\n' -OUT"
autostart = false
"""
    )
    tmux.start(ccx())
    # Found implicitly: shown and asked about first (test_trust.py), then it runs.
    tmux.wait_for_screen("[y/N]")
    tmux.send("y", "Enter")
    screen = tmux.wait_screen(
        lambda s: "gave up after 2 restarts" in s, "the crash loop to give up", timeout=20
    )
    tab_bar = rows(screen)[0]
    assert "ticker" in tab_bar and "flaky ↻2" in tab_bar and "later" in tab_bar, tab_bar
    tmux.send("2")
    screen = tmux.wait_screen(lambda s: s.count("FLAKY-RUN") == 3, "three runs of flaky")
    tmux.send("3")
    tmux.wait_for_screen("not started (r to start)")
    tmux.send("r")
    tmux.wait_for_screen("LATER-OUT")
    found = sessions(data)
    ticker = next(item for item in found.values() if item["spec"]["name"] == "ticker")
    assert marked_processes(f"{ticker['id']}.1")
    tmux.send("q")
    tmux.wait_for_screen("still running or queued")
    tmux.send("k")  # kill them and quit
    assert tmux.wait_exit() == 0
    assert wait_gone(f"{ticker['id']}.") == []


def test_procfile_copy_save_and_timestamps(tmux: Tmux, tmp_path: Path) -> None:
    """`--procfile`: each entry is a named session; `t` shows arrival times, `y` copies
    the last line shown (OSC 52, into tmux's paste buffer), `s` Enter saves the
    transcript as plain text in the current directory."""
    data = tmp_path / "data"
    procfile = tmux.home / "Procfile"
    procfile.write_text(
        "# two processes\n"
        "web: printf 'WEB%s\\n' -UP; printf 'copy me\\n'; sleep 1000\n"
        "worker: printf 'WORKER%s\\n' -UP; sleep 1000\n"
    )
    tmux.start(ccx("--data-dir", str(data), "--procfile", str(procfile)))
    # It opens on the first entry's tab; the second opens behind it.
    tmux.wait_screen(
        lambda s: "copy me" in s and "web" in rows(s)[0] and "worker" in rows(s)[0],
        "both tabs, the web one shown",
    )
    tmux.send("2")
    tmux.wait_for_screen("WORKER-UP")
    tmux.send("1")
    tmux.wait_for_screen("copy me")

    # The rows before `t` (read after sending it, they could already have times).
    left = [row.split("▏")[0].rstrip() for row in rows(tmux.screen())]
    assert "copy me" in left
    tmux.send("t")
    tmux.wait_screen(
        lambda s: any(
            r.split("▏")[0].rstrip().endswith(" copy me") and r[2] == r[5] == ":" for r in rows(s)
        ),
        "HH:MM:SS before each line",
    )
    tmux.send("y")
    tmux.wait_for_screen("copied line 2")
    assert tmux.run("show-buffer") == "copy me"

    tmux.send("s")
    tmux.wait_for_screen("Save the transcript")
    tmux.send("Enter")
    saved = tmux.home / "web.log"
    tmux.wait_screen(lambda s: saved.exists() and "saved transcript" in s, "the saved file")
    # Plain text by default: the terminal's CRLF is one newline.
    assert saved.read_bytes() == b"WEB-UP\ncopy me\n"

    tmux.send("q")
    tmux.wait_for_screen("still running or queued")
    tmux.send("k")  # kill them and quit
    assert tmux.wait_exit() == 0


def test_a_key_right_after_a_tab_switch_reaches_the_new_tab(tmux: Tmux, tmp_path: Path) -> None:
    """Regression: `1` then `g` at once, while another tab floods.  The keyboard used to
    move to the new tab only when TabbedContent's own message arrived (100 ms and more
    under load), so `g` went to the tab just left.  Now `1` moves it at once: tab 1
    shows its first line."""
    tmux.start(
        ccx("--data-dir", str(tmp_path / "data"), "seq 1 200000; sleep 1000", "yes flood-line")
    )
    tmux.wait_for_screen("flood-line")
    for _ in range(3):
        tmux.send("1", "g")  # one send-keys: the two keys arrive back to back
        tmux.wait_screen(lambda s: rows(s)[2].split("▏")[0].strip() == "1", "line 1 on top")
        tmux.send("G", "2")
        tmux.wait_screen(lambda s: "flood-line" in rows(s)[2], "the flood tab again")
    tmux.send("q")
    tmux.wait_for_screen("still running or queued")
    tmux.send("k")  # kill them and quit
    assert tmux.wait_exit() == 0


def test_a_hangup_detaches_and_kill_by_id_ends_the_session(tmux: Tmux, tmp_path: Path) -> None:
    """When the terminal goes away (tmux killed, ssh dropped: SIGHUP) the app exits and
    its session runs on in the engine process (round 1 killed it; before that the app
    hung in Textual's shutdown, writing to the dead terminal).  `ccx-tui kill ID`
    (a prefix) then ends it, and nothing of it is left."""
    data = tmp_path / "data"
    # Launched as a shell command line in the pane, as a user's shell would.
    command = shlex.join([*ccx("--data-dir", str(data), "--kill-grace", "0.5"), "sleep 1000"])
    tmux.start(["sh", "-c", f"cd {shlex.quote(str(REPO))} && {command}"])
    tmux.wait_screen(lambda s: "running" in s and "sleep" in s, "the session running")
    [session] = sessions(data).values()
    assert marked_processes(f"{session['id']}.1")
    apps = [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if str(data) in (proc.info["cmdline"] or [])
        and "ccx_tui" in (proc.info["cmdline"] or [])
        and "engine" not in (proc.info["cmdline"] or [])
    ]
    assert apps, "the app's process"
    tmux.close()  # the terminal goes: SIGHUP
    gone, alive = psutil.wait_procs(apps, timeout=15)
    assert not alive, f"the app is still there: {alive}"
    assert sessions(data)["sleep 1000"]["state"] == "running"
    assert marked_processes(f"{session['id']}.1")
    kill = subprocess.run(
        ccx("kill", "--data-dir", str(data), session["id"][:8]),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert kill.returncode == 0, kill.stderr
    assert kill.stdout == f"{session['id']} killed: sleep 1000\n"
    assert wait_gone(f"{session['id']}.") == []
    assert sessions(data)["sleep 1000"]["state"] == "killed"


def test_restart_separator_and_soft_wrap(tmux: Tmux, tmp_path: Path) -> None:
    """A command that fails: `r` runs it again and the view draws a separator between
    the runs saying how the first ended; `W` wraps its long line onto more rows, and
    `W` again puts it back on one (the rest scrolled sideways)."""
    data = tmp_path / "data"
    # The long line's text is built by the shell: the command line does not contain it.
    command = "echo TAIL-$(printf 'z%.0s' $(seq 1 150))-END; exit 3"
    tmux.start(ccx("--no-config", "--no-tty", "--data-dir", str(data), command))
    tmux.wait_for_screen("exit 3 · run 1")
    tmux.send("r")
    screen = tmux.wait_for_screen("run 1 exited 3")
    assert "── run 2 started " in screen
    tmux.wait_for_screen("exit 3 · run 2")
    assert "-END" not in tmux.screen()  # cut at the view's edge
    tmux.send("W")
    screen = tmux.wait_for_screen("-END")
    assert sum("zzzzzzzzzz" in row for row in rows(screen)) >= 4  # two rows per run
    tmux.send("W")
    tmux.wait_screen(lambda s: "-END" not in s, "unwrapped")
    tmux.send("q")
    assert tmux.wait_exit() == 0
