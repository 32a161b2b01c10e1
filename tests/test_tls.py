"""`serve --tls-cert/--tls-key` and wss:// clients, with a self-signed certificate made
here (by openssl, as a user would), over real sockets on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ccx_tui.config_file import load_config
from ccx_tui.engine.server.server import CcxServer, ServeConfig
from ccx_tui.engine.sessions.local import EngineConfig, LocalEngine
from ccx_tui.engine.sessions.session import SessionSpec, State
from ccx_tui.engine.wire.auth import server_tls
from ccx_tui.engine.wire.remote import RemoteError, RemoteRefused, RemoteRun
from ccx_tui.engine.wire.remote_engine import RemoteEngine
from ccx_tui.errors import ConfigError
from tests.helpers import until
from tests.serving import CCX, CLEAN, serving

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key): self-signed, for 127.0.0.1 and localhost."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_wss_round_trip_and_clear_failures(data_dir: Path, cert: tuple[Path, Path]) -> None:
    """With the CA file a wss:// run works (and the health probe over https); without
    it the certificate is refused by name; a ws:// URL for a TLS server says so."""
    out = {"stdout": b"", "stderr": b""}

    def sink(stream: str, data: bytes) -> None:
        out[stream] += data

    tls = server_tls(*cert)
    async with LocalEngine(EngineConfig(data_dir=data_dir / "srv", kill_grace=0.3)) as engine:
        config = ServeConfig(port=0, token="tok", tls=tls)
        async with CcxServer(engine, config) as server:
            url = f"wss://127.0.0.1:{server.port}/ws/mcp"
            run = RemoteRun(url, token="tok", ca_file=cert[0])
            outcome = await run.run(SessionSpec("echo over-tls; exit 3"), sink)
            assert (outcome.state, outcome.exit_code) == ("exited", 3)
            assert out["stdout"] == b"over-tls\n"
            with pytest.raises(RemoteRefused, match="certificate verify failed: .*--ca-file"):
                await RemoteRun(url, token="tok").run(SessionSpec("true"), sink)
            plain = f"ws://127.0.0.1:{server.port}/ws/mcp"
            with pytest.raises(RemoteError, match=r"a TLS server\? use wss://"):
                await RemoteRun(plain, token="tok").run(SessionSpec("true"), sink)
            remote = RemoteEngine(
                EngineConfig(data_dir=data_dir / "cli", kill_grace=0.3),
                url,
                token="tok",
                ca_file=cert[0],
            )
            async with remote:
                info = await remote.start(SessionSpec("echo via-engine"))
                done = await remote.wait(info.id)
                assert done.state is State.EXITED
                assert done.transcript.read_bytes() == b"via-engine\n"
                await until(lambda: remote.status.startswith("connected"), what="https probe")


def test_bad_certificate_files_are_one_line_errors(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        server_tls(tmp_path / "nope.pem", cert[1])
    with pytest.raises(ConfigError, match="cannot load certificate"):
        server_tls(cert[1], cert[1])  # a key is no certificate
    half = subprocess.run(
        [*CCX, "serve", "--port", "0", "--data-dir", str(tmp_path), "--tls-cert", str(cert[0])],
        capture_output=True,
        text=True,
        timeout=30,
        env=CLEAN,
    )
    assert half.returncode == 2 and "go together" in half.stderr


def test_serve_tls_and_exec_with_and_without_ca_file(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    """The CLIs as a user runs them: `serve --tls-cert --tls-key` says wss://; `exec
    --server wss://... --ca-file` runs; without --ca-file (self-signed) it fails with
    one line naming the certificate problem, exit 2; a ws:// URL fails clearly."""
    srv = tmp_path / "srv"
    tls = ("--tls-cert", str(cert[0]), "--tls-key", str(cert[1]))
    with serving(srv, *tls) as (url, said):
        assert "listening on wss://127.0.0.1:" in said[-1]

        def exec_on(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*CCX, "exec", "--data-dir", str(srv), *extra, "--server", url, "--", "echo ok"],
                capture_output=True,
                text=True,
                timeout=60,
                env=CLEAN,
            )

        good = exec_on(url, "--ca-file", str(cert[0]))
        assert (good.returncode, good.stdout, good.stderr) == (0, "ok\n", "")
        unverified = exec_on(url)
        assert unverified.returncode == 2 and unverified.stdout == ""
        assert len(unverified.stderr.splitlines()) == 1
        assert "certificate verify failed" in unverified.stderr
        plain = exec_on(url.replace("wss://", "ws://"), "--ca-file", str(cert[0]))
        assert plain.returncode == 1 and "use wss://" in plain.stderr
        assert len(plain.stderr.splitlines()) == 1
        no_ca = exec_on(url, "--ca-file", str(tmp_path / "missing.pem"))
        assert no_ca.returncode == 2 and "missing.pem: no such file" in no_ca.stderr


def test_server_table_takes_a_ca_file(tmp_path: Path) -> None:
    """`ca_file` in [[server]] is relative to the file, and only for wss:// URLs."""
    path = tmp_path / "ccx.toml"
    path.write_text('[[server]]\nname = "box"\nurl = "wss://box:8003/ws/mcp"\nca_file = "ca.pem"\n')
    [entry] = load_config(path).servers
    assert entry.ca_file == tmp_path / "ca.pem"
    path.write_text('[[server]]\nname = "box"\nurl = "ws://box:8003/ws/mcp"\nca_file = "ca.pem"\n')
    with pytest.raises(ConfigError, match="only a wss:// url uses a CA file"):
        load_config(path)
