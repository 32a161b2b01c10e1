"""A ccx-tui server on another machine, attached like the local engine (issue 11):
EngineClient over a real `ccx-tui serve` on 127.0.0.1 with its token lists every
session, copies transcripts here byte-exact (resuming, never starting over), kills,
and detaching leaves the sessions running on the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ccx_tui.app import make_app
from ccx_tui.config import ServerTarget, Settings
from ccx_tui.engine.server.daemon_client import EngineError
from ccx_tui.engine.sessions.events import Event, OutputAppended, SessionAdded, Subscriber
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.wire.auth import token_path
from ccx_tui.engine.wire.client import EngineClient, ServerSocket
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.helpers import until
from tests.serving import serving

# Bytes no text decoding keeps: invalid UTF-8, NUL, a lone CR, a line with no end.
PAYLOAD = "printf 'one\\n\\377\\000two\\r\\n'; printf 'err\\n' >&2; printf 'tail'"


def _drain(sub: Subscriber) -> list[Event]:
    out: list[Event] = []
    while (event := sub.get_nowait()) is not None:
        out.append(event)
    return out


def _client(data_dir: Path, url: str, token: str | None, name: str = "box") -> EngineClient:
    return EngineClient(data_dir, server=ServerSocket(url, token=token, ca_file=None), name=name)


async def test_attach_copy_kill_and_detach(tmp_path: Path) -> None:
    """Sessions started through the client run on the server; their transcripts are
    copied here byte for byte and the views' events follow the copy; a second client
    sees every session with its whole transcript; closing a client leaves a session
    running there, and a kill from the other ends it."""
    server_dir, here, there = tmp_path / "srv", tmp_path / "here", tmp_path / "there"
    with serving(server_dir) as (url, _):
        token = token_path(server_dir).read_text().strip()
        first = _client(here, url, token)
        await first.open()
        events = first.subscribe()
        done = await first.start(SessionSpec(PAYLOAD, tty=False))
        assert done.location == "box" and done.directory.is_relative_to(here)
        live = await first.start(SessionSpec("echo up; exec sleep 300", tty=False))
        await until(lambda: first.get(done.id).state is State.EXITED, what="exit")
        server_copy = server_dir / "sessions" / done.id / "transcript.log"
        await until(lambda: done.transcript.exists() and server_copy.exists())
        await until(
            lambda: (
                done.transcript.read_bytes() == server_copy.read_bytes()
                and b"tail" in server_copy.read_bytes()
            ),
            what="the copy",
        )
        assert b"one\n\xff\x00two\r\n" in done.transcript.read_bytes()
        grown = [
            e for e in _drain(events) if isinstance(e, OutputAppended) and e.session_id == done.id
        ]
        assert grown and grown[-1].bytes == len(server_copy.read_bytes())
        await until(lambda: b"up\n" in live.transcript.read_bytes(), what="live output")
        await first.aclose()  # detach: the sleep goes on over there

        second = _client(there, url, token)
        await second.open()
        try:
            ids = {info.id for info in second.sessions()}
            assert {done.id, live.id} <= ids
            assert second.get(live.id).state is State.RUNNING
            copy = second.get(done.id).transcript
            await until(lambda: copy.exists() and copy.read_bytes() == server_copy.read_bytes())
            await second.kill(live.id)
            await until(lambda: second.get(live.id).state is State.KILLED, what="killed")
        finally:
            await second.aclose()


async def test_copy_resumes_where_it_stopped(tmp_path: Path) -> None:
    """A client that comes back copies only what it does not have yet."""
    server_dir, here = tmp_path / "srv", tmp_path / "here"
    with serving(server_dir) as (url, _):
        token = token_path(server_dir).read_text().strip()
        client = _client(here, url, token)
        await client.open()
        info = await client.start(
            SessionSpec("printf 'a%.0s\\n' $(seq 1 1000); sleep 0.5; echo second", tty=False)
        )
        await until(lambda: client.get(info.id).state is State.EXITED)
        await until(lambda: info.transcript.exists() and b"second" in info.transcript.read_bytes())
        await client.aclose()
        before = info.transcript.read_bytes()
        # Cut the copy short, as a client that went away mid-way would have left it.
        info.transcript.write_bytes(before[:100])
        again = _client(here, url, token)
        await again.open()
        try:
            await until(lambda: info.transcript.read_bytes() == before, what="caught up")
        finally:
            await again.aclose()


async def test_bad_token_and_dead_server_are_clear_errors(tmp_path: Path) -> None:
    """A wrong token and a server that is not there say so, before any session."""
    server_dir = tmp_path / "srv"
    with serving(server_dir) as (url, _):
        client = _client(tmp_path / "here", url, "wrong")
        with pytest.raises(EngineError, match="refused: bad token"):
            await client.open()
        await client.aclose()
    gone = _client(tmp_path / "here", url, "x")
    with pytest.raises(EngineError, match="cannot connect"):
        await gone.open()
    await gone.aclose()


async def test_the_table_names_sessions_started_elsewhere(tmp_path: Path) -> None:
    """A session another client starts appears here (SessionAdded) and is copied."""
    server_dir = tmp_path / "srv"
    with serving(server_dir) as (url, _):
        token = token_path(server_dir).read_text().strip()
        watcher = _client(tmp_path / "a", url, token)
        starter = _client(tmp_path / "b", url, token)
        await watcher.open()
        await starter.open()
        try:
            events = watcher.subscribe()
            info = await starter.start(SessionSpec("echo from-b", tty=False))
            added: list[str] = []

            def seen() -> bool:
                added.extend(e.info.id for e in _drain(events) if isinstance(e, SessionAdded))
                return info.id in added

            await until(seen, what="the new session")
            copy = watcher.get(info.id).transcript
            await until(lambda: copy.exists() and copy.read_bytes() == b"from-b\n")
            assert copy.is_relative_to(tmp_path / "a")
        finally:
            await asyncio.gather(watcher.aclose(), starter.aclose())


async def test_app_shows_a_servers_sessions_and_leaves_them_running(tmp_path: Path) -> None:
    """`ccx-tui attach --server URL` in the app: a session started there by another
    client has its tab with its output (from the local copy); a kill from the app ends
    it there; quitting leaves the other one running on the server."""
    server_dir = tmp_path / "srv"
    with serving(server_dir) as (url, _):
        token = token_path(server_dir).read_text().strip()
        other = _client(tmp_path / "other", url, token)
        await other.open()
        try:
            keep = await other.start(SessionSpec("echo kept-$((6*7)); exec sleep 300", tty=False))
            stop = await other.start(SessionSpec("echo stop-me; exec sleep 300", tty=False))
            settings = Settings(data_dir=tmp_path / "here", kill_grace=0.3, on_exit="detach")
            app = make_app(settings, attach=[ServerTarget(url, token, "box")], sample_usage=False)
            async with app.run_test(size=(140, 36)) as pilot:
                await until(lambda: len(app._sidebar.sessions) == 2, what="both tabs")
                pane = app._panes[keep.id]
                view = pane.query_one(TranscriptView)
                app._activate(keep.id)
                await until(
                    lambda: view.line_count >= 1 and "kept-42" in view.line_plain(0) or False
                )
                app._activate(stop.id)
                await until(lambda: app._current() == stop.id)
                await pilot.press("X")
                await until(lambda: other.get(stop.id).state is State.KILLED, what="killed there")
                await pilot.press("q")
            await until(lambda: other.get(keep.id).state is State.RUNNING)
        finally:
            await other.kill(keep.id)
            await other.aclose()
