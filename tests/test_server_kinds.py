"""`--connect` and `[[server]]`: a ccx-tui server is attached like the local engine
(issue 11: "remote engines are the same thing"), a cc_executor server stays
launch-only, and a server that cannot be asked now stays launch-only (its engine
reports why) instead of holding the app's start."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from ccx_tui.app import CcxApp, detached_message, make_app
from ccx_tui.config import DeclaredSession, ServerTarget, Settings
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.wire.auth import token_path
from ccx_tui.engine.wire.client import EngineClient, ServerSocket
from ccx_tui.server_kinds import sort_servers
from tests.fake_upstream import FakeUpstream
from tests.helpers import until
from tests.serving import serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_each_server_is_sorted_by_what_it_says_it_is(tmp_path: Path) -> None:
    """A real `ccx-tui serve` is attachable; an upstream cc_executor (the faithful
    fake), a port nobody listens on, a wrong token and a server that never greets
    are launch-only; the order of each list is the given one."""
    silent_sockets: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_sockets.append(writer)  # accepts, never answers the handshake

    mute = await asyncio.start_server(silent, "127.0.0.1", 0)
    mute_url = f"ws://127.0.0.1:{mute.sockets[0].getsockname()[1]}/ws/mcp"
    server_dir = tmp_path / "srv"
    try:
        with serving(server_dir) as (url, _):
            token = token_path(server_dir).read_text().strip()
            async with FakeUpstream() as fake:
                ours = ServerTarget(url, token, "box")
                upstream = ServerTarget(fake.url, None, "upstream")
                dead = ServerTarget(f"ws://127.0.0.1:{_free_port()}/ws/mcp", None, "dead")
                refused = ServerTarget(url, "wrong", "refused")
                hung = ServerTarget(mute_url, None, "hung")
                again = ServerTarget(url, token, "again")
                launch, attach = await sort_servers(
                    [upstream, ours, dead, refused, hung, again], deadline=1.0
                )
                assert attach == [ours, again]
                assert launch == [upstream, dead, refused, hung]
    finally:
        for writer in silent_sockets:
            writer.close()
        mute.close()
        await mute.wait_closed()


async def _show_and_detach(app: CcxApp) -> None:
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: len(app._sidebar.sessions) == 1, what="the web tab")
        await pilot.press("d")


async def test_a_declared_session_on_an_attached_server_is_not_started_twice(
    tmp_path: Path,
) -> None:
    """`[[session]] server = "box"` where box is a ccx-tui server: the first app
    starts it there; an app that comes later finds it running there and shows it,
    instead of starting a second copy (as with the local engine process)."""
    server_dir = tmp_path / "srv"
    with serving(server_dir) as (url, _):
        token = token_path(server_dir).read_text().strip()
        target = ServerTarget(url, token, "box")
        declared = [
            DeclaredSession(SessionSpec("echo web-up; exec sleep 300", name="web"), server="box")
        ]
        settings = Settings(data_dir=tmp_path / "here", on_exit="detach", kill_grace=0.3)
        for _ in range(2):
            await _show_and_detach(
                make_app(settings, attach=[target], declared=declared, sample_usage=False)
            )
        watcher = EngineClient(
            tmp_path / "watch", server=ServerSocket(url, token=token, ca_file=None)
        )
        await watcher.open()
        try:
            sessions = watcher.sessions()
            assert [(s.spec.name, s.state) for s in sessions] == [("web", State.RUNNING)]
            await watcher.kill(sessions[0].id)
        finally:
            await watcher.aclose()


def test_the_detach_message_says_how_to_come_back_to_each_engine() -> None:
    """After a detach: the engine process's sessions as always; a server's with the
    command that shows them (plain `ccx-tui attach` does not); a name from a config
    file cannot drive the terminal."""
    assert detached_message([(2, "local", "ccx-tui attach")]) == (
        "[detached: 2 session(s) keep running; `ccx-tui attach` brings them back]"
    )
    said = detached_message(
        [
            (1, "local", "ccx-tui attach"),
            (3, "box\x1b]0;owned\x07", "ccx-tui attach --server ws://box:8003/ws/mcp"),
        ]
    )
    assert "1 here (`ccx-tui attach`)" in said
    assert "3 on box" in said and "(`ccx-tui attach --server ws://box:8003/ws/mcp`)" in said
    assert "\x1b" not in said and "\x07" not in said


async def test_the_quit_question_does_not_send_a_servers_user_to_plain_attach(
    tmp_path: Path,
) -> None:
    """With sessions kept on a ccx-tui server, `q` does not say that `ccx-tui attach`
    brings them back (it does not: they need `--server`); it points to the message
    printed on leaving, which names each server's command."""
    from textual.widgets import Static

    from ccx_tui.widgets.dialogs import QuitDialog

    server_dir = tmp_path / "srv"
    with serving(server_dir) as (url, _):
        token = token_path(server_dir).read_text().strip()
        other = EngineClient(
            tmp_path / "other", server=ServerSocket(url, token=token, ca_file=None)
        )
        await other.open()
        try:
            kept = await other.start(SessionSpec("exec sleep 300", tty=False))
            settings = Settings(data_dir=tmp_path / "here", on_exit="ask", kill_grace=0.3)
            app = make_app(settings, attach=[ServerTarget(url, token, "box")], sample_usage=False)
            async with app.run_test(size=(120, 30)) as pilot:
                await until(lambda: len(app._sidebar.sessions) == 1, what="the server's tab")
                await pilot.press("q")
                await until(lambda: isinstance(app.screen, QuitDialog), what="the question")
                question = str(app.screen.query_one("#question", Static).render())
                assert "how to come back to each server" in question
                assert "`ccx-tui attach` brings" not in question
                await pilot.press("d")
            assert app.detached_where == [(1, "box", f"ccx-tui attach --server {url}")]
            assert other.get(kept.id).state is State.RUNNING
        finally:
            await other.aclose()
