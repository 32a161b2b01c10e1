"""Mirrored copies of a ccx-tui server's sessions (issue 11): a restarted session's
runs come along with its transcript (so the views draw the same separators), and a
copy resumes at the server's offset even where the copy holds a note in place of
bytes the server's full disk lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from ccx_tui.engine.server import server as server_module
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.transcripts.runs import RUNS_NAME, read_runs
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.auth import token_path
from ccx_tui.engine.wire.client import EngineClient, ServerSocket
from ccx_tui.widgets.run_separators import RunSeparators
from tests.helpers import until
from tests.serving import serving
from tests.test_faults import full_disk  # noqa: F401 - a fixture
from tests.test_server import TOKEN, call, connect, recv, running_server
from tests.test_server import url as url_of

RESTARTED = SessionSpec(
    "printf 'run-output'; exit 3", tty=False, restart="on-failure", max_restarts=2, restart_delay=0
)
"""Three runs, each ending without a newline: the server adds one between runs."""


def _client(data_dir: Path, url: str, token: str | None) -> EngineClient:
    return EngineClient(data_dir, server=ServerSocket(url, token=token, ca_file=None), name="box")


def _ended(client: EngineClient, session_id: str) -> bool:
    """The third and last run of RESTARTED is over (EXITED alone is also the state
    between two runs)."""
    info = client.get(session_id)
    return info.state is State.EXITED and info.run == 3 and info.restart_at is None


def _labels(transcript: Path) -> dict[int, str]:
    separators = RunSeparators(transcript)
    separators.poll()
    separators.take()
    return separators.labels


async def test_a_restarted_sessions_runs_are_mirrored(tmp_path: Path) -> None:
    """A session that the server restarted twice (each run ends without a newline,
    so the server's transcript has its own newline between runs): the copy equals
    the server's transcript byte for byte, its runs.jsonl equals the server's, and
    a view of the copy draws the same separators above the same lines."""
    server_dir, here = tmp_path / "srv", tmp_path / "here"
    with serving(server_dir) as (url, _):
        token = token_path(server_dir).read_text().strip()
        client = _client(here, url, token)
        await client.open()
        try:
            info = await client.start(RESTARTED)
            await until(lambda: _ended(client, info.id), what="the last run")
            server = server_dir / "sessions" / info.id
            copy = info.transcript.parent
            await until(
                lambda: (
                    (copy / RUNS_NAME).exists()
                    and (copy / RUNS_NAME).read_bytes() == (server / RUNS_NAME).read_bytes()
                    and info.transcript.read_bytes() == (server / "transcript.log").read_bytes()
                ),
                what=lambda: f"the copy: {info.transcript.read_bytes()!r}",
            )
            starts, ends = read_runs(copy)
            assert [s.run for s in starts] == [1, 2, 3] and sorted(ends) == [1, 2, 3]
            labels = _labels(info.transcript)
            assert labels == _labels(server / "transcript.log")
            assert sorted(labels) == [1, 2]
            assert all("exited 3" in label for label in labels.values())
        finally:
            await client.aclose()


async def test_a_copy_resumes_at_the_servers_offset_after_its_disk_filled(
    tmp_path: Path,
    full_disk: Path,  # noqa: F811
) -> None:
    """The server's disk filled: a client that came after the output got what the
    disk kept, a note for what nobody holds any more, and the unkept tail from the
    server's memory; so its copy is shorter than the server's offsets.  A client
    that comes back while the session runs resumes where the server's stream left
    off, not at the copy's length: no second note, no repeated tail, and the later
    output follows once."""
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"line {i:08d}\n" for i in range(600_000)))  # 8.4 MB
    go = tmp_path / "go"
    command = f"cat {source}; echo MARK; while [ ! -e {go} ]; do sleep 0.05; done; echo AFTER"
    whole = source.read_bytes() + b"MARK\nAFTER\n"
    here = tmp_path / "here"
    with serving(full_disk) as (url, _):
        token = token_path(full_disk).read_text().strip()
        starter = _client(tmp_path / "starter", url, token)
        await starter.open()
        try:
            info = await starter.start(SessionSpec(command, tty=False))
            await until(
                lambda: b"MARK\n" in starter.get(info.id).transcript.read_bytes(),
                timeout=60,
                what="the output, on the starter's side",
            )
            first = _client(here, url, token)
            await first.open()
            copy = first.get(info.id).transcript
            try:
                await until(lambda: copy.read_bytes().endswith(b"MARK\n"), timeout=60)
            finally:
                await first.aclose()
            before = copy.read_bytes()
            assert before.count(b"[ccx-tui: ") == 1, "the copy has a note for the lost part"
            again = _client(here, url, token)
            await again.open()
            try:
                assert again.get(info.id).state is State.RUNNING
                await until(lambda: again.mirror is not None and again.mirror.copying(info.id))
                go.touch()
                await until(lambda: again.get(info.id).state is State.EXITED, timeout=30)
                await until(lambda: copy.read_bytes().endswith(b"AFTER\n"), timeout=30)
                assert again.mirror is not None
                await until(lambda: not again.mirror.copying(info.id))
            finally:
                await again.aclose()
        finally:
            await starter.aclose()
    after = copy.read_bytes()
    assert after == before + b"AFTER\n", after[len(before) - 200 :][:400]
    kept, rest = before.split(b"[ccx-tui: ", 1)
    count, rest = rest.split(b" bytes of output lost: the server's disk is full]\n", 1)
    assert kept == whole[: len(kept)]
    assert rest + b"AFTER\n" == whole[len(kept) + int(count) :]


async def _attached(ws: ClientConnection, params: dict[str, Any]) -> list[tuple[str, Any, bytes]]:
    """Attach with `params`: (method, params, payload) of each batch and runs piece,
    up to the end (checking that each payload is binary and follows its header)."""
    await call(ws, "session.attach", params, 1)
    got: list[tuple[str, Any, bytes]] = []
    while True:
        async with asyncio.timeout(20):
            frame = await ws.recv()
        assert isinstance(frame, str), "bytes without a header"
        msg = json.loads(frame)
        method = msg.get("method")
        if method in (p.BATCH_METHOD, p.RUNS_METHOD):
            async with asyncio.timeout(20):
                payload = await ws.recv()
            assert isinstance(payload, bytes)
            got.append((method, msg["params"], payload))
        elif method in ("process.completed", "process.canceled", "process.error"):
            return got


async def test_attach_sends_whole_runs_lines_from_the_offset_asked_for(tmp_path: Path) -> None:
    """`session.attach` with "runs": N gets the session's runs.jsonl from byte N, whole
    lines only (a torn last line waits); without it (every client but a mirror) no
    runs frame ever comes; a bad offset is refused and the connection stays."""
    async with running_server(tmp_path / "srv") as server:
        info = await server.engine.start(RESTARTED)
        info = await server.engine.wait(info.id)
        runs = info.directory / RUNS_NAME
        whole = runs.read_bytes()
        assert whole.count(b"\n") == 6  # three runs, started and ended
        with runs.open("ab") as f:
            f.write(b'{"start":4,')  # torn (as a crash leaves it)
        first = whole.index(b"\n") + 1
        async with connect(url_of(server), max_size=None) as ws:
            hello = await recv(ws)
            assert p.RUNS in hello["params"]["capabilities"]
            params = {"session_id": info.id, "offset": 0, "batch": True, "runs": first}
            got = await _attached(ws, params)
            pieces = [
                (params, payload) for method, params, payload in got if method == p.RUNS_METHOD
            ]
            assert pieces[0][0]["offset"] == first
            assert b"".join(payload for _, payload in pieces) == whole[first:]
            for bad in (-1, "0", True):
                await call(ws, "session.attach", {"session_id": info.id, "runs": bad}, 2)
                assert (await recv(ws))["error"]["code"] == p.INVALID_PARAMS
        async with connect(url_of(server), max_size=None) as ws:
            await recv(ws)
            got = await _attached(ws, {"session_id": info.id, "offset": 0, "batch": True})
            assert {method for method, _, _ in got} == {p.BATCH_METHOD}


async def test_an_older_server_without_runs_is_still_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that does not offer "runs" (as before this extension; an in-process
    server whose `connected` leaves it out): the mirror does not ask for them, the
    transcript is copied byte for byte all the same, there is no runs.jsonl in the
    copy (no separators) and no error."""
    offered = tuple(c for c in server_module.CAPABILITIES if c != p.RUNS)
    monkeypatch.setattr(server_module, "CAPABILITIES", offered)
    async with running_server(tmp_path / "srv") as server:
        client = _client(tmp_path / "here", url_of(server), TOKEN)
        await client.open()
        try:
            info = await client.start(RESTARTED)
            await until(lambda: _ended(client, info.id), what="the last run")
            server_copy = server.engine.get(info.id).transcript
            assert client.mirror is not None
            await until(
                lambda: (
                    info.transcript.read_bytes() == server_copy.read_bytes()
                    and not client.mirror.copying(info.id)  # type: ignore[union-attr]
                ),
                what="the copy",
            )
            assert (server_copy.parent / RUNS_NAME).exists()
            assert not (info.transcript.parent / RUNS_NAME).exists()
            assert client.mirror.errors == {}
            assert _labels(info.transcript) == {}
        finally:
            await client.aclose()
