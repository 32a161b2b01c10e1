"""Fixtures shared by the test suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from tests.helpers import stop_engines_under

if TYPE_CHECKING:
    from tests.test_e2e_tmux import Tmux


@pytest.fixture(autouse=True)
def _stop_engines(tmp_path: Path) -> Iterator[None]:
    """Engine processes a test's apps started (in its tmp_path) end with the test:
    apps detach on exit, leaving them running, as they should for users."""
    yield
    stop_engines_under(tmp_path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_engine(
    data_dir: Path,
) -> Callable[..., AbstractAsyncContextManager[LocalEngine]]:
    """`async with make_engine(max_sessions=2) as engine:` with a short kill grace."""

    @asynccontextmanager
    async def factory(**kwargs: Any) -> AsyncIterator[LocalEngine]:
        kwargs.setdefault("kill_grace", 0.5)
        config = EngineConfig(data_dir=kwargs.pop("data_dir", data_dir), **kwargs)
        async with LocalEngine(config) as engine:
            yield engine

    return factory


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    """A private tmux server for one test (see tests/test_e2e_tmux.py), closed after it."""
    from tests.test_e2e_tmux import Tmux

    server = Tmux(tmp_path)
    try:
        yield server
    finally:
        server.close()
