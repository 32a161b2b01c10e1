"""`ccx-tui serve` always authenticates: generated token files, where clients find
them, --token-file / --token / --no-auth, and clear refusals (real servers and CLIs)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from ccx_tui.config import resolve_servers
from ccx_tui.config_file import ServerEntry
from ccx_tui.engine.server.server import CcxServer, ServeConfig
from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from ccx_tui.engine.wire.auth import ensure_token_file, local_token, read_token_file, token_path
from ccx_tui.errors import ConfigError
from tests.serving import CCX, CLEAN, serving


def exec_on(url: str, data_dir: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CCX, "exec", "--data-dir", str(data_dir), *extra, "--server", url, "--", "echo ran"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**CLEAN, **env},
    )


def test_token_file_is_private_made_once_and_kept(tmp_path: Path) -> None:
    token, path = ensure_token_file(tmp_path)
    assert path == token_path(tmp_path) == tmp_path / "serve" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(token) >= 40 and path.read_text() == token + "\n"
    assert ensure_token_file(tmp_path) == (token, path)  # kept across restarts
    assert local_token(tmp_path, "ws://127.0.0.1:8003/ws/mcp") == token
    assert local_token(tmp_path, "ws://[::1]:8003/ws/mcp") == token
    assert local_token(tmp_path, "wss://localhost:8003/ws/mcp") == token
    assert local_token(tmp_path, "ws://10.1.2.3:8003/ws/mcp") is None  # never sent afar


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "serve" / "token"
    loose.parent.mkdir()
    loose.write_text("abc\n")
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match="other users can read it .*chmod 600"):
        ensure_token_file(tmp_path)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(ConfigError, match="empty"):
        read_token_file(empty)
    with pytest.raises(ConfigError, match="missing: No such file"):
        read_token_file(tmp_path / "missing")


def test_loopback_servers_find_the_local_token(tmp_path: Path) -> None:
    """--connect URLs and [[server]] tables without token_env use the token file of a
    `serve` of the same data dir, for loopback URLs only."""
    token, _ = ensure_token_file(tmp_path)
    local = ServerEntry("here", "ws://127.0.0.1:9/ws/mcp")
    far = ServerEntry("far", "wss://box.example:8003/ws/mcp")
    targets = resolve_servers(
        ["ws://localhost:9/ws/mcp", "ws://10.0.0.1:9/ws/mcp"],
        None,
        [local, far],
        environ={},
        data_dir=tmp_path,
    )
    assert [t.token for t in targets] == [token, None, token, None]
    given = resolve_servers(["ws://localhost:9/x"], "mine", environ={}, data_dir=tmp_path)
    assert given[0].token == "mine"


async def test_a_server_never_runs_open_by_accident(tmp_path: Path) -> None:
    async with LocalEngine(EngineConfig(data_dir=tmp_path)) as engine:
        with pytest.raises(ValueError, match="token is required"):
            CcxServer(engine, ServeConfig(port=0))
        with pytest.raises(ValueError, match="loopback only"):
            CcxServer(engine, ServeConfig(host="0.0.0.0", port=0, no_auth=True))


def test_serve_makes_a_token_and_local_clients_find_it(tmp_path: Path) -> None:
    """Regression: a default `serve` let every local user run commands.  Now it makes
    a token in DATA_DIR/serve/token and says where (never the token itself); `exec`
    with the same data dir finds it; any other client is refused: HTTP 401, "refused:
    a token is required" or "refused: bad token", exit 2, one line."""
    srv = tmp_path / "srv"
    with serving(srv) as (url, said):
        path = token_path(srv)
        token = path.read_text().strip()
        assert f"(token in {path})" in said[-1] and token not in "".join(said)
        same = exec_on(url, srv)
        assert (same.returncode, same.stdout, same.stderr) == (0, "ran\n", "")
        other = exec_on(url, tmp_path / "other")
        assert other.returncode == 2 and other.stdout == ""
        assert other.stderr == f"ccx-tui: {url} refused: a token is required (--token-file FILE)\n"
        wrong = exec_on(url, tmp_path / "other", CCX_TUI_TOKEN="not-it")
        assert (wrong.returncode, wrong.stderr) == (2, f"ccx-tui: {url} refused: bad token\n")
        by_env = exec_on(url, tmp_path / "other", CCX_TUI_TOKEN=token)
        assert (by_env.returncode, by_env.stdout) == (0, "ran\n")
        by_file = exec_on(url, tmp_path / "other", "--token-file", str(path))
        assert (by_file.returncode, by_file.stdout) == (0, "ran\n")
        by_argv = exec_on(url, tmp_path / "other", "--token", token)
        assert (by_argv.returncode, by_argv.stdout) == (0, "ran\n")
        assert "visible to other users" in by_argv.stderr


def test_serve_token_from_a_file_from_argv_or_none(tmp_path: Path) -> None:
    """--token-file is read (a loose file refused); --token works with a warning that
    `ps` shows it; --no-auth is loud and lets anyone on this machine in."""
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    secret.chmod(0o644)
    loose = subprocess.run(
        [*CCX, "serve", "--port", "0", "--data-dir", str(tmp_path), "--token-file", str(secret)],
        capture_output=True,
        text=True,
        timeout=30,
        env=CLEAN,
    )
    assert loose.returncode == 2 and "other users can read it" in loose.stderr
    assert len(loose.stderr.splitlines()) == 1
    secret.chmod(0o600)
    with serving(tmp_path / "a", "--token-file", str(secret)) as (url, said):
        assert f"(token from {secret})" in said[-1]
        ok = exec_on(url, tmp_path / "c", CCX_TUI_TOKEN="from-a-file")
        assert (ok.returncode, ok.stdout) == (0, "ran\n")
        assert not token_path(tmp_path / "a").exists()
    with serving(tmp_path / "b", "--token", "on-argv") as (url, said):
        assert any("visible to other users" in line for line in said)
        ok = exec_on(url, tmp_path / "c", CCX_TUI_TOKEN="on-argv")
        assert (ok.returncode, ok.stdout) == (0, "ran\n")
    with serving(tmp_path / "d", "--no-auth") as (url, said):
        assert any("--no-auth: every user of this machine" in line for line in said)
        assert "(no authentication)" in said[-1]
        ok = exec_on(url, tmp_path / "c")
        assert (ok.returncode, ok.stdout) == (0, "ran\n")
