"""The cc_executor client (`exec --server`) against our server and a faithful fake of
an upstream server, on 127.0.0.1 with real sockets and real processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccx_tui.engine.server.server import CcxServer, ServeConfig
from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.wire.remote import RemoteRefused, RemoteRun, SessionLimitReached, remote_command
from tests.fake_upstream import FakeUpstream
from tests.serving import CLEAN, serving

CCX = [sys.executable, "-m", "ccx_tui"]


def collect() -> tuple[dict[str, bytearray], object]:
    out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def sink(stream: str, data: bytes) -> None:
        out[stream] += data

    return out, sink


async def test_against_fake_upstream_with_quirks() -> None:
    """Pings answered while a slow start and a quiet process run; chunks of a 150,000
    character line and 'Loading...' come back whole; the exit code is right."""
    command = "sleep 1; printf 'Loading...\\n'; head -c 150000 /dev/zero | tr '\\0' z; echo; exit 5"
    async with FakeUpstream(ping_interval=0.2, pong_timeout=0.6, start_delay=0.5) as fake:
        out, sink = collect()
        outcome = await RemoteRun(fake.url).run(SessionSpec(command), sink)  # type: ignore[arg-type]
        assert fake.pongs >= 2
    assert outcome.state == "exited" and outcome.exit_code == 5
    assert bytes(out["stdout"]) == b"Loading...\n" + b"z" * 150000 + b"\n"


async def test_cwd_and_env_are_built_into_the_command(tmp_path: Path) -> None:
    spec = SessionSpec('pwd; echo "$GREETING"', cwd=str(tmp_path), env={"GREETING": "hi there"})
    async with FakeUpstream() as fake:
        out, sink = collect()
        outcome = await RemoteRun(fake.url).run(spec, sink)  # type: ignore[arg-type]
    assert outcome.exit_code == 0
    assert bytes(out["stdout"]) == f"{tmp_path}\nhi there\n".encode()
    assert remote_command(SessionSpec("ls", cwd="/no such")).startswith("cd '/no such' ||")


async def test_ttl_cancels_then_closes_so_the_server_kills() -> None:
    """Upstream's CANCEL is only SIGTERM; a process that ignores it dies when we close
    the socket after the grace period.  The outcome is `expired`."""
    async with FakeUpstream(kill_grace=0.3) as fake:
        out, sink = collect()
        run = RemoteRun(fake.url, kill_grace=0.5)
        spec = SessionSpec("trap '' TERM; echo up; sleep 1000", ttl=0.5)
        outcome = await asyncio.wait_for(run.run(spec, sink), 30)  # type: ignore[arg-type]
    assert outcome.state == "expired"
    assert bytes(out["stdout"]) == b"up\n"


async def test_session_limit_is_a_clear_error() -> None:
    async with FakeUpstream(max_sessions=0) as fake:
        with pytest.raises(SessionLimitReached, match="session limit"):
            await RemoteRun(fake.url).run(SessionSpec("true"), lambda s, d: None)


async def test_dropped_connection_ends_as_lost() -> None:
    async with FakeUpstream() as fake:
        run = RemoteRun(fake.url)
        task = asyncio.create_task(run.run(SessionSpec("echo up; sleep 1000"), lambda s, d: None))
        deadline = asyncio.get_running_loop().time() + 20
        while not fake.pids:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        fake.drop_all()
        outcome = await asyncio.wait_for(task, 20)
    assert outcome.state == "lost"


async def test_against_our_own_server(tmp_path: Path) -> None:
    async with LocalEngine(EngineConfig(data_dir=tmp_path / "srv", kill_grace=0.3)) as engine:
        async with CcxServer(engine, ServeConfig(port=0, token="tok")) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/mcp"
            out, sink = collect()
            outcome = await RemoteRun(url, token="tok").run(
                SessionSpec("printf 'a\\377b\\n'; echo e >&2; exit 2"), sink
            )  # type: ignore[arg-type]
            assert outcome.exit_code == 2
            # Batched output is the transcript's bytes: invalid UTF-8 arrives intact.
            assert bytes(out["stdout"]) == b"a\377b\n"
            assert bytes(out["stderr"]) == b"e\n"
            with pytest.raises(RemoteRefused, match="refused: bad token$"):
                await RemoteRun(url, token="wrong").run(SessionSpec("true"), sink)  # type: ignore[arg-type]
            with pytest.raises(RemoteRefused, match="refused: a token is required"):
                await RemoteRun(url).run(SessionSpec("true"), sink)  # type: ignore[arg-type]


async def test_env_and_cwd_go_to_our_server_as_params(tmp_path: Path) -> None:
    """Regression: `--env API_KEY=...` was built into the command line, so the secret
    showed in the server's process list and in `sessions.list`.  Against `ccx-tui
    serve` (which offers the params) env and cwd go as `env`/`cwd`: you should see the
    command recorded as written, and the secret only in the process's own output."""
    command = 'pwd; echo "$API_KEY"'
    spec = SessionSpec(command, cwd=str(tmp_path), env={"API_KEY": "sekrit-value"})
    async with LocalEngine(EngineConfig(data_dir=tmp_path / "srv", kill_grace=0.3)) as engine:
        async with CcxServer(engine, ServeConfig(port=0, token="tok")) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/mcp"
            out, sink = collect()
            outcome = await RemoteRun(url, token="tok").run(spec, sink)  # type: ignore[arg-type]
            [info] = engine.sessions()
    assert outcome.exit_code == 0
    assert bytes(out["stdout"]) == f"{tmp_path}\nsekrit-value\n".encode()
    assert info.spec.command == command and info.spec.cwd == str(tmp_path)


def test_exec_server_cli(tmp_path: Path) -> None:
    """`ccx-tui exec --server` has local exec's output and exit codes, and records the
    transcript locally; an unreachable server is a one-line error, not a hang."""
    serve = subprocess.Popen(
        [*CCX, "serve", "--port", "0", "--data-dir", str(tmp_path / "srv")],
        stderr=subprocess.PIPE,
    )
    try:
        assert serve.stderr is not None
        line = serve.stderr.readline().decode()
        url = line.split("listening on ")[1].split()[0]
        data = str(tmp_path / "cli")
        # Another data dir than the server's: the token must be given (a file).
        token = ("--token-file", str(tmp_path / "srv" / "serve" / "token"))
        run = subprocess.run(
            [
                *CCX,
                "exec",
                "--data-dir",
                data,
                *token,
                "--server",
                url,
                "--",
                "sh",
                "-c",
                "seq 1 3; echo oops >&2; exit 4",
            ],
            capture_output=True,
            timeout=60,
        )
        assert (run.returncode, run.stdout, run.stderr) == (4, b"1\n2\n3\n", b"oops\n")
        ttl = subprocess.run(
            [
                *CCX,
                "exec",
                "--data-dir",
                data,
                *token,
                "--server",
                url,
                "--ttl",
                "0.5",
                "--",
                "sleep 100",
            ],
            capture_output=True,
            timeout=60,
        )
        assert ttl.returncode == 124
        listing = json.loads(
            subprocess.run(
                [*CCX, "sessions", "--data-dir", data, "--json"], capture_output=True, timeout=30
            ).stdout
        )
        assert [s["state"] for s in listing] == ["exited", "expired"]
        assert listing[0]["location"] == url
        assert Path(listing[0]["transcript"]).read_bytes() == b"1\n2\n3\noops\n"
        dead = subprocess.run(
            [*CCX, "exec", "--data-dir", data, "--server", "ws://127.0.0.1:9/ws/mcp", "--", "true"],
            capture_output=True,
            timeout=60,
        )
        assert dead.returncode == 1
        assert b"cannot connect" in dead.stderr and b"Traceback" not in dead.stderr
    finally:
        serve.terminate()
        serve.wait(20)


@pytest.mark.parametrize("null", ["none", "stdout", "stderr"])
def test_exec_server_echoes_a_flood_whole_and_skips_only_dev_null(
    tmp_path: Path, null: str
) -> None:
    """A flood (written to the local transcript by a thread, as the engine writes) is
    echoed byte for byte on each output that is not /dev/null, and recorded whole;
    what goes to /dev/null is not read back from the transcript to be thrown away."""
    with serving(tmp_path / "srv") as (url, _):
        token = ("--token-file", str(tmp_path / "srv" / "serve" / "token"))
        data = tmp_path / "cli"
        # 12 MB on stdout (past the writer's queue limits), a line on stderr after it.
        command = "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -n 324324; echo done >&2"
        with open(os.devnull, "wb") as devnull:
            run = subprocess.run(
                [*CCX, "exec", "--data-dir", str(data), *token, "--server", url, "--", command],
                stdout=devnull if null == "stdout" else subprocess.PIPE,
                stderr=devnull if null == "stderr" else subprocess.PIPE,
                timeout=120,
                env=CLEAN,
            )
    assert run.returncode == 0
    flood = b"0123456789abcdefghijklmnopqrstuvwxyz\n" * 324324
    assert run.stdout == (None if null == "stdout" else flood)
    assert run.stderr == (None if null == "stderr" else b"done\n")
    [transcript] = data.glob("sessions/*/transcript.log")
    assert transcript.read_bytes() == flood + b"done\n"


@pytest.mark.parametrize("batch", [True, False], ids=["batches", "line-frames"])
async def test_network_blip_is_survived_against_our_server(tmp_path: Path, batch: bool) -> None:
    """With `ccx-tui serve` the client asks for a detachable session; when its socket
    dies mid-run it reconnects, reattaches and replays from the end of the last batch
    (or with line frames from the last checkpoint): the process is not lost and the
    output arrives exactly once, in order."""
    command = "for i in $(seq 1 40); do echo line-$i; sleep 0.02; done; exit 3"
    async with LocalEngine(EngineConfig(data_dir=tmp_path / "srv", kill_grace=0.3)) as engine:
        async with CcxServer(engine, ServeConfig(port=0, token="tok")) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/mcp"
            out, sink = collect()
            run = RemoteRun(url, token="tok", batch=batch)
            task = asyncio.create_task(run.run(SessionSpec(command), sink))  # type: ignore[arg-type]
            deadline = asyncio.get_running_loop().time() + 20
            while out["stdout"].count(b"\n") < 5:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            assert run._ws is not None
            run._ws.transport.abort()  # the network goes away, no close frame
            outcome = await asyncio.wait_for(task, 30)
            assert outcome.state == "exited", outcome
            assert engine.sessions()[-1].state.value == "exited"  # never killed
    assert run.batched is batch
    assert outcome.state == "exited" and outcome.exit_code == 3
    expected = "".join(f"line-{i}\n" for i in range(1, 41)).encode()
    assert bytes(out["stdout"]) == expected


async def test_batches_byte_exact_with_streams_across_blips(tmp_path: Path) -> None:
    """Against `ccx-tui serve` the client negotiates batches: stdout with invalid
    UTF-8 and interleaved stderr arrive byte for byte, each on its own stream, and
    stay so across two network blips (the replay resumes at the exact byte)."""
    command = (
        "for i in $(seq 1 60); do printf 'out-%d \\377\\376\\n' $i; "
        "printf 'err-%d\\n' $i >&2; sleep 0.01; done; printf 'no newline'; exit 3"
    )
    async with LocalEngine(EngineConfig(data_dir=tmp_path / "srv", kill_grace=0.3)) as engine:
        async with CcxServer(engine, ServeConfig(port=0, token="tok")) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/mcp"
            out, sink = collect()
            run = RemoteRun(url, token="tok")
            task = asyncio.create_task(run.run(SessionSpec(command), sink))  # type: ignore[arg-type]
            for lines in (5, 30):
                deadline = asyncio.get_running_loop().time() + 20
                while out["stdout"].count(b"\n") < lines:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.01)
                assert run._ws is not None
                run._ws.transport.abort()  # the network goes away, no close frame
            outcome = await asyncio.wait_for(task, 30)
    assert run.batched
    assert outcome.state == "exited" and outcome.exit_code == 3
    stdout = b"".join(b"out-%d \xff\xfe\n" % i for i in range(1, 61)) + b"no newline"
    assert bytes(out["stdout"]) == stdout
    assert bytes(out["stderr"]) == b"".join(b"err-%d\n" % i for i in range(1, 61))


def test_exec_server_stdout_is_byte_exact_every_run(tmp_path: Path) -> None:
    """Regression: `exec --server` wrote some output twice about one run in three
    (2,577,800 bytes instead of 1,288,897): the final copy of the transcript raced a
    copy thread still running.  You should see ten runs whose stdout hashes to the
    command's own output."""
    script = "seq 1 200000; printf x"
    direct = subprocess.run(["sh", "-c", script], capture_output=True, timeout=60).stdout
    with serving(tmp_path) as (url, _):
        for run in range(10):
            # Same data dir as the server, loopback URL: the client finds its token.
            got = subprocess.run(
                [
                    *CCX,
                    "exec",
                    "--data-dir",
                    str(tmp_path),
                    "--server",
                    url,
                    "--",
                    "sh",
                    "-c",
                    script,
                ],
                capture_output=True,
                timeout=120,
                env=CLEAN,
            )
            assert got.returncode == 0, got.stderr
            assert (run, len(got.stdout), hashlib.sha256(got.stdout).hexdigest()) == (
                run,
                len(direct),
                hashlib.sha256(direct).hexdigest(),
            )


async def test_exec_server_escapes_what_a_server_says(tmp_path: Path) -> None:
    """A server's close reason is shown by `exec --server` (the session is lost), but
    as text: an escape sequence in it comes out as `\\x1b`, never as ESC."""
    from websockets.asyncio.server import ServerConnection, serve

    async def hostile(ws: ServerConnection) -> None:
        hello = {"session_id": "s", "version": "1.0.0", "capabilities": ["execute"]}
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "connected", "params": hello}))
        await ws.recv()  # execute
        await ws.close(1011, "bye\x1b]0;pwned\x07")

    async with serve(hostile, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            *CCX,
            "exec",
            "--data-dir",
            str(tmp_path),
            "--server",
            f"ws://127.0.0.1:{port}/ws/mcp",
            "--",
            "true",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=CLEAN,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 255
    assert b"\x1b" not in err and b"\x07" not in err
    assert b"bye\\x1b]0;pwned\\x07" in err


def test_exec_server_failure_reasons_escape_controls(tmp_path: Path) -> None:
    """A server's refusal quotes our `--cwd`, which holds a title sequence: `exec
    --server` prints the reason with visible escapes (it reached our terminal raw)."""
    data = tmp_path / "data"
    with serving(data) as (url, _):
        proc = subprocess.run(
            [
                *[sys.executable, "-m", "ccx_tui"],
                *["exec", "--no-config", "--data-dir", str(data), "--server", url],
                *["--cwd", "/nonexistent\x1b]2;pwned\x07", "--", "true"],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=CLEAN,
        )
    assert proc.returncode != 0
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr, proc.stderr
    assert "\\x1b]2;pwned\\x07" in proc.stderr, proc.stderr
