"""LocalEngine: runs sessions as local processes under a concurrency limit.

All bookkeeping happens on the event loop thread in synchronous steps, so the
number of live sessions can never exceed `max_sessions`: a slot is taken (state
`running`) in the same step that dequeues a session, and given back only after the
session's whole process tree is gone.  A restart keeps its slot.

A session's restart policy (`SessionSpec.restart`) may run it again after a run ends on
its own: it stays in its final state (so the user sees "exit 1") with `restart_at` set
until a timer requeues it as a new run, with exponential backoff up to
`max_restarts` in a row.  A user's kill, a lost connection or closing the engine never
restarts anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ccx_tui.engine.sessions.altscreen import AltScreenTracker
from ccx_tui.engine.sessions.deps import stop_order, verdict
from ccx_tui.engine.sessions.events import (
    Event,
    OutputAppended,
    SessionAdded,
    SessionRemoved,
    SessionUpdated,
    Subscriber,
)
from ccx_tui.engine.sessions.launcher import Launcher, ProcessLauncher, RunRequest
from ccx_tui.engine.sessions.linemux import LineMux
from ccx_tui.engine.sessions.process import SECRET_ENV, kill_marked
from ccx_tui.engine.sessions.readiness import wait_ready
from ccx_tui.engine.sessions.runner import OnData, OnEof, Proc, ProcessTree
from ccx_tui.engine.sessions.session import (
    SessionInfo,
    SessionSpec,
    State,
    check_name,
    check_size,
    check_transition,
    resolve_id,
)
from ccx_tui.engine.sessions.tap import DEFAULT_WINDOW, UNKEPT_TAIL, OutputTap, PauseGate
from ccx_tui.engine.transcripts.runs import RunEnd, RunStart, record_end, record_start
from ccx_tui.engine.transcripts.store import DEFAULT_RETENTION, DataStore, MetaWriter
from ccx_tui.engine.transcripts.transcript import META, TranscriptWriter
from ccx_tui.engine.transcripts.write_behind import WriteBehind
from ccx_tui.errors import InvalidTransition, UnknownSession

_NEW_RUN: dict[str, Any] = {  # what a new run of a session forgets of the last
    "exit_code": None,
    "signal": None,
    "reason": None,
    "ended_at": None,
    "ttl_deadline": None,
    "pid": None,
    "alt_screen": None,
    "kill_at": None,
    "ready_at": None,
}
PARTIAL_LINE_DELAY = 0.1  # an unfinished line is shown after this long
MAX_RESTART_DELAY = 60.0
"""The automatic-restart backoff never waits longer than this (seconds)."""
STABLE_SECONDS = 10.0
"""A run that lasted this long was healthy: the next failure starts the backoff over."""
ORPHANS_KILLED = "killed: orphaned after ccx-tui died"
"""The reason of an interrupted session whose leftover processes a later start killed."""
_MAX_DOUBLINGS = 32  # 2.0 ** n overflows for a large n; the delay is capped long before


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How a LocalEngine behaves."""

    data_dir: Path
    max_sessions: int = 16
    default_ttl: float | None = None
    kill_grace: float = 3.0
    retention_bytes: int = DEFAULT_RETENTION
    shell: str = "/bin/sh"
    load_history: bool = True
    exit_drain: float = 2.0  # seconds to keep reading after the main process exits
    scrub_env: frozenset[str] = SECRET_ENV
    """Variables no session inherits (tokens); SECRET_ENV is always among them."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    running: int
    paused: int
    queued: int
    max_sessions: int

    @property
    def live(self) -> int:
        return self.running + self.paused

    @property
    def busy(self) -> int:
        """Sessions running, paused or queued: what quitting kills or detaching keeps."""
        return self.live + self.queued


class _Record:
    """The engine's mutable bookkeeping for one session (never leaves the engine)."""

    def __init__(self, info: SessionInfo) -> None:
        self.info = info
        self.writer: WriteBehind | None = None
        self.pid: int | None = None
        self.kill_state: State | None = None  # KILLED or EXPIRED once a kill is under way
        self.kill_reason: str | None = None
        self.restart = False
        self.ttl_handle: asyncio.TimerHandle | None = None
        self.ended = asyncio.Event()
        self.ended.set()
        self.changed = asyncio.Event()  # replaced (after being set) on every change
        self.error_reported = False
        self.lock_fd: int | None = None
        self.proc: Proc | None = None
        self.restart_handle: asyncio.TimerHandle | None = None  # an automatic restart due
        self.end_reason: str | None = None  # the run's own reason, under the restart note
        self.gate = PauseGate()  # pauses the process's pipes for the disk or a tap
        self.taps: set[OutputTap] = set()
        # The latest output of the run that its transcript has not got (see UNKEPT_TAIL):
        # what the disk did not keep stays here for a view that taps the session later.
        self.unkept: OutputTap | None = None
        self.out_offset = info.bytes  # transcript offset of the next byte, kept or not
        self.size = (info.spec.cols, info.spec.rows)  # its terminal's, last set by a view
        self.alt: AltScreenTracker | None = None  # a terminal run's full-screen switches
        self.probe: asyncio.Task[None] | None = None  # its ready_when probe, while it runs

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, re-checking after every change."""
        while not predicate():
            await self.changed.wait()

    def notify(self) -> None:
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    @property
    def marker(self) -> str:
        return f"{self.info.id}.{self.info.run}"


class LocalEngine:
    """Runs shell commands as sessions; see the module docstring for the guarantees.

    Use as ``async with LocalEngine(config) as engine:``.  Construction raises
    DataDirError if the data directory is unusable.
    """

    survives_detach = False
    """Its sessions are this process's: `aclose()` kills them."""
    reattach = ""
    """Nothing to come back to after a detach (see `survives_detach`)."""

    def __init__(self, config: EngineConfig, *, launcher: Launcher | None = None) -> None:
        """`launcher` starts the runs (default: local processes, see launcher.py)."""
        if config.max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.config = config
        self.launcher: Launcher = launcher or ProcessLauncher(
            exit_drain=config.exit_drain,
            leftover_grace=min(config.kill_grace, 1.0),
            scrub_env=config.scrub_env,
        )
        self.store = DataStore(config.data_dir)
        self._meta = MetaWriter(self.store)
        # Sessions per state, kept by _set: the limit is checked at every start and the
        # stats read at every event, so neither may walk every session.
        self._counts: Counter[State] = Counter()
        self._records: dict[str, _Record] = {}
        self._history: set[str] = set()  # the sessions `open` loaded from the data dir
        self._queue: deque[str] = deque()
        self._subscribers: set[Subscriber] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.max_live_seen = 0
        """High-water mark of live sessions, for tests and benchmarks."""
        self._held = False  # the far side said it is full: wait for one of ours to end
        self._pumping = False  # _pump is running: changes it makes do not re-enter it

    @property
    def location(self) -> str:
        """Where its sessions run: "local", or a server's URL."""
        return self.launcher.location

    @property
    def name(self) -> str:
        """How the user names that place."""
        return self.launcher.name

    @property
    def status(self) -> str:
        """One line on how that place is doing."""
        return self.launcher.status

    async def __aenter__(self) -> LocalEngine:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Load history from the data directory, kill what ccx-tuis that died left
        running (see `_kill_orphans`), and apply the retention limit."""
        if self.config.load_history:
            for info in await asyncio.to_thread(self.store.load_history):
                if info.restart_at is not None:  # its ccx-tui died before the restart
                    info = replace(info, restart_at=None, reason="restart cancelled")
                self._records[info.id] = _Record(info)
                self._history.add(info.id)
                self._counts[info.state] += 1
            await self._kill_orphans()
        await self._retention()
        await self.launcher.open(self._room)

    def _room(self) -> None:
        """The far side has room again: start what waits for it."""
        if self._held:
            self._held = False
            self._pump()

    async def _kill_orphans(self) -> None:
        """Kill the process trees of sessions whose ccx-tui died (SIGKILL, a crash):
        they are interrupted here, yet their processes, found by their marker, may
        still run, out of anyone's reach.  Their reason says so."""
        if self.location != "local":
            return
        markers = {
            f"{r.info.id}.{r.info.run}": r
            for r in self._records.values()
            if r.info.state is State.INTERRUPTED
            and r.info.location == "local"
            and r.info.reason != ORPHANS_KILLED
        }
        if not markers:
            return
        for marker in await kill_marked(markers, grace=self.config.kill_grace):
            rec = markers[marker]
            self._set(rec, State.INTERRUPTED, reason=ORPHANS_KILLED, pid=None)

    # -- queries ----------------------------------------------------------------------

    def sessions(self) -> list[SessionInfo]:
        """Every session, oldest first."""
        return [self._snapshot(r) for _, r in sorted(self._records.items())]

    def get(self, session_id: str) -> SessionInfo:
        return self._snapshot(self._find(session_id))

    def current(self) -> list[SessionInfo]:
        """The sessions this engine has had since it opened (not the history it
        loaded), oldest first: what a client attaching now shows as tabs."""
        return [
            self._snapshot(r)
            for sid, r in sorted(self._records.items())
            if sid not in self._history
        ]

    @property
    def stats(self) -> EngineStats:
        counts = self._counts
        return EngineStats(
            counts[State.RUNNING], counts[State.PAUSED], len(self._queue), self.config.max_sessions
        )

    @property
    def _live(self) -> int:
        return self._counts[State.RUNNING] + self._counts[State.PAUSED]

    def subscribe(self) -> Subscriber:
        """A queue of every event from now on; `unsubscribe` it when done."""
        sub = Subscriber()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        self._subscribers.discard(sub)

    def tap(
        self,
        session_id: str,
        *,
        backpressure: bool = False,
        window: int = DEFAULT_WINDOW,
        unkept_only: bool = False,
    ) -> OutputTap:
        """A live feed of the session's output from now on, straight from the engine
        (see tap.py): it does not depend on the disk keeping the transcript.

        With `backpressure`, a consumer that falls behind pauses the process (nothing
        is lost); without, it loses the oldest bytes past `window` (counted in `lost`).
        The tap closes when the session is final (no restart due) or the engine
        closes; a finished session's tap is closed at once.  `start()` does not yield
        to the loop, so a tap made right after it returns misses no byte.  With
        `unkept_only` the tap holds only what the transcript has not (yet) got: for a
        consumer that reads the rest from the disk.  Raises UnknownSession.  The
        consumer calls `close()` when done.
        """
        rec = self._find(session_id)

        def kept() -> int:
            return rec.writer.offset if rec.writer is not None else 0

        earlier = rec.unkept.held() if unkept_only and rec.unkept is not None else []
        tap = OutputTap(
            earlier[0].offset if earlier else rec.out_offset,
            gate=rec.gate if backpressure else None,
            window=window,
            kept=kept if unkept_only else None,
            on_close=rec.taps.discard,
        )
        for chunk in earlier:  # what the disk did not keep before this tap came
            tap.put(chunk.offset, chunk.stream, chunk.data)
        done = rec.info.state.final and rec.info.state is not State.CREATED
        if self._closed or (done and rec.restart_handle is None and rec.ended.is_set()):
            tap.close()
        else:
            rec.taps.add(tap)
        return tap

    def record_error(self, session_id: str) -> str | None:
        """Why the session's record (meta.json) could not be saved the last time, or
        None if it was.  After `aclose()` this covers its final state."""
        return self._meta.error(self._find(session_id).info.directory)

    async def events(self) -> AsyncIterator[Event]:
        """Iterate over events until the engine closes.  Safe to cancel."""
        sub = self.subscribe()
        try:
            while (event := await sub.get()) is not None:
                yield event
        finally:
            self.unsubscribe(sub)

    # -- actions ----------------------------------------------------------------------

    async def start(self, spec: SessionSpec, *, autostart: bool = True) -> SessionInfo:
        """Create a session and run it now, or queue it if the limit is reached.

        With `autostart=False` it is only created (state `created`, run 0) until
        `restart()` starts it.  Raises InvalidCommand for a bad spec (nothing is
        created then), DataDirError if its folder cannot be made.
        """
        if self._closed:
            raise InvalidTransition("the engine is closed")
        if spec.ttl is None and self.config.default_ttl:
            spec = replace(spec, ttl=self.config.default_ttl)
        if spec.shell == "/bin/sh" and self.config.shell != "/bin/sh":
            spec = replace(spec, shell=self.config.shell)
        spec = self._validate(spec)
        # A mkdir and an empty file: cheaper inline than a trip to a thread.
        session_id, directory = self.store.new_session()
        info = SessionInfo(
            id=session_id,
            spec=spec,
            state=State.QUEUED if autostart else State.CREATED,
            directory=directory,
            created_at=time.time(),
            run=1 if autostart else 0,
            location=self.location,
        )
        rec = _Record(info)
        self._records[session_id] = rec
        self._counts[info.state] += 1
        if not autostart:
            self._save(rec)
            self._emit(SessionAdded(info))
            return self._snapshot(rec)
        rec.ended.clear()
        rec.lock_fd = self.store.lock_session(directory)
        self._save(rec)
        self._emit(SessionAdded(info))
        self._queue.append(session_id)
        self._pump()
        return self._snapshot(rec)

    async def kill(self, session_id: str, *, force: bool = False, reason: str = "killed") -> None:
        """Kill a session: TERM, grace period, KILL (or KILL at once with `force`).

        Returns when its whole process tree is gone.  A queued session is just
        dequeued; a pending automatic restart is cancelled.  Raises UnknownSession;
        does nothing else to a finished session.
        """
        rec = self._find(session_id)
        if rec.restart_handle is not None:
            why = "restart cancelled" if reason == "killed" else f"restart cancelled ({reason})"
            self._cancel_restart(rec, why)
            return
        if rec.info.state is State.QUEUED:
            self._queue.remove(rec.info.id)
            rec.restart = False
            self._set(rec, State.KILLED, reason=reason, ended_at=time.time())
            rec.ended.set()
            return
        if not rec.info.state.live:
            return
        if rec.kill_state is None:
            rec.kill_state = State.KILLED
            rec.kill_reason = reason
        await self._terminate(rec, force=force)
        await rec.ended.wait()

    async def restart(self, session_id: str) -> SessionInfo:
        """Run the session's command again as a new run (killing the current one).

        A live session keeps its slot; a finished one is queued (at once, even if an
        automatic restart was due later).  Resets the count of automatic restarts.
        """
        rec = self._find(session_id)
        state = rec.info.state
        if state is State.QUEUED:
            if rec.info.restarts:
                self._set(rec, State.QUEUED, restarts=0)
            return self._snapshot(rec)
        if state.live:
            rec.restart = True
            if rec.kill_state is None:
                rec.kill_state = State.KILLED
                rec.kill_reason = "restarted"
            await self._terminate(rec, force=False)
            await rec.wait_until(lambda: not (rec.restart and rec.info.state.live))
            return self._snapshot(rec)
        if rec.lock_fd is None:
            rec.lock_fd = self._lock(rec)
        if rec.restart_handle is not None:
            rec.restart_handle.cancel()
            rec.restart_handle = None
        self._queue_new_run(rec, restarts=0)
        return self._snapshot(rec)

    async def pause(self, session_id: str) -> None:
        """SIGSTOP the session's process tree."""
        rec = self._find(session_id)
        if rec.info.state is not State.RUNNING or rec.proc is None:
            raise InvalidTransition(f"cannot pause a {rec.info.state.value} session")
        assert rec.proc is not None
        await rec.proc.pause()
        if rec.info.state is State.RUNNING:
            self._set(rec, State.PAUSED)

    async def resume(self, session_id: str) -> None:
        """SIGCONT the session's process tree."""
        rec = self._find(session_id)
        if rec.info.state is not State.PAUSED or rec.proc is None:
            raise InvalidTransition(f"cannot resume a {rec.info.state.value} session")
        assert rec.proc is not None
        await rec.proc.resume()
        if rec.info.state is State.PAUSED:
            self._set(rec, State.RUNNING)

    async def rename(self, session_id: str, name: str) -> SessionInfo:
        """Name the session (an empty name: its title comes from its command again).
        Raises UnknownSession, InvalidCommand for a name that cannot be one."""
        name = check_name(name)
        rec = self._find(session_id)
        self._set(rec, rec.info.state, spec=replace(rec.info.spec, name=name or None))
        return self._snapshot(rec)

    async def send_input(self, session_id: str, data: bytes) -> None:
        """Type `data` into the session's terminal (in order: it is written, or queued
        for the program, before this returns; cancelling is safe).  Raises
        UnknownSession, and InvalidTransition if it is not running on a terminal or
        its program has stopped reading (see PtyProc.write)."""
        rec = self._find(session_id)
        await self.launcher.send_input(rec.proc, rec.info, data)

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        """Set the size of the session's terminal, now and for its next runs (nothing
        for a session on pipes).  Raises UnknownSession, InvalidCommand for a bad size."""
        check_size(cols, rows)
        rec = self._find(session_id)
        if not rec.info.spec.tty or rec.size == (cols, rows):
            return
        rec.size = (cols, rows)
        await self.launcher.resize(rec.proc, cols, rows)

    async def flush_records(self) -> None:
        """Wait until every session record saved so far is on disk (meta.json), so
        that an engine killed from now on leaves them for the next one to find.
        Cancelling is safe (the writes go on)."""
        await asyncio.to_thread(self._meta.flush)

    async def until_unkept(self, session_id: str) -> bool:
        """Wait until the session's transcript stops keeping its output (the disk
        failed: True) or the session is over, no restart due (False).  For a consumer
        of a tap that forwards only what the disk did not keep.  Safe to cancel;
        raises UnknownSession."""
        rec = self._find(session_id)

        def unkept() -> bool:
            return rec.writer is not None and rec.writer.error is not None

        def over() -> bool:
            return rec.info.state.final and rec.ended.is_set() and rec.restart_handle is None

        await rec.wait_until(lambda: unkept() or over() or self._closed)
        return unkept()

    async def wait(self, session_id: str) -> SessionInfo:
        """Wait until the session is final: not between two runs, and no automatic
        restart pending.  Safe to cancel; raises UnknownSession."""
        rec = self._find(session_id)
        await rec.wait_until(
            lambda: rec.info.state.final and rec.ended.is_set() and rec.restart_handle is None
        )
        return self._snapshot(rec)

    async def kill_all(self, reason: str = "killed") -> None:
        """Kill every live session (TERM, grace, KILL), drop the queue, cancel pending
        automatic restarts; returns once all of them have ended.  The engine stays
        open.  Cancelling is safe: the kills under way go on."""
        for rec in self._records.values():
            if rec.restart_handle is not None:
                self._cancel_restart(rec, f"restart cancelled ({reason})")
        for session_id in list(self._queue):
            with contextlib.suppress(UnknownSession):
                await self.kill(session_id, reason=reason)
        live = [r.info for r in self._records.values() if r.info.state.live]
        for wave in stop_order(live):  # what depends on others stops first
            await asyncio.gather(
                *(self.kill(info.id, reason=reason) for info in wave), return_exceptions=True
            )

    async def aclose(self, reason: str = "ccx-tui exited") -> None:
        """Kill every live session (TERM, grace, KILL), drop the queue, cancel pending
        automatic restarts, stop tasks."""
        if self._closed:
            return
        self._closed = True
        await self.launcher.aclose()
        await self.kill_all(reason)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sub in list(self._subscribers):
            sub.close()
        for rec in self._records.values():
            for tap in list(rec.taps):
                tap.close()
        await asyncio.to_thread(self._meta.close)  # every final state is on disk

    def kill_all_now(self) -> None:
        """SIGKILL every live session's tree, synchronously: the last resort when the
        event loop is gone (normally `aclose` has already done the polite thing)."""
        for rec in self._records.values():
            if rec.info.state.live and isinstance(rec.proc, ProcessTree):
                rec.proc.kill_now()
        self._meta.close()

    # -- internals --------------------------------------------------------------------

    def _find(self, session_id: str) -> _Record:
        rec = self._records.get(session_id)
        if rec is not None:
            return rec
        return self._records[resolve_id(session_id, self._records)]

    def _snapshot(self, rec: _Record) -> SessionInfo:
        writer = rec.writer
        if writer is None:
            return rec.info
        return replace(
            rec.info,
            bytes=writer.offset,
            lines=writer.newlines,
            write_error=writer.error,
            bytes_lost=writer.bytes_lost,
        )

    def _emit(self, event: Event) -> None:
        for sub in self._subscribers:
            sub.put(event)

    def _save(self, rec: _Record, *, unlock: bool = False) -> None:
        # On the writer's thread: a rename costs about a millisecond on some disks, and
        # a full disk must not stop the engine (the transcript's error shows it).
        # With `unlock`, the session's lock goes with the snapshot, released once the
        # final state is on disk (see MetaWriter).
        fd, rec.lock_fd = (rec.lock_fd, None) if unlock else (None, rec.lock_fd)
        self._meta.put(self._snapshot(rec), unlock=fd)

    def _set(self, rec: _Record, state: State, **changes: Any) -> None:
        """Change the session's info, save and announce it (keeping the state is no
        transition, so a final session can still be updated)."""
        old = rec.info.state
        if state is not old:
            check_transition(old, state)
        named = rec.info.spec.name  # dependencies are by name: it may be one
        rec.info = replace(rec.info, state=state, **changes)
        if state is not old:
            self._counts[old] -= 1
            self._counts[state] += 1
            self.max_live_seen = max(self.max_live_seen, self._live)
        # A session waiting to restart is not done: it stays ours until then.
        done = state.final and rec.info.restart_at is None
        self._save(rec, unlock=done)
        if done and state is not State.CREATED:
            for tap in list(rec.taps):
                tap.close()
        self._emit(SessionUpdated(self._snapshot(rec)))
        rec.notify()
        if (
            (named or rec.info.spec.name)  # only a named session can be a dependency
            and self._queue
            and not self._pumping
            and any(self._records[sid].info.spec.depends_on for sid in self._queue)
        ):
            self._pump()  # a dependency may have got where its dependents wait for it

    def _spawn_task(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pump(self) -> None:
        """Start queued sessions while slots are free, in order, those whose
        dependencies are met (see deps.py); fail those whose never can be.
        Synchronous: no races."""
        if self._closed or self._held or self._pumping:
            return
        self._pumping = True
        try:
            for session_id in list(self._queue):
                if self._live >= self.config.max_sessions:
                    break
                rec = self._records[session_id]
                if rec.info.spec.depends_on:
                    ruling = verdict(rec.info.spec.depends_on, self._named)
                    if ruling.failed:
                        self._queue.remove(session_id)
                        rec.restart = False
                        self._set(rec, State.FAILED, reason=ruling.reason, ended_at=time.time())
                        self._release(rec)
                        continue
                    if not ruling.go:
                        if rec.info.reason != ruling.reason:
                            self._set(rec, State.QUEUED, reason=ruling.reason)
                        continue
                self._queue.remove(session_id)
                self._set(rec, State.RUNNING, started_at=time.time(), reason=None)
                self._spawn_task(self._run(rec))
        finally:
            self._pumping = False

    def _named(self, name: str) -> SessionInfo | None:
        """The latest session called `name` (what a dependency names)."""
        found = [r.info for r in self._records.values() if r.info.spec.name == name]
        return max(found, key=lambda info: info.created_at) if found else None

    def _release(self, rec: _Record) -> None:
        """A queued session that will never run: its lock and waiters let go."""
        rec.ended.set()
        rec.notify()

    async def _run(self, rec: _Record) -> None:
        try:
            while await self._one_run(rec):
                pass
        except Exception as exc:  # a bug must not leave a session live forever
            if rec.info.state.live:
                self._set(
                    rec, State.FAILED, reason=f"internal error: {exc!r}", ended_at=time.time()
                )
            raise
        finally:
            rec.ended.set()
            rec.notify()
            if rec.info.state.final:
                self._held = False  # one of ours ended: a slot may be free out there
            self._pump()
            await self._retention()

    async def _one_run(self, rec: _Record) -> bool:
        """Run the process once; returns True if it must run again (restart)."""
        info = rec.info
        spec = info.spec
        rec.kill_state = rec.kill_reason = None
        rec.error_reported = False
        try:
            transcript = TranscriptWriter(info.directory, newlines=info.lines)
        except OSError as exc:
            self._finish(
                rec, State.FAILED, f"cannot open transcript: {exc.strerror}", ended_at=time.time()
            )
            return False
        if transcript.offset and transcript.last_byte != b"\n":
            transcript.write(META, b"\n")  # the next run starts on a line of its own
        rec.out_offset = transcript.offset + transcript.bytes_lost
        run_at = (transcript.offset, transcript.newlines)  # where this run's output begins
        rec.alt = AltScreenTracker() if spec.tty else None
        loop = asyncio.get_running_loop()
        writer = WriteBehind(transcript, loop, on_written=lambda: self._written(rec))
        rec.writer = writer
        # Whole chunks (up to a pipe's worth) are dropped past the window: twice the
        # tail, so that at least UNKEPT_TAIL stays.
        rec.unkept = OutputTap(rec.out_offset, window=2 * UNKEPT_TAIL, kept=lambda: writer.offset)
        mux = LineMux(
            lambda stream, data: self._write(rec, stream, data), spool_dir=str(info.directory)
        )

        partial_timer: list[asyncio.TimerHandle] = []

        def flush_partial() -> None:
            partial_timer.clear()
            mux.flush_partial()
            self._emit(OutputAppended(info.id, writer.offset, writer.newlines))

        def on_data(stream: int, data: bytes) -> None:
            if spec.tty:  # one stream, nothing to merge: a prompt shows at once
                self._write(rec, stream, data)
                self._emit(OutputAppended(info.id, writer.offset, writer.newlines))
                return
            mux.feed(stream, data)
            if mux.has_partial and not partial_timer:
                partial_timer.append(loop.call_later(PARTIAL_LINE_DELAY, flush_partial))
            self._emit(OutputAppended(info.id, writer.offset, writer.newlines))

        def on_eof(stream: int) -> None:
            mux.eof(stream)
            self._emit(OutputAppended(info.id, writer.offset, writer.newlines))

        try:
            proc = await self._launch(rec, on_data, on_eof)
        except OSError as exc:
            await writer.aclose()
            mux.close()
            detail = exc.strerror or str(exc)
            # The shell's cwd went away (or shut us out) since the spec was checked.
            where = exc.filename is not None and str(exc.filename) == spec.cwd
            what = f"cannot enter directory {spec.cwd}" if where else f"cannot start {spec.shell}"
            self._finish(rec, State.FAILED, f"{what}: {detail}", ended_at=time.time())
            return False
        rec.proc = proc
        rec.pid = proc.pid
        if isinstance(proc, ProcessTree):  # a slow disk holds the process back, not memory
            rec.gate.attach(proc.pause_reading, proc.resume_reading)
            gate = rec.gate
            writer.pause, writer.resume = lambda: gate.hold(writer), lambda: gate.release(writer)
        now = time.time()
        record_start(info.directory, RunStart(rec.info.run, *run_at, now))  # as started_at
        deadline = now + spec.ttl if spec.ttl else None
        ready_at = None if spec.ready_when else now  # without a probe: ready once started
        self._set(
            rec,
            rec.info.state,
            pid=rec.pid,
            started_at=now,
            ttl_deadline=deadline,
            ready_at=ready_at,
        )
        if spec.ready_when:
            rec.probe = loop.create_task(self._probe_ready(rec, info.transcript, rec.out_offset))
        if spec.ttl:
            rec.ttl_handle = asyncio.get_running_loop().call_later(spec.ttl, self._expire, rec)
        try:
            ending = await proc.wait()
        finally:
            if rec.probe is not None:
                rec.probe.cancel()
                rec.probe = None
            if rec.ttl_handle is not None:
                rec.ttl_handle.cancel()
                rec.ttl_handle = None
            for handle in partial_timer:
                handle.cancel()
            mux.flush()
            mux.close()
            await writer.aclose()
            if writer.error is None:
                rec.unkept = None  # the disk kept it all
            rec.gate.release(writer)
            rec.gate.detach()
            rec.proc = None
        code = ending.returncode
        sig = -code if code is not None and code < 0 else None
        exit_code = 128 + sig if sig is not None else code
        rec.alt = None
        ended: dict[str, Any] = {
            "exit_code": exit_code,
            "signal": sig,
            "ended_at": time.time(),
            "pid": None,
            "alt_screen": None,  # a program that died in it left it with its terminal
            "kill_at": None,
        }
        why = rec.kill_reason if rec.kill_state is not None else ending.reason
        record_end(info.directory, RunEnd(rec.info.run, ended["ended_at"], exit_code, sig, why))
        ended.update(
            bytes=writer.offset,
            lines=writer.newlines,
            write_error=writer.error,
            bytes_lost=writer.bytes_lost,
        )
        if ending.requeue and rec.kill_state is None and not self._closed:
            rec.restart = False
            rec.writer = None
            self._requeue(rec, ending.reason or "the far side is full")
            return False
        if rec.restart and not self._closed:
            rec.restart = False
            rec.writer = None
            self._set(
                rec,
                State.RUNNING,
                run=rec.info.run + 1,
                started_at=time.time(),
                bytes=writer.offset,
                lines=writer.newlines,
                restarts=0,  # only a user restarts a live session
                **_NEW_RUN,
            )
            return True
        rec.restart = False
        rec.writer = None
        if ending.state is not None and rec.kill_state is None:
            self._finish(rec, ending.state, ending.reason, **ended)
        elif rec.kill_state is State.EXPIRED:
            self._finish(rec, State.EXPIRED, f"TTL of {spec.ttl:g}s ran out", **ended)
        elif rec.kill_state is State.KILLED:
            self._finish(rec, State.KILLED, rec.kill_reason, **ended)
        else:
            self._finish(rec, State.EXITED, None, **ended)
        return False

    def _finish(self, rec: _Record, state: State, reason: str | None, **ended: Any) -> None:
        """End the run in final `state`, scheduling an automatic restart if the
        session's policy asks for one and its count allows it."""
        info = rec.info
        spec = info.spec
        restarts = info.restarts
        ended_at = ended["ended_at"]
        if info.started_at is not None and ended_at - info.started_at >= STABLE_SECONDS:
            restarts = 0  # a healthy run: the backoff starts over
        restart_at = None
        rec.end_reason = reason
        if not self._closed and wants_restart(spec.restart, state, ended.get("exit_code")):
            if restarts < spec.max_restarts:
                delay = restart_delay(spec.restart_delay, restarts)
                restart_at = time.time() + delay
                rec.restart_handle = asyncio.get_running_loop().call_later(
                    delay, self._auto_restart, rec
                )
                note = f"restarting in {delay:.3g}s (restart {restarts + 1} of {spec.max_restarts})"
                reason = _joined(reason, note)
            elif restarts:
                reason = _joined(reason, f"gave up after {_restarts(restarts)}")
        self._set(rec, state, reason=reason, restarts=restarts, restart_at=restart_at, **ended)

    def _auto_restart(self, rec: _Record) -> None:
        """The backoff is over: queue the session's next run (timer callback)."""
        rec.restart_handle = None
        if self._closed or not rec.info.state.final:
            return
        n = rec.info.restarts + 1
        reason = f"automatic restart {n} of {rec.info.spec.max_restarts}"
        self._queue_new_run(rec, restarts=n, reason=reason)

    def _cancel_restart(self, rec: _Record, why: str) -> None:
        """Drop a pending automatic restart; the session stays in its final state."""
        if rec.restart_handle is not None:
            rec.restart_handle.cancel()
            rec.restart_handle = None
        self._set(rec, rec.info.state, restart_at=None, reason=_joined(rec.end_reason, why))

    def _queue_new_run(self, rec: _Record, **changes: Any) -> None:
        """Queue a finished session as its next run."""
        new_run = {**_NEW_RUN, "restart_at": None, **changes}
        self._set(rec, State.QUEUED, run=rec.info.run + 1, started_at=None, **new_run)
        rec.ended.clear()
        if rec.lock_fd is None:
            rec.lock_fd = self._lock(rec)
        self._queue.append(rec.info.id)
        self._pump()

    def _lock(self, rec: _Record) -> int:
        """Take the session's lock (back from the meta writer if it still has it);
        InvalidTransition if another ccx-tui holds it (it restarted the session, or its
        retention is deleting it) or the session's folder is gone."""
        fd = self._meta.reclaim_lock(rec.info.directory)
        if fd is not None:
            return fd
        try:
            return self.store.lock_session(rec.info.directory)
        except FileNotFoundError:
            raise InvalidTransition(f"its folder is gone: {rec.info.directory}") from None
        except OSError:
            raise InvalidTransition("another ccx-tui owns this session now") from None

    def _validate(self, spec: SessionSpec) -> SessionSpec:
        """Check the spec where it will run (its launcher's rules)."""
        return self.launcher.validate(spec)

    async def _launch(self, rec: _Record, on_data: OnData, on_eof: OnEof) -> Proc:
        """Start one run of the session, through the launcher."""

        def on_pid(pid: int | None) -> None:  # known after the launch (a server's)
            if rec.info.state.live and rec.proc is not None:
                rec.pid = pid
                self._set(rec, rec.info.state, pid=pid)

        request = RunRequest(rec.info.spec, rec.marker, rec.size, on_data, on_eof, on_pid)
        return await self.launcher.launch(request)

    async def _probe_ready(self, rec: _Record, transcript: Path, start: int) -> None:
        """Run the session's ready_when probe until it passes (cancelled at the end of
        the run); then the run is ready."""
        run = rec.info.run
        if await wait_ready(rec.info.spec, transcript, start) and rec.info.run == run:
            if rec.info.state.live:
                self._set(rec, rec.info.state, ready_at=time.time())

    def _requeue(self, rec: _Record, reason: str) -> None:
        """Back to the front of the queue; retried when one of ours ends."""
        self._set(rec, State.QUEUED, reason=reason, pid=None)
        self._queue.appendleft(rec.info.id)
        self._held = True

    def _write(self, rec: _Record, stream: int, data: bytes) -> None:
        writer = rec.writer
        if writer is None:
            return
        offset = rec.out_offset
        rec.out_offset += len(data)
        writer.write(stream, data)
        if rec.unkept is not None:
            rec.unkept.put(offset, stream, data)
        for tap in rec.taps:
            tap.put(offset, stream, data)
        self._report_write_error(rec)
        alt = rec.alt
        if alt is not None and alt.feed(offset, data):
            self._set(rec, rec.info.state, alt_screen=alt.active_at)

    def _written(self, rec: _Record) -> None:
        """The writer thread put more on disk: taps let go of what it has; tell the views."""
        writer = rec.writer
        if writer is not None:
            if rec.unkept is not None:
                rec.unkept.drop_kept()
            for tap in rec.taps:
                tap.drop_kept()
            self._emit(OutputAppended(rec.info.id, writer.offset, writer.newlines))
            self._report_write_error(rec)

    def _report_write_error(self, rec: _Record) -> None:
        writer = rec.writer
        if writer is not None and writer.error is not None and not rec.error_reported:
            rec.error_reported = True
            self._emit(SessionUpdated(self._snapshot(rec)))
            rec.notify()  # wakes `until_unkept`

    def _expire(self, rec: _Record) -> None:
        rec.ttl_handle = None
        if rec.info.state.live and rec.kill_state is None:
            rec.kill_state = State.EXPIRED
            self._spawn_task(self._terminate(rec, force=False))

    async def _terminate(self, rec: _Record, *, force: bool) -> None:
        if rec.proc is None:
            # Still starting: wait until it runs, or the run ended.
            await rec.wait_until(lambda: rec.proc is not None or not rec.info.state.live)
            if rec.proc is None:
                return
        grace = self.config.kill_grace
        if not force and grace > 0 and rec.info.state.live:
            # Seen as "stopping (SIGKILL in 3s)" until the run ends.
            self._set(rec, rec.info.state, kill_at=time.time() + grace)
        await rec.proc.terminate(force=force, grace=grace)

    async def _retention(self) -> None:
        if sum(r.info.bytes for r in self._records.values()) <= self.config.retention_bytes:
            return  # the common case, decided without a snapshot or a thread
        await asyncio.to_thread(self._meta.flush)  # no write may race a deletion
        infos = [self._snapshot(r) for r in self._records.values()]
        live = {  # a session waiting to restart is kept like a live one
            r.info.id
            for r in self._records.values()
            if not r.info.state.final or r.restart_handle is not None
        }
        deleted = await asyncio.to_thread(
            self.store.enforce_retention, self.config.retention_bytes, infos, live
        )
        for session_id in deleted:
            rec = self._records.get(session_id)
            if rec is not None and rec.info.state.final and rec.restart_handle is None:
                del self._records[session_id]
                self._counts[rec.info.state] -= 1
                self._emit(SessionRemoved(session_id))


def wants_restart(policy: str, state: State, exit_code: int | None) -> bool:
    """Whether a run that ended in `state` is run again under restart `policy`.

    Only a run that ended on its own counts: killed, lost and interrupted never do.
    """
    if state is State.EXITED:
        return policy == "always" or (policy == "on-failure" and exit_code != 0)
    if state in (State.FAILED, State.EXPIRED):
        return policy in ("always", "on-failure")
    return False


def restart_delay(first: float, restarts: int) -> float:
    """Seconds before automatic restart number `restarts + 1`: doubling, capped."""
    return min(first * 2.0 ** min(restarts, _MAX_DOUBLINGS), MAX_RESTART_DELAY)


def _restarts(n: int) -> str:
    return f"{n} restart" if n == 1 else f"{n} restarts"


def _joined(reason: str | None, note: str) -> str:
    return f"{reason}; {note}" if reason else note
