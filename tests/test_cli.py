"""The real `ccx-tui` command: exec, sessions, errors, signals, history, disk errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import marked_processes, wait_gone_for
from tests.serving import serving

CCX = [sys.executable, "-m", "ccx_tui"]


def run(*args: str, data_dir: Path, **kwargs) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CCX, *args[:1], "--data-dir", str(data_dir), *args[1:]],
        capture_output=True,
        timeout=60,
        **kwargs,
    )


def test_exec_behaves_like_running_the_command(data_dir: Path) -> None:
    """Several words are an argv, quoted safely: same output and exit code as direct."""
    args = ["sh", "-c", "seq 1 5; echo 'it''s' >&2; exit 3"]
    direct = subprocess.run(args, capture_output=True)
    ours = run("exec", "--", *args, data_dir=data_dir)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        direct.returncode,
        direct.stdout,
        direct.stderr,
    )
    assert ours.returncode == 3


def test_exec_single_word_is_a_shell_line(data_dir: Path, tmp_path: Path) -> None:
    proc = run(
        "exec",
        "--cwd",
        str(tmp_path),
        "--env",
        "A=1 2",
        "--",
        'echo "$A" && pwd',
        data_dir=data_dir,
    )
    assert proc.returncode == 0
    assert proc.stdout == f"1 2\n{tmp_path}\n".encode()


def test_exec_exit_codes_for_ttl_and_signals(data_dir: Path) -> None:
    assert run("exec", "--ttl", "0.3", "--", "sleep 100", data_dir=data_dir).returncode == 124
    assert run("exec", "--", "kill -TERM $$", data_dir=data_dir).returncode == 128 + 15
    assert run("exec", "--", "kill -9 $$", data_dir=data_dir).returncode == 128 + 9


def test_exec_streams_output_as_it_arrives(data_dir: Path) -> None:
    """The first line shows up while the command is still running."""
    proc = subprocess.Popen(
        [*CCX, "exec", "--data-dir", str(data_dir), "--", "echo first; sleep 30; echo late"],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    assert wait_gone_for(data_dir) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["exec"], "empty command"),
        (["exec", "--", ""], "empty command"),
        (["exec", "--cwd", "/no/such/dir", "--", "ls"], "no such directory: /no/such/dir"),
        (["exec", "--env", "NOEQUALS", "--", "ls"], "bad --env"),
        (["exec", "--env", "1X=2", "--", "ls"], "bad --env"),
        (["exec", "--ttl", "soon", "--", "ls"], "bad TTL"),
        (["exec", "--ttl", "-5", "--", "ls"], "bad TTL"),
        (["exec", "--bogus", "--", "ls"], "unrecognized arguments"),
        (["--max-sessions", "0"], "bad max sessions"),
        (["--ttl", "0x"], "bad TTL"),
        (["--help-me"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_no_traceback(args: list[str], message: str, data_dir: Path) -> None:
    proc = subprocess.run(
        [*CCX, *args],
        capture_output=True,
        timeout=30,
        env={**os.environ, "CCX_TUI_DATA_DIR": str(data_dir)},
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    proc = run("exec", "--", "true", data_dir=blocker / "sub")
    assert proc.returncode == 2
    assert b"data dir" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_kill_sessions_and_leave_no_orphans(sig: int, data_dir: Path) -> None:
    proc = subprocess.Popen(
        [
            *CCX,
            "exec",
            "--data-dir",
            str(data_dir),
            "--",
            "sleep 1000 & trap '' TERM; echo up; sleep 1001",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(sig)
    assert proc.wait(20) == 128 + sig
    assert wait_gone_for(data_dir) == []


def test_sessions_lists_and_json(data_dir: Path) -> None:
    run("exec", "--", "echo one; exit 2", data_dir=data_dir)
    run("exec", "--ttl", "0.2", "--", "sleep 10", data_dir=data_dir)
    table = run("sessions", data_dir=data_dir)
    assert table.returncode == 0
    text = table.stdout.decode()
    assert "exited" in text and "expired" in text and "echo one; exit 2" in text
    listing = json.loads(run("sessions", "--json", data_dir=data_dir).stdout)
    assert [s["state"] for s in listing] == ["exited", "expired"]
    first = listing[0]
    assert first["exit_code"] == 2 and first["bytes"] == 4 and first["lines"] == 1
    assert Path(first["transcript"]).read_bytes() == b"one\n"
    for key in ("id", "spec", "started_at", "ended_at"):
        assert key in first


def test_a_session_of_a_dead_ccx_tui_shows_interrupted(data_dir: Path) -> None:
    """ccx-tui killed with SIGKILL cannot clean up: the session loads as interrupted
    with its transcript intact."""
    proc = subprocess.Popen(
        [*CCX, "exec", "--data-dir", str(data_dir), "--", "echo kept; sleep 1000"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"kept\n"
    [live] = json.loads(run("sessions", "--json", data_dir=data_dir).stdout)
    assert live["state"] == "running"  # another live ccx-tui owns it: left alone
    proc.kill()
    proc.wait(10)
    [info] = json.loads(run("sessions", "--json", data_dir=data_dir).stdout)
    assert info["state"] == "interrupted"
    assert Path(info["transcript"]).read_bytes() == b"kept\n"
    for p in marked_processes(info["id"]):  # the orphan we caused on purpose
        p.kill()


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_disk_error_is_reported_and_never_blocks(data_dir: Path) -> None:
    """With a file-size limit (a real EFBIG from the kernel, like a full disk) the
    process still runs to the end, exec exits with its code, and says how many bytes
    were not kept.  The transcript is an exact prefix of the output."""
    data_dir.mkdir(parents=True)
    script = (
        f"ulimit -f 64; exec {' '.join(CCX)} exec --data-dir {data_dir} -- "
        "'seq 1 200000; echo done >&2; exit 7'"
    )
    proc = subprocess.run(["sh", "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 7
    err = proc.stderr.decode()
    assert "transcript write failed (EFBIG)" in err
    assert "bytes of output were not kept" in err
    expected = subprocess.run(["seq", "1", "200000"], capture_output=True).stdout + b"done\n"
    [info] = json.loads(run("sessions", "--json", data_dir=data_dir).stdout)
    kept = Path(info["transcript"]).read_bytes()
    assert len(kept) <= 64 * 1024
    assert expected.startswith(kept)
    assert info["bytes_lost"] == len(expected) - len(kept)
    assert info["write_error"]


def test_engine_import_pulls_in_no_ui() -> None:
    code = (
        "import sys, ccx_tui.engine, ccx_tui.headless, ccx_tui.config;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('textual','rich')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stdout


def test_version() -> None:
    out = subprocess.run([*CCX, "--version"], capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith(b"ccx-tui ")


def test_exec_of_a_big_output_is_exact(data_dir: Path) -> None:
    proc = run("exec", "--", "seq 1 2000000", data_dir=data_dir)
    assert proc.returncode == 0
    assert proc.stdout == subprocess.run(["seq", "1", "2000000"], capture_output=True).stdout


def _peak_rss_kib(args: list[str]) -> int:
    """Peak RSS of the ccx-tui process running `args` (from the kernel, via wait4)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss


def test_exec_memory_does_not_grow_with_output(data_dir: Path) -> None:
    """Recording 300 MB costs no more memory than recording 3 MB: output moves in
    bounded chunks from the pipe to disk, nothing is kept per line.  (The children,
    `yes` and `head`, are separate processes and not counted by wait4 here.)"""

    def exec_args(size: int) -> list[str]:
        return [
            *CCX,
            "exec",
            "--data-dir",
            str(data_dir),
            "--",
            f"yes 0123456789abcdef | head -c {size}",
        ]

    small = _peak_rss_kib(exec_args(3_000_000))
    big = _peak_rss_kib(exec_args(300_000_000))
    assert big - small < 30 * 1024, (small, big)


# -- ccx.toml and Procfile ------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def ccx(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real ccx-tui in `cwd`, with no CCX_TUI_* variables but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CCX_TUI_")}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), clean.get("PYTHONPATH")]))
    return subprocess.run(
        [*CCX, *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr.strip()


BAD_CONFIG = (
    '[defaults]\nttl = 60\n\n[[session]]\nname = "web"\ncommand = "true"\nrestart = "sometimes"\n'
)


def test_a_bad_config_file_is_one_line_with_path_and_line(tmp_path: Path) -> None:
    """A mistake in the file stops ccx-tui before the UI, saying file, line and key."""
    config = tmp_path / "my.toml"
    config.write_text(BAD_CONFIG)
    error = one_line_error(ccx("--config", str(config), cwd=tmp_path))
    assert error == (
        f"ccx-tui: {config}:7: [session \"web\"] key 'restart': "
        "bad value 'sometimes' (use never, on-failure, always)"
    )


def test_ccx_toml_in_the_current_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "ccx.toml").write_text(BAD_CONFIG)
    error = one_line_error(ccx(cwd=tmp_path))
    assert error.startswith("ccx-tui: ccx.toml:7: [session \"web\"] key 'restart'")
    # exec, sessions and serve read its [defaults] too
    assert one_line_error(ccx("sessions", cwd=tmp_path)).startswith("ccx-tui: ccx.toml:7:")


def test_no_config_skips_ccx_toml(tmp_path: Path) -> None:
    """With --no-config the broken ccx.toml is not read: the error is the Procfile's."""
    (tmp_path / "ccx.toml").write_text(BAD_CONFIG)
    (tmp_path / "Procfile").write_text("web: true\nbad line\n")
    error = one_line_error(ccx("--no-config", "--procfile", "Procfile", cwd=tmp_path))
    assert error == (
        "ccx-tui: Procfile:2: malformed line 'bad line' "
        "(expected NAME: COMMAND, the NAME of letters, digits, _ and -)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "nope.toml"], "ccx-tui: nope.toml: no such file"),
        (["--config", "."], "ccx-tui: .: is a directory, not a file"),
        (["--procfile", "Nofile"], "ccx-tui: Nofile: no such file"),
        (["--config", "a.toml", "--no-config"], "not allowed with argument --config"),
        (["exec", "--server", "box", "--", "true"], "no [[server]] of that name"),
    ],
)
def test_missing_files_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    assert message in one_line_error(ccx(*args, cwd=tmp_path))


def test_an_unset_token_env_names_server_and_variable(tmp_path: Path) -> None:
    (tmp_path / "ccx.toml").write_text(
        '[[server]]\nname = "box"\nurl = "ws://127.0.0.1:1/ws/mcp"\ntoken_env = "BOX_TOKEN"\n'
    )
    # --config: a ccx.toml found implicitly is not used without asking (test_trust.py).
    error = one_line_error(ccx("--config", "ccx.toml", cwd=tmp_path))
    assert error == (
        "ccx-tui: ccx.toml:4: [server \"box\"] key 'token_env': $BOX_TOKEN is not set "
        "(export the token in it, or remove token_env)"
    )


def test_defaults_data_dir_is_shared_by_exec_and_sessions(tmp_path: Path) -> None:
    """[defaults] data_dir (relative to the file) is where exec records and sessions looks."""
    (tmp_path / "ccx.toml").write_text('[defaults]\ndata_dir = "state"\n')
    # --config: a ccx.toml found implicitly is not used without asking (test_trust.py).
    ran = ccx("exec", "--config", "ccx.toml", "--", "echo recorded", cwd=tmp_path)
    assert ran.stdout == "recorded\n"
    listing = json.loads(ccx("sessions", "--config", "ccx.toml", "--json", cwd=tmp_path).stdout)
    assert [s["spec"]["command"] for s in listing] == ["echo recorded"]
    assert Path(listing[0]["transcript"]).is_relative_to(tmp_path / "state")
    assert (
        json.loads(
            ccx(
                "sessions",
                "--json",
                "--no-config",
                cwd=tmp_path,
                CCX_TUI_DATA_DIR=str(tmp_path / "other"),
            ).stdout
        )
        == []
    )


def test_exec_on_a_server_named_in_the_config(tmp_path: Path) -> None:
    """`exec --server NAME` runs on that [[server]] with the token from its token_env,
    against a real `ccx-tui serve`."""
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    token_file.chmod(0o600)
    with serving(tmp_path / "srv", "--token-file", str(token_file)) as (url, _):
        (tmp_path / "ccx.toml").write_text(
            f'[defaults]\ndata_dir = "local"\n\n[[server]]\nname = "box"\nurl = "{url}"\n'
            'token_env = "BOX_TOKEN"\n'
        )
        # --config: a ccx.toml found implicitly is not used without asking (test_trust.py).
        use = ("exec", "--config", "ccx.toml", "--server", "box", "--")
        ran = ccx(*use, "echo remote; exit 3", cwd=tmp_path, BOX_TOKEN="s3cret")
        assert (ran.returncode, ran.stdout) == (3, "remote\n"), ran.stderr
        refused = one_line_error(ccx(*use, "true", cwd=tmp_path))
        assert "$BOX_TOKEN is not set" in refused


# -- stored and remote text on the command line (escapes) ---------------------------------

CONTROLS = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")
"""Control characters in output, but for the newlines that end its lines."""
HOSTILE_COMMAND = b"true # \x1b]2;pwned\x07 \xc2\x9b31m [/] caf\xc3\xa9 \xff\n# second line"


def test_sessions_prints_stored_text_with_visible_escapes(data_dir: Path, tmp_path: Path) -> None:
    """A command and a cwd holding ESC, BEL, a newline, a C1 control and a byte that is
    not UTF-8: `sessions` prints them as visible escapes (normal Unicode as it is), one
    line per session, also under a strict UTF-8 stdout (it used to crash there with a
    UnicodeEncodeError, and to print the title sequence raw elsewhere)."""
    cwd = tmp_path / "dir\x1b[31m\nnext"
    cwd.mkdir()
    made = subprocess.run(
        [*CCX, "exec", "--data-dir", str(data_dir), "--cwd", str(cwd), "--", HOSTILE_COMMAND],
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    for encoding in ("utf-8:strict", "ascii:strict", ""):
        env = {**os.environ, "PYTHONIOENCODING": encoding}
        proc = run("sessions", data_dir=data_dir, env=env)
        assert (proc.returncode, proc.stderr) == (0, b""), (encoding, proc.stderr)
        assert not CONTROLS.search(proc.stdout), (encoding, proc.stdout)
        lines = proc.stdout.splitlines()
        assert len(lines) == 3, lines  # header, the session, where transcripts are
        shown = lines[1].decode("utf-8")
        expected_command = "\\x1b]2;pwned\\x07 \\x9b31m [/] café \\xff\\n# second line"
        if encoding.startswith("ascii"):
            expected_command = expected_command.replace("é", "\\xe9")
        assert shown.endswith(expected_command), (encoding, shown)
        assert "dir\\x1b[31m\\nnext" in shown


def test_sessions_into_a_closed_pipe_exits_quietly(data_dir: Path) -> None:
    """`ccx-tui sessions [--json] | head -c 10`: the reader is gone before we write.  We
    exit 141 (like a tool killed by SIGPIPE) with nothing on stderr: no BrokenPipeError
    traceback, no "Exception ignored" at interpreter exit."""
    assert run("exec", "--", "true", data_dir=data_dir).returncode == 0
    for flags in (["--json"], []):
        read, write = os.pipe()
        os.close(read)  # deterministic: every write fails with EPIPE
        try:
            proc = subprocess.run(
                [*CCX, "sessions", "--data-dir", str(data_dir), *flags],
                stdout=write,
                stderr=subprocess.PIPE,
                timeout=60,
            )
        finally:
            os.close(write)
        assert (proc.returncode, proc.stderr) == (141, b""), (flags, proc.stderr)


@pytest.mark.parametrize("kind", ["fifo", "char device", "directory"])
def test_view_refuses_what_is_not_a_regular_file(kind: str, data_dir: Path, tmp_path: Path) -> None:
    """`ccx-tui view FIFO` used to block for good opening the FIFO, before any screen (a
    device too); they are refused in one line, exit 2, as a directory already was."""
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "char device":
        target = Path(os.devnull)
    else:
        target = tmp_path
    proc = run("view", str(target), data_dir=data_dir, stdin=subprocess.DEVNULL)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    kind = "is a directory" if kind == "directory" else "not a regular file"
    assert f"cannot view {target}: {kind}" in err


def test_an_ambiguous_id_prefix_lists_the_candidates(data_dir: Path) -> None:
    """`view PREFIX` matching two sessions names both (it used to say "no such
    session"), exit 2; one more digit picks one."""
    for word in ("one", "two"):
        assert run("exec", "--", f"echo {word}", data_dir=data_dir).returncode == 0
    ids = sorted(p.name for p in (data_dir / "sessions").iterdir())
    prefix = os.path.commonprefix(ids)
    assert prefix, ids  # ids start with the clock: two made in a row share digits
    proc = run("view", prefix, data_dir=data_dir, stdin=subprocess.DEVNULL)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    candidates = f"{ids[0]}, {ids[1]}"
    said = f"ccx-tui: ambiguous id prefix '{prefix}': matches {candidates} (give more digits)"
    assert err.strip() == said


def test_errors_quoting_user_text_escape_controls(data_dir: Path) -> None:
    """An error message that quotes a path, an id or a server's words prints its control
    characters as visible escapes: they never reach the terminal."""
    for args in (
        ["exec", "--cwd", "/nonexistent\x1b]2;pwned\x07", "--", "true"],
        ["view", "no-such\x1b]52;c;cHduZWQ=\x07\n"],
    ):
        proc = run(*args, data_dir=data_dir, stdin=subprocess.DEVNULL)
        assert proc.returncode == 2, proc.stderr
        assert not CONTROLS.search(proc.stderr), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert b"\\x1b]" in proc.stderr and b"\\x07" in proc.stderr


def test_usage_errors_escape_the_argv_they_quote(tmp_path: Path) -> None:
    """argparse quotes the user's own words back; a control sequence in them (pasted
    from a hostile page, say) is shown as visible escapes, not sent to the terminal."""
    proc = ccx("sessions", "\x1b]2;pwned\x07", cwd=tmp_path)
    assert proc.returncode == 2
    assert "\x1b" not in proc.stderr and "\\x1b]2;pwned\\x07" in proc.stderr


def test_an_http_url_for_a_server_is_refused_with_the_ws_url_to_use(tmp_path: Path) -> None:
    """`--connect http://...` (or `exec --server https://...`) is an easy mistake: a
    one-line error names the WebSocket URL meant, exit 2, before any screen."""
    data = str(tmp_path / "data")
    for argv, expected in (
        (["--connect", "http://127.0.0.1:8003", "true"], "ws://127.0.0.1:8003/ws/mcp"),
        (["exec", "--server", "https://build:8003/ws/mcp", "--", "true"], "wss://build:8003"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "ccx_tui", "--data-dir", data, *argv]
            if argv[0] != "exec"
            else [sys.executable, "-m", "ccx_tui", "exec", "--data-dir", data, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2, proc.stderr
        assert "not an http URL" in proc.stderr and expected in proc.stderr
        assert "\x1b" not in proc.stdout  # no screen was drawn


def test_an_interrupted_sessions_counters_come_from_its_transcript(data_dir: Path) -> None:
    """A record last saved when its session started (0 bytes) while the transcript
    went on: loaded as interrupted, its bytes and lines are the transcript's."""
    from ccx_tui.engine import DataStore, SessionInfo, SessionSpec, State

    store = DataStore(data_dir)
    session_id, directory = store.new_session()
    (directory / "transcript.log").write_bytes(b"one\r\ntwo\r\nthree")
    store.write_meta(
        SessionInfo(session_id, SessionSpec("x"), State.RUNNING, directory, 1.0, run=1)
    )
    [info] = store.load_history()
    assert info.state is State.INTERRUPTED
    assert (info.bytes, info.lines) == (15, 2)
