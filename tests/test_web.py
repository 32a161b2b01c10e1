"""`ccx-tui web`: the real server, real app processes, a real headless Chromium."""

from __future__ import annotations

import http.client
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from ccx_tui.web_auth import COOKIE_LIFETIME, Gate, cookie_name, same_origin
from tests.browser import (
    CHROMEDRIVER,
    CHROMIUM,
    MISSING,
    WebProcess,
    chrome,
    new_tab,
    poll,
    type_keys,
    wait_screen,
)

pytestmark = pytest.mark.timeout(60)

# The command prints what its own command line does not contain, so the sidebar or a
# tab title cannot satisfy a wait for its output.
MARKER = "WEB-MARKER-42"
CONFIG = """
[[session]]
name = "hello"
command = "echo WEB-MARKER-$((6 * 7)); sleep 120"
"""
HELP = "ccx-tui keys"  # the help screen's title (widgets/help.py)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail(MISSING)
    browser = chrome()
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Callable[..., WebProcess]]:
    """Start `ccx-tui web` on the test's data dir and a ccx.toml with one session."""
    started: list[WebProcess] = []

    def start(*args: str, tty: bool = True) -> WebProcess:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        config = tmp_path / "ccx.toml"
        config.write_text(CONFIG)
        data = ["--data-dir", str(tmp_path / "data"), "--config", str(config)]
        server = WebProcess([*data, *args], home, tty=tty)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def fresh_page(driver: Any, url: str) -> None:
    """Forget every login, then load `url`."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get(url)


def request(
    base: str, method: str, path: str, headers: dict[str, str] | None = None, body: str = ""
) -> tuple[int, http.client.HTTPMessage, str]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        conn.close()


def login_cookie(server: WebProcess, data_dir: Path) -> tuple[str, str]:
    """Log in with the token file as the login form does: (Cookie header, attributes)."""
    token = (data_dir / "web" / "token").read_text().strip()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = request(server.base_url, "POST", "/login", form, f"token={token}")
    assert status == 303 and headers["Location"] == "/"
    cookie, _, attributes = headers["Set-Cookie"].partition(";")
    return cookie, attributes


def ws_status(base: str, headers: dict[str, str]) -> int:
    """The status of a WebSocket handshake to /ws (101 if it was accepted)."""
    url = base.replace("http", "ws", 1) + "/ws?width=80&height=24"
    try:
        with connect(url, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def test_browser_logs_in_sees_output_and_types_keys(
    web: Callable[..., WebProcess], driver: Any, tmp_path: Path
) -> None:
    """The login link printed on the terminal logs the browser in (an HttpOnly,
    SameSite=Strict cookie) and is spent; the page runs the app, showing a session's
    output and taking keys (`?` opens the help).  Ctrl-C then stops the server without
    a traceback, closes the app process it ran, and the page says the session ended."""
    server = web()
    link = server.login_url()
    fresh_page(driver, link)
    wait_screen(driver, MARKER)
    assert driver.current_url == f"{server.base_url}/"  # the code is gone from the URL
    [cookie] = driver.get_cookies()
    assert cookie["name"] == f"ccx_web_{urlsplit(server.base_url).port}"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    type_keys(driver, "?")
    wait_screen(driver, HELP)

    status, _, _ = request(server.base_url, "GET", link[len(server.base_url) :])
    assert status == 401, "a login link works once"
    code = link.split("code=")[1].encode()
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and code in p.read_bytes()]
    assert not leaked, "the login code is printed on the terminal only"

    [app] = server.apps()
    token = (tmp_path / "data" / "web" / "token").read_text().strip()
    for secret in (token, code.decode()):
        assert secret not in " ".join(app.cmdline()), "a secret in the app's argv"
        assert secret not in repr(app.environ()), "a secret in the app's environment"
    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in server.output, server.output
    assert not psutil.wait_procs([app], timeout=10)[1], "the app process outlived the server"
    poll(
        lambda: driver.execute_script("return document.body.classList.contains('-closed')"),
        "the page to show that the session ended",
    )


def test_each_tab_is_one_more_client_and_closing_it_ends_only_its_app(
    web: Callable[..., WebProcess], driver: Any
) -> None:
    """Each browser tab runs its own app process; closing a tab ends that process
    (asked to quit) and nothing else: the other tab's app goes on taking keys."""
    server = web()
    fresh_page(driver, server.login_url())
    wait_screen(driver, MARKER)
    first_tab = driver.current_window_handle
    [first] = server.apps()

    new_tab(driver)
    driver.get(f"{server.base_url}/")  # the cookie is the browser's: no new login
    wait_screen(driver, MARKER)
    poll(lambda: len(server.apps()) == 2, lambda: f"two app processes: {server.apps()}")

    driver.close()
    driver.switch_to.window(first_tab)
    poll(lambda: server.apps() == [first], lambda: f"only the first app: {server.apps()}")
    type_keys(driver, "?")
    wait_screen(driver, HELP)
    assert server.stop() == 0
    assert "Traceback" not in server.output, server.output


def test_refuses_whoever_has_not_logged_in(web: Callable[..., WebProcess], tmp_path: Path) -> None:
    """Without the cookie nothing but the login page is served and the WebSocket is
    refused; the cookie only counts from the page's own origin (no cross-site WebSocket
    hijacking, not even from another port) and for a loopback Host (no DNS rebinding).
    The token file is the user's alone; with no terminal the login link is not printed."""
    server = web(tty=False)
    base = server.base_url
    assert "code=" not in server.output
    token_file = tmp_path / "data" / "web" / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700

    status, _, body = request(base, "GET", "/")
    assert status == 401 and 'action="/login"' in body
    assert request(base, "GET", "/static/js/textual.js")[0] == 401
    assert ws_status(base, {}) == 401

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = request(base, "POST", "/login", form, "token=wrong")
    assert status == 401 and "Set-Cookie" not in headers
    cookie, attributes = login_cookie(server, tmp_path / "data")
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes

    assert request(base, "GET", "/", {"Cookie": cookie})[0] == 200
    host = urlsplit(base).netloc
    assert request(base, "GET", "/", {"Cookie": cookie, "Host": f"evil.example:{host}"})[0] == 403
    name, value = cookie.split("=", 1)
    forged = f"{name}={int(value.split('.')[0]) + 1}.{value.split('.')[1]}"
    assert request(base, "GET", "/", {"Cookie": forged})[0] == 401

    assert ws_status(base, {"Cookie": cookie, "Origin": "http://evil.example"}) == 403
    assert ws_status(base, {"Cookie": cookie, "Origin": "http://127.0.0.1:1"}) == 403
    assert ws_status(base, {"Cookie": cookie, "Origin": base}) == 101
    assert server.stop() == 0
    assert "Traceback" not in server.output, server.output


def test_an_app_quits_when_the_server_dies(web: Callable[..., WebProcess], tmp_path: Path) -> None:
    """An app process whose server is killed (SIGKILL: no chance to ask it to quit)
    quits at the end of its input, as an app in a closed terminal does; Textual's own
    web driver would leave it running for good, an orphan nobody can reach."""
    server = web(tty=False)
    cookie, _ = login_cookie(server, tmp_path / "data")
    with connect(
        server.base_url.replace("http", "ws", 1) + "/ws",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    ) as ws:
        ws.recv(timeout=20)  # its first frame: the app is up
        [app] = server.apps()
        server.proc.kill()
        assert not psutil.wait_procs([app], timeout=15)[1], "the app outlived its server"


def run_web(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccx_tui", "web", "--no-config", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """A taken port: one clear line and exit status 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_web("--port", str(port), tmp_path=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"ccx-tui web: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    ), proc.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--host", "0.0.0.0"], "without TLS"),
        (["--host", "0.0.0.0", "--insecure", "--no-auth"], "--no-auth is for loopback only"),
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--port", "http"], "bad --port 'http'"),
    ],
)
def test_unsafe_or_bad_flags_are_refused(args: list[str], said: str, tmp_path: Path) -> None:
    """The rules of `ccx-tui serve`: TLS (or --insecure) off loopback, --no-auth on
    loopback only; a usage error is one line and exit status 2."""
    proc = run_web(*args, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert said in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_gate_codes_and_cookies() -> None:
    gate = Gate("s3cret")
    code = gate.new_code()
    assert not gate.redeem("nope") and gate.redeem(code) and not gate.redeem(code)
    assert gate.token_ok("s3cret\n") and not gate.token_ok("s3cre")
    cookie = gate.cookie(now=1000.0)
    assert gate.cookie_ok(cookie, now=1000.0 + COOKIE_LIFETIME - 1)
    assert not gate.cookie_ok(cookie, now=1000.0 + COOKIE_LIFETIME)
    assert not Gate("other").cookie_ok(cookie, now=1000.0)
    for bad in (None, "", "x", "1.2", cookie + "0", "999999999999." + cookie.split(".")[1]):
        assert not gate.cookie_ok(bad, now=1000.0)
    assert Gate(None).cookie_ok(None, now=0.0)


def test_same_origin_and_cookie_name() -> None:
    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000", secure=False)
    assert same_origin("http://LOCALHOST:8000", "localhost:8000", secure=False)
    assert same_origin("https://h.example", "h.example:443", secure=True)
    assert same_origin(None, "127.0.0.1:8000", secure=False)  # not a browser
    assert not same_origin("http://127.0.0.1:8001", "127.0.0.1:8000", secure=False)
    assert not same_origin("https://127.0.0.1:8000", "127.0.0.1:8000", secure=False)
    assert not same_origin("null", "127.0.0.1:8000", secure=False)
    assert cookie_name("127.0.0.1:8000", secure=False) == "ccx_web_8000"
    assert cookie_name("h.example", secure=True) == "ccx_web_443"
