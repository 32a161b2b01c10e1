"""Honest status (issue 13): a kill's grace period is shown as such."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccx_tui.app import make_app
from ccx_tui.config import Settings
from ccx_tui.engine import SessionSpec, State
from tests.helpers import until
from tests.test_app import SIZE, screen_text

STUBBORN = "trap '' TERM; echo up; while :; do sleep 0.1; done"


async def test_a_kill_says_when_sigkill_follows(make_engine) -> None:
    """While a kill waits out the grace period, the session is still running (it is)
    and says when SIGKILL follows; once it ended, that is gone."""
    async with make_engine(kill_grace=2.0) as engine:
        info = await engine.start(SessionSpec(STUBBORN))
        await until(lambda: engine.get(info.id).bytes > 0)
        kill = asyncio.ensure_future(engine.kill(info.id))
        await until(lambda: engine.get(info.id).kill_at is not None, what="kill_at")
        stopping = engine.get(info.id)
        assert stopping.state is State.RUNNING
        assert stopping.kill_at is not None and stopping.kill_at > (stopping.started_at or 0)
        await kill
        done = engine.get(info.id)
        assert done.state is State.KILLED and done.kill_at is None


async def test_the_app_shows_stopping_with_the_countdown(data_dir: Path) -> None:
    app = make_app(Settings(data_dir=data_dir, kill_grace=3.0), [STUBBORN], sample_usage=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 1)
        await until(lambda: "up" in screen_text(app))
        await pilot.press("x")
        await until(lambda: "stopping (SIGKILL in " in screen_text(app), what="stopping")
        await until(lambda: "killed" in screen_text(app), what="killed", timeout=30)
        assert "stopping" not in screen_text(app)
