"""Sessions declared in a config file or Procfile, in the real app (Pilot)."""

from __future__ import annotations

from pathlib import Path

from ccx_tui.app import make_app
from ccx_tui.config import DeclaredSession, Settings
from ccx_tui.config_file import load_config
from ccx_tui.engine import State
from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.widgets.session_pane import SessionPane
from tests.helpers import until
from tests.test_app import SIZE, screen_text


def declared_app(data_dir: Path, declared: list[DeclaredSession]):  # type: ignore[no-untyped-def]
    return make_app(
        Settings(data_dir=data_dir, kill_grace=0.3),
        [],
        declared=declared,
        sample_usage=False,
    )


async def test_declared_sessions_start_or_wait_and_crash_loops_show(data_dir: Path) -> None:
    """`web` starts at once; `later` (autostart = false) waits as 'not started' until `r`;
    `flaky` fails, is restarted twice with backoff, then gives up, and the tab and the
    sidebar say so."""
    app = declared_app(
        data_dir,
        [
            DeclaredSession(SessionSpec("echo web-up; sleep 1000", name="web")),
            DeclaredSession(SessionSpec("echo later-ran", name="later"), autostart=False),
            DeclaredSession(
                SessionSpec(
                    "echo crash; exit 3",
                    name="flaky",
                    restart="on-failure",
                    max_restarts=2,
                    restart_delay=0.05,
                )
            ),
        ],
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 3, what="three tabs")
        web, later, flaky = (app.engine.get(sid) for sid in app._open)
        assert (web.spec.name, later.spec.name, flaky.spec.name) == ("web", "later", "flaky")
        await until(lambda: app.engine.get(web.id).state is State.RUNNING)
        assert app.engine.get(later.id).state is State.CREATED
        await until(
            lambda: "gave up after 2 restarts" in screen_text(app), what="the crash loop to end"
        )
        info = app.engine.get(flaky.id)
        assert info.state is State.EXITED and info.exit_code == 3 and info.restarts == 2
        assert info.run == 3
        label = lambda: app._tabs.label(f"s-{flaky.id}").plain  # noqa: E731
        await until(lambda: label() == "✘ flaky ↻2", what="the tab's restart badge")
        assert info.transcript.read_bytes().splitlines().count(b"crash") == 3

        await pilot.press("2")
        await until(lambda: "not started (r to start)" in screen_text(app))
        await pilot.press("r")
        await until(lambda: app.engine.get(later.id).state is State.EXITED)
        await until(lambda: "later-ran" in screen_text(app), what="the output of `later`")
        assert app.engine.get(later.id).run == 1


async def test_a_session_for_an_unknown_server_is_refused_clearly(data_dir: Path) -> None:
    app = declared_app(
        data_dir, [DeclaredSession(SessionSpec("echo hi", name="remote"), server="nowhere")]
    )
    async with app.run_test(size=SIZE):
        await until(lambda: len(app._notifications) > 0, what="a notification")
        messages = [note.message for note in app._notifications]
        assert messages == ["cannot start 'echo hi': no server 'nowhere'"]
        assert not app._open


async def test_example_config_runs(data_dir: Path, tmp_path: Path) -> None:
    """The shipped examples/ccx.toml loads and its sessions come up in the app."""
    example = Path(__file__).resolve().parent.parent / "examples" / "ccx.toml"
    config = load_config(example)
    local = [d for d in config.sessions if d.server is None]
    app = declared_app(data_dir, local)
    async with app.run_test(size=SIZE):
        await until(lambda: len(app.query(SessionPane)) == len(local), what="every example session")
        names = {app.engine.get(sid).spec.name for sid in app._open}
        assert names == {d.spec.name for d in local}
