"""Restart policies of the local engine: backoff, maximum, cancelling, and the sidebar."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from ccx_tui.app import make_app
from ccx_tui.config import Settings
from ccx_tui.engine import SessionInfo, SessionSpec, State
from ccx_tui.engine.sessions import local as local_engine
from ccx_tui.engine.sessions.events import SessionUpdated, Subscriber
from ccx_tui.engine.sessions.local import restart_delay, wants_restart
from ccx_tui.engine.sessions.process import MARKER_ENV
from ccx_tui.widgets.sidebar import session_row
from tests.helpers import marked_processes, until, wait_gone

FAIL = f'echo "${MARKER_ENV}"; exit 3'
"""Prints `<id>.<run>`, then fails: every run leaves its own line in the transcript."""


@dataclass
class Runs:
    """What the engine's events said about one session, run by run."""

    started: dict[int, float] = field(default_factory=dict)  # run -> started_at
    finals: list[SessionInfo] = field(default_factory=list)  # every final update


def drain(sub: Subscriber, session_id: str) -> Runs:
    """Everything the subscriber got about the session so far, run by run."""
    runs = Runs()
    while (event := sub.get_nowait()) is not None:
        if isinstance(event, SessionUpdated) and event.info.id == session_id:
            info = event.info
            if info.state is State.RUNNING and info.pid is not None:
                runs.started[info.run] = info.started_at or 0.0
            elif info.state.final:
                runs.finals.append(info)
    return runs


def test_policy_table() -> None:
    """Which endings restart under which policy: only endings of the run's own."""
    assert not wants_restart("never", State.EXITED, 1)
    assert not wants_restart("on-failure", State.EXITED, 0)
    assert wants_restart("on-failure", State.EXITED, 3)
    assert wants_restart("on-failure", State.FAILED, None)
    assert wants_restart("on-failure", State.EXPIRED, 143)
    assert wants_restart("always", State.EXITED, 0)
    for state in (State.KILLED, State.LOST, State.INTERRUPTED):
        assert not wants_restart("always", state, 1)
    assert [restart_delay(1.0, n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(1.0, 5000) == local_engine.MAX_RESTART_DELAY  # no overflow


async def test_on_failure_backs_off_then_gives_up(make_engine) -> None:
    """A failing command runs 1 + max_restarts times, each wait twice the last; then it
    stays `exit 3` with 'gave up after 4 restarts'.  The transcript has every run's
    line, and wait() returned only at the very end."""
    spec = SessionSpec(FAIL, restart="on-failure", max_restarts=4, restart_delay=0.1)
    async with make_engine() as engine:
        sub = engine.subscribe()
        info = await engine.start(spec)
        done = await engine.wait(info.id)
        runs = drain(sub, info.id)
    assert done.state is State.EXITED and done.exit_code == 3
    assert done.run == 5 and done.restarts == 4 and done.restart_at is None
    assert done.reason == "gave up after 4 restarts"
    assert done.transcript.read_text() == "".join(f"{info.id}.{n}\n" for n in range(1, 6))
    assert [f.reason for f in runs.finals] == [
        "restarting in 0.1s (restart 1 of 4)",
        "restarting in 0.2s (restart 2 of 4)",
        "restarting in 0.4s (restart 3 of 4)",
        "restarting in 0.8s (restart 4 of 4)",
        "gave up after 4 restarts",
    ]
    assert [f.restarts for f in runs.finals] == [0, 1, 2, 3, 4]
    assert all(f.restart_at is not None for f in runs.finals[:-1])
    # The engine never restarts early, and the gaps grow with the backoff.
    assert sorted(runs.started) == [1, 2, 3, 4, 5]
    gaps = [runs.started[f.run + 1] - (f.ended_at or 0.0) for f in runs.finals[:-1]]
    for gap, delay in zip(gaps, (0.1, 0.2, 0.4, 0.8), strict=True):
        assert gap >= delay - 0.01  # (time.time() against the loop's monotonic timer)
    assert gaps[-1] > gaps[0] * 2
    starts = [runs.started[n] for n in range(1, 6)]
    assert starts == sorted(starts)


async def test_on_failure_leaves_success_alone(make_engine) -> None:
    async with make_engine() as engine:
        info = await engine.start(SessionSpec("echo ok", restart="on-failure"))
        done = await engine.wait(info.id)
    assert done.state is State.EXITED and done.exit_code == 0
    assert (done.run, done.restarts, done.restart_at, done.reason) == (1, 0, None, None)


async def test_always_restarts_success(make_engine) -> None:
    command = FAIL.replace("exit 3", "exit 0")
    spec = SessionSpec(command, restart="always", max_restarts=2, restart_delay=0.01)
    async with make_engine() as engine:
        info = await engine.start(spec)
        done = await engine.wait(info.id)
    assert done.exit_code == 0 and done.run == 3 and done.restarts == 2
    assert done.reason == "gave up after 2 restarts"
    assert done.transcript.read_text().count(info.id) == 3


async def test_never_is_the_default(make_engine) -> None:
    assert SessionSpec("exit 1").restart == "never"
    async with make_engine() as engine:
        done = await engine.wait((await engine.start(SessionSpec("exit 1"))).id)
    assert (done.state, done.run, done.restarts, done.reason) == (State.EXITED, 1, 0, None)


async def test_unstartable_and_expired_runs_restart_on_failure(make_engine) -> None:
    """FAILED (cannot start) and EXPIRED (TTL) count as failures; the run's own reason
    stays in front of the restart note."""
    bad_shell = SessionSpec(
        "true", shell="/nonexistent/shell", restart="on-failure", max_restarts=2, restart_delay=0
    )
    ttl = SessionSpec("sleep 1000", ttl=0.2, restart="on-failure", max_restarts=1, restart_delay=0)
    async with make_engine() as engine:
        failed = await engine.wait((await engine.start(bad_shell)).id)
        expired = await engine.wait((await engine.start(ttl)).id)
    assert failed.state is State.FAILED and failed.run == 3
    assert (failed.reason or "").startswith("cannot start /nonexistent/shell")
    assert (failed.reason or "").endswith("; gave up after 2 restarts")
    assert expired.state is State.EXPIRED and expired.run == 2
    assert expired.reason == "TTL of 0.2s ran out; gave up after 1 restart"


async def test_user_kill_during_a_run_stops_the_loop(make_engine) -> None:
    async with make_engine() as engine:
        info = await engine.start(SessionSpec("echo up; sleep 1000", restart="always"))
        await until(lambda: engine.get(info.id).bytes > 0, what="running")
        await engine.kill(info.id)
        done = await engine.wait(info.id)  # returns: nothing is pending
    assert done.state is State.KILLED and done.run == 1
    assert done.restart_at is None and done.reason == "killed"
    assert wait_gone(info.id) == []


async def test_kill_during_the_backoff_cancels_the_restart(make_engine) -> None:
    """Killing a session that waits to restart keeps it `exit 3`, says 'restart
    cancelled', and wait() returns."""
    spec = SessionSpec("exit 3", restart="on-failure", restart_delay=30)
    async with make_engine() as engine:
        info = await engine.start(spec)
        await until(lambda: engine.get(info.id).restart_at is not None, what="backoff")
        waiter = asyncio.create_task(engine.wait(info.id))
        await asyncio.sleep(0)
        assert not waiter.done()  # a pending restart is not the end
        await engine.kill(info.id)
        done = await waiter
    assert done.state is State.EXITED and done.exit_code == 3 and done.run == 1
    assert done.restart_at is None and done.reason == "restart cancelled"


async def test_manual_restart_resets_the_count_and_skips_the_wait(make_engine) -> None:
    spec = SessionSpec("exit 3", restart="on-failure", restart_delay=0.05)
    async with make_engine() as engine:
        info = await engine.start(spec)
        await until(
            lambda: (
                engine.get(info.id).restarts >= 2 and engine.get(info.id).restart_at is not None
            ),
            what="two restarts and a third due",
        )
        before = engine.get(info.id)
        again = await engine.restart(info.id)
        # At once: already queued or running, no restart pending, the count reset.
        assert again.state in (State.QUEUED, State.RUNNING)
        assert again.run == before.run + 1
        assert (again.restarts, again.restart_at) == (0, None)
        await until(
            lambda: engine.get(info.id).run == again.run and engine.get(info.id).state.final,
            what="the manual run ended",
        )
        assert engine.get(info.id).reason == "restarting in 0.05s (restart 1 of 10)"
        await engine.kill(info.id)


async def test_restarts_queue_behind_the_session_limit(make_engine) -> None:
    """A restarting session goes through the queue: with the only slot taken it waits
    `queued`, and the limit is never exceeded."""
    spec = SessionSpec("exit 3", restart="on-failure", max_restarts=2, restart_delay=0.5)
    async with make_engine(max_sessions=1) as engine:
        looping = await engine.start(spec)
        await until(lambda: engine.get(looping.id).restart_at is not None, what="backoff")
        blocker = await engine.start(SessionSpec("echo hold; sleep 1000"))
        await until(lambda: engine.get(looping.id).state is State.QUEUED, what="requeued")
        queued = engine.get(looping.id)
        assert queued.reason == "automatic restart 1 of 2" and queued.restarts == 1
        assert engine.get(blocker.id).state is State.RUNNING
        assert engine.stats.queued == 1
        await engine.kill(blocker.id)
        done = await engine.wait(looping.id)
        assert done.run == 3 and done.reason == "gave up after 2 restarts"
        assert engine.max_live_seen == 1


async def test_close_during_the_backoff_leaves_nothing_pending(make_engine, data_dir) -> None:
    spec = SessionSpec("echo once; exit 3", restart="on-failure", restart_delay=0.2)
    async with make_engine() as engine:
        info = await engine.start(spec)
        await until(lambda: engine.get(info.id).restart_at is not None, what="backoff")
    closed = engine.get(info.id)
    assert closed.state is State.EXITED and closed.restart_at is None
    assert closed.reason == "restart cancelled (ccx-tui exited)"
    await asyncio.sleep(0.4)  # past the restart's due time: nothing may run (the check)
    assert engine.get(info.id).run == 1
    assert marked_processes(info.id) == []
    assert info.transcript.read_bytes() == b"once\n"
    async with make_engine() as engine:  # and what was saved says the same
        [loaded] = engine.sessions()
        assert (loaded.state, loaded.restart_at, loaded.restarts) == (State.EXITED, None, 0)


async def test_wait_waits_through_restarts(make_engine) -> None:
    spec = SessionSpec("exit 1", restart="on-failure", max_restarts=3, restart_delay=0.02)
    async with make_engine() as engine:
        info = await engine.start(spec)
        done = await engine.wait(info.id)
    assert done.run == 4 and done.restarts == 3 and done.restart_at is None


async def test_a_healthy_run_starts_the_backoff_over(
    make_engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run 3 stays up longer than STABLE_SECONDS before failing: the count goes back to
    0, so the next restart is 'restart 1 of 4' again and the maximum comes later."""
    monkeypatch.setattr(local_engine, "STABLE_SECONDS", 1.0)
    command = (
        "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; "
        "if [ $n -eq 3 ]; then sleep 1.2; fi; exit 1"
    )
    spec = SessionSpec(
        command, cwd=str(tmp_path), restart="on-failure", max_restarts=4, restart_delay=0.05
    )
    async with make_engine() as engine:
        sub = engine.subscribe()
        info = await engine.start(spec)
        done = await engine.wait(info.id)
        runs = drain(sub, info.id)
    notes = [(f.reason or "").split("(")[-1] for f in runs.finals]
    assert notes == [
        "restart 1 of 4)",
        "restart 2 of 4)",
        "restart 1 of 4)",  # after the healthy run 3
        "restart 2 of 4)",
        "restart 3 of 4)",
        "restart 4 of 4)",
        "gave up after 4 restarts",
    ]
    assert done.run == 7


async def test_sidebar_shows_the_crash_loop(data_dir: Path) -> None:
    """The sidebar shows '↻N' restarts so far and 'gave up after N restarts' for a crash
    loop, and a 'restart in' countdown while one is due."""
    app = make_app(Settings(data_dir=data_dir, kill_grace=0.3), [], sample_usage=False)

    def text() -> str:
        strips = app.screen._compositor.render_strips()
        return "\n".join(strip.text for strip in strips)

    async with app.run_test(size=(120, 36)):
        spec = SessionSpec("exit 1", restart="on-failure", max_restarts=3, restart_delay=0.01)
        await app.engine.start(spec)
        slow = SessionSpec("exit 2", restart="on-failure", restart_delay=300)
        slow_info = await app.engine.start(slow)
        await until(lambda: "gave up after 3 restarts" in text(), what="gave up")
        await until(lambda: "restart in " in text(), what="countdown")
        assert "exit 1 ↻3" in text()
        await app.engine.kill(slow_info.id)
        await until(lambda: "restart in " not in text(), what="countdown gone")


def test_session_row_counts_down() -> None:
    info = SessionInfo(
        id="0" * 16,
        spec=SessionSpec("exit 1", restart="on-failure"),
        state=State.EXITED,
        directory=Path("/nonexistent"),
        created_at=0.0,
        run=4,
        started_at=100.0,
        ended_at=101.0,
        exit_code=1,
        restarts=3,
        restart_at=105.5,
    )
    row = session_row(info, now=101.2, usage=None, selected=False).plain
    assert "exit 1 ↻3" in row and "restart in 5s" in row
    fresh = replace(info, state=State.QUEUED, restarts=0, restart_at=None, exit_code=None)
    assert "↻" not in session_row(fresh, now=101.2, usage=None, selected=False).plain
    gave_up = replace(info, restarts=10, restart_at=None, spec=replace(info.spec, max_restarts=10))
    row = session_row(gave_up, now=101.2, usage=None, selected=False).plain
    assert "exit 1 ↻10" in row and "gave up after 10 restarts" in row
