"""RemoteEngine: sessions on one cc_executor server, with the local engine's semantics.

A LocalEngine composed with a ServerLauncher: limits, queue, TTL, kill escalation,
restart, transcripts (on local disk) and events are the engine's; only the process
lives on the server.  A server at its session limit puts the session back in the queue
until one of ours ends or its /health says it has room.  A background probe of
`GET /health` says whether the server is reachable (with backoff when it is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ccx_tui.engine.sessions.launcher import RunRequest
from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from ccx_tui.engine.sessions.runner import Ending, OnEof, Proc
from ccx_tui.engine.sessions.session import RESTART_POLICIES, SessionInfo, SessionSpec, State
from ccx_tui.engine.wire.auth import client_tls
from ccx_tui.engine.wire.remote import RemoteError, RemoteOutcome, RemoteRun, SessionLimitReached
from ccx_tui.engine.wire.unixsock import get_health, unix_path_of
from ccx_tui.errors import InvalidCommand, InvalidTransition

PROBE_EVERY = 10.0
BACKOFF_MAX = 60.0


def health_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/health", "", ""))


class RemoteProc:
    """One command on the server, as a Proc."""

    def __init__(self, run: RemoteRun, task: asyncio.Task[RemoteOutcome], on_eof: OnEof) -> None:
        self.run = run
        self.task = task
        self._on_eof = on_eof

    @property
    def pid(self) -> int | None:
        return self.run.pid

    async def wait(self) -> Ending:
        try:
            outcome = await asyncio.shield(self.task)
        except SessionLimitReached as exc:
            return Ending(None, requeue=True, reason=f"{exc}; waiting for a slot")
        except RemoteError as exc:
            return Ending(None, State.FAILED, str(exc))
        finally:
            self._on_eof(0)
            self._on_eof(1)
        returncode = -outcome.signal if outcome.signal else outcome.exit_code
        if outcome.state == "lost":
            return Ending(returncode, State.LOST, outcome.reason)
        if outcome.state == "failed":
            return Ending(returncode, State.FAILED, outcome.reason)
        if outcome.server_loss is not None:  # the server's full disk: say so
            return Ending(returncode, State.EXITED, outcome.server_loss)
        return Ending(returncode)

    async def terminate(self, *, force: bool, grace: float) -> None:
        self.run.kill_grace = 0.0 if force else grace
        self.run.cancel("killed")
        await asyncio.wait({self.task})

    async def pause(self) -> None:
        await self.run.control("PAUSE")

    async def resume(self) -> None:
        await self.run.control("RESUME")


class ServerLauncher:
    """Runs on the cc_executor server at `url`; a background probe of `GET /health`
    says whether it is reachable (with backoff when it is not) and when it has room."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        name: str | None,
        ca_file: Path | None,
        kill_grace: float,
    ) -> None:
        self.url = url
        self.location = url
        self.name = name or url
        self.token = token
        self.ca_file = ca_file
        self.kill_grace = kill_grace
        self.status = "connecting"
        """connecting / connected / unreachable: REASON (retrying in Ns)."""
        self._room: Callable[[], None] = lambda: None
        self._tasks: set[asyncio.Task[None]] = set()  # the probe, pid watchers

    def validate(self, spec: SessionSpec) -> SessionSpec:
        # The directory is the server's; only what we can judge here is checked.
        if not spec.command.strip():
            raise InvalidCommand("empty command")
        if spec.ttl is not None and not spec.ttl >= 0:  # 0: none, whatever the default
            raise InvalidCommand(f"bad TTL: {spec.ttl}")
        if spec.restart not in RESTART_POLICIES or spec.max_restarts < 0:
            raise InvalidCommand(f"bad restart policy: {spec.restart!r}")
        return spec  # `tty` too: a ccx-tui server gives it a terminal, others pipes

    async def open(self, room: Callable[[], None]) -> None:
        self._room = room
        self._spawn(self._watch())

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_input(self, proc: Proc | None, info: SessionInfo, data: bytes) -> None:
        """Type into the session's terminal on the server.  Raises InvalidTransition
        where that cannot be (a cc_executor server runs commands on pipes)."""
        if not isinstance(proc, RemoteProc) or not info.state.live:
            raise InvalidTransition(f"cannot type into a {info.state.value} session")
        if not proc.run.tty:
            raise InvalidTransition(
                f"{self.name} cannot take input: it runs commands on pipes (a cc_executor "
                "server, or a session not started as a terminal)"
            )
        try:
            await proc.run.send_input(data)
        except RemoteError as exc:
            raise InvalidTransition(str(exc)) from None

    async def resize(self, proc: Proc | None, cols: int, rows: int) -> None:
        if isinstance(proc, RemoteProc):
            with contextlib.suppress(RemoteError):
                await proc.run.resize(cols, rows)

    async def launch(self, request: RunRequest) -> Proc:
        run = RemoteRun(
            self.url, token=self.token, kill_grace=self.kill_grace, ca_file=self.ca_file
        )
        spec = replace(request.spec, ttl=None)  # the engine enforces the TTL itself
        on_data = request.on_data

        def sink(stream: str, data: bytes) -> None:
            on_data(1 if stream == "stderr" else 0, data)

        task: asyncio.Task[RemoteOutcome] = asyncio.get_running_loop().create_task(
            run.run(spec, sink)
        )
        self._spawn(self._note_pid(run, task, request.on_pid))
        return RemoteProc(run, task, request.on_eof)

    async def _note_pid(
        self,
        run: RemoteRun,
        task: asyncio.Task[RemoteOutcome],
        on_pid: Callable[[int | None], None],
    ) -> None:
        """The server's pid arrives with the execute result, after the launch."""
        started = asyncio.ensure_future(run.started.wait())
        await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if run.started.is_set():
            if not self.status.startswith("connected"):
                self.status = "connected"  # it is back: no need to wait for the probe
            on_pid(run.pid)

    async def _watch(self) -> None:
        delay = PROBE_EVERY
        while True:
            try:
                health = await asyncio.to_thread(self._get_health)
                live = health.get("active_sessions")
                limit = health.get("max_sessions")
                self.status = health_status(health)
                delay = PROBE_EVERY
                if limit is None or live != limit:
                    self._room()  # the server has room (again)
            except Exception as exc:  # any failure is a status, never a crash
                delay = min(BACKOFF_MAX, delay * 2 if self.status.startswith("unre") else 5.0)
                self.status = f"unreachable: {_reason(exc)} (retrying in {delay:.0f}s)"
            await asyncio.sleep(delay)

    def _get_health(self) -> dict[str, object]:
        unix = unix_path_of(self.url)
        if unix is not None:  # the engine process of a data dir
            return get_health(unix)
        request = urllib.request.Request(health_url(self.url))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        tls = client_tls(self.ca_file) if request.type == "https" else None
        with urllib.request.urlopen(request, timeout=5, context=tls) as response:  # noqa: S310
            data = json.loads(response.read(65536))
        return data if isinstance(data, dict) else {}


class RemoteEngine(LocalEngine):
    """A LocalEngine whose runs go to the cc_executor server at `url` (composed: only
    the launcher differs; transcripts stay in the local data dir, history is not
    loaded: it is the local engine's)."""

    def __init__(
        self,
        config: EngineConfig,
        url: str,
        *,
        token: str | None = None,
        name: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        launcher = ServerLauncher(
            url, token=token, name=name, ca_file=ca_file, kill_grace=config.kill_grace
        )
        super().__init__(replace(config, load_history=False), launcher=launcher)


def health_status(health: dict[str, object]) -> str:
    """The one-line status for a server's /health answer: refused (a ccx-tui server
    that says the token is wrong), else connected with its real load and limit (a
    ccx-tui server's processes; upstream's connections)."""
    if health.get("authorized") is False:
        return "refused: bad token"
    running, most = health.get("running_processes"), health.get("max_processes")
    if isinstance(running, int) and isinstance(most, int):
        return f"connected (running {running}/{most})"
    live, limit = health.get("active_sessions"), health.get("max_sessions")
    return "connected" + (f" ({live}/{limit})" if limit else "")


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return getattr(reason, "strerror", None) or str(reason)
    return str(exc) or type(exc).__name__


__all__ = ["RemoteEngine", "RemoteProc", "ServerLauncher", "health_url"]
