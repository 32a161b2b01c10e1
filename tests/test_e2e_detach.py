"""End to end in tmux: detach, attach, two terminals on one engine process."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.wire.auth import token_path
from ccx_tui.engine.wire.client import EngineClient, ServerSocket
from tests.helpers import wait_gone_for
from tests.serving import serving
from tests.test_e2e_tmux import ALPHA, TMUX, Tmux, ccx, sessions

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
    pytest.mark.timeout(90),
]


def _terminal(tmp_path: Path, name: str) -> Tmux:
    folder = tmp_path / name
    folder.mkdir()
    return Tmux(folder)


def test_detach_attach_and_two_terminals(tmp_path: Path) -> None:
    """A session started in terminal A shows in terminal B (`ccx-tui attach`) with its
    output so far; A detaches (`d`) and the session runs on; a kill in B ends it; A
    attaches again and finds it killed, its output intact."""
    data = str(tmp_path / "data")
    a, b = _terminal(tmp_path, "a"), _terminal(tmp_path, "b")
    try:
        a.start(ccx("--no-config", "--data-dir", data, "--kill-grace", "0.5", ALPHA))
        a.wait_for_screen("ALPHA-OUT", timeout=30)
        b.start(ccx("attach", "--no-config", "--data-dir", data))
        b.wait_for_screen("ALPHA-OUT", timeout=30)  # the second client: same session
        b.wait_for_screen("running 1/16")

        a.send("d")  # detach at once
        assert a.wait_exit(timeout=30) == 0
        assert "[detached: 1 session(s) keep running" in a.scrollback()
        assert sessions(Path(data))[ALPHA]["state"] == "running"

        b.send("x")  # kill it from the other terminal
        b.wait_for_screen("killed", timeout=30)
        assert sessions(Path(data))[ALPHA]["state"] == "killed"
        b.send("q")  # nothing runs: quits without asking
        assert b.wait_exit(timeout=30) == 0
    finally:
        a.close()
        b.close()
    assert wait_gone_for(Path(data)) == []


def test_attach_without_an_engine_is_a_clear_error(tmp_path: Path) -> None:
    """`ccx-tui attach` with no engine process running says so in one line."""
    a = _terminal(tmp_path, "a")
    try:
        a.start(ccx("attach", "--no-config", "--data-dir", str(tmp_path / "data")))
        assert a.wait_exit(timeout=30) == 2
        assert "no engine process runs sessions in" in a.scrollback()
    finally:
        a.close()


async def _start_there(url: str, token: str, command: str) -> str:
    """Start a session on the server from another client, which then goes away."""
    client = EngineClient(
        Path(tempfile.mkdtemp()), server=ServerSocket(url, token=token, ca_file=None)
    )
    await client.open()
    try:
        return (await client.start(SessionSpec(command, tty=False))).id
    finally:
        await client.aclose()


async def _state_there(url: str, token: str, session_id: str) -> str:
    client = EngineClient(
        Path(tempfile.mkdtemp()), server=ServerSocket(url, token=token, ca_file=None)
    )
    await client.open()
    try:
        state = client.get(session_id).state.value
        await client.kill(session_id)
        return state
    finally:
        await client.aclose()


def test_attach_a_server_on_another_machine(tmp_path: Path) -> None:
    """`ccx-tui attach --server URL --token-file F`: the sessions of a ccx-tui server
    show with their output, as the local engine's do; leaving (`d`) lets them run on
    there; a wrong token is a one-line error before the screen is taken."""
    server_dir = tmp_path / "srv"
    with serving(server_dir) as (url, _):
        token_file = token_path(server_dir)
        token = token_file.read_text().strip()
        session_id = asyncio.run(_start_there(url, token, "echo REMOTE-$((6*7)); exec sleep 300"))
        data = str(tmp_path / "data")

        def attach_server(token_file: str) -> list[str]:
            return ccx(
                "attach",
                "--no-config",
                "--data-dir",
                data,
                "--server",
                url,
                "--token-file",
                token_file,
            )

        a = _terminal(tmp_path, "a")
        try:
            a.start(attach_server(str(token_file)))
            a.wait_for_screen("REMOTE-42", timeout=30)
            a.send("d")
            assert a.wait_exit(timeout=30) == 0
        finally:
            a.close()
        assert asyncio.run(_state_there(url, token, session_id)) == "running"
        bad = tmp_path / "bad-token"
        bad.write_text("wrong\n")
        bad.chmod(0o600)
        b = _terminal(tmp_path, "b")
        try:
            b.start(attach_server(str(bad)))
            assert b.wait_exit(timeout=30) == 2
            assert "refused: bad token" in b.scrollback()
        finally:
            b.close()


def test_connect_to_a_ccx_tui_server_attaches_it(tmp_path: Path) -> None:
    """`ccx-tui --connect URL` (as a [[server]] would) to a ccx-tui server: not
    launch-only any more: a session another client started there shows with its
    output, and leaving (`d`) lets it run on there, as with `attach --server`."""
    server_dir = tmp_path / "srv"
    with serving(server_dir) as (url, _):
        token_file = token_path(server_dir)
        token = token_file.read_text().strip()
        session_id = asyncio.run(
            _start_there(url, token, "echo ELSEWHERE-$((6*7)); exec sleep 300")
        )
        data = str(tmp_path / "data")
        a = _terminal(tmp_path, "a")
        try:
            a.start(
                ccx(
                    "--no-config",
                    "--data-dir",
                    data,
                    "--connect",
                    url,
                    "--token-file",
                    str(token_file),
                )
            )
            a.wait_for_screen("ELSEWHERE-42", timeout=30)
            a.send("d")
            assert a.wait_exit(timeout=30) == 0
            said = "".join(a.scrollback().split("\n"))  # the line may wrap at 120 columns
            assert f"1 on {url} (`ccx-tui attach --server {url}`)" in said
        finally:
            a.close()
        assert asyncio.run(_state_there(url, token, session_id)) == "running"
    assert wait_gone_for(Path(data)) == []
