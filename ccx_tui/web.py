"""`ccx-tui web`: the app in a browser through textual-serve, behind a login cookie.

textual-serve (an aiohttp app) runs one app process per browser connection and
relays its screen over a WebSocket; it has no authentication of its own.  This
module adds it, with the same rules as `ccx-tui serve`: always on (``--no-auth`` is
for loopback only), TLS or ``--insecure`` off loopback.

How a browser gets in, and what is checked: see web_auth.py.

Secrets never reach the app processes: not in their argv, not in their environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from ccx_tui.engine.sessions.stop_signals import on_stop_signals
from ccx_tui.engine.wire import auth
from ccx_tui.web_auth import (
    COOKIE_LIFETIME,
    Gate,
    WebOptions,
    cookie_name,
    ensure_token,
    same_origin,
    split_host,
)

QUIT_SPARE = 5.0
"""Seconds beyond the kill grace an app process has to quit before it is killed."""
DRIVER = "ccx_tui.web_driver:ServedDriver"
"""$TEXTUAL_DRIVER for the app processes (named, not imported: the server needs no Textual)."""
MAX_SIZE = 1000
"""Largest terminal width or height a browser may ask for."""


def app_command(data_dir: Path, config: Path | None) -> list[str]:
    """The argv of the app process each browser connection runs.

    Args:
        data_dir: The data dir, already resolved (the app must not resolve it again
            from a different environment or config file).
        config: The config file to use, already trusted; None: none (``--no-config``,
            so a ccx.toml in the directory is not asked about where nobody can answer).
    """
    argv = [sys.executable, "-m", "ccx_tui", "--data-dir", str(data_dir)]
    argv += ["--config", str(config)] if config is not None else ["--no-config"]
    return argv


LOGIN_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>ccx-tui: log in</title>
<meta name="viewport" content="width=device-width">
<style>
body {{ background: #0c181f; color: #e0e0e0; font: 16px monospace; margin: 4em; }}
input {{ font: inherit; width: 40em; max-width: 100%; }}
button {{ font: inherit; margin-top: 1em; }}
</style></head><body>
<h1>ccx-tui</h1>
<p>{message}</p>
<form method="post" action="/login">
<label for="token">Paste the token in DATA_DIR/web/token on the machine running
<code>ccx-tui web</code>, or open the login link it printed:</label><br>
<input id="token" name="token" type="password" autocomplete="off" autofocus><br>
<button type="submit">Log in</button>
</form></body></html>
"""

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""Nothing from other sites: textual-serve's page asks Google for a font we ship."""


class WebAppService(AppService):
    """One app process: an argv (no shell), in a session of its own."""

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv = argv
        self.process: asyncio.subprocess.Process | None = None

    async def _open_app_process(
        self, width: int = 80, height: int = 24
    ) -> asyncio.subprocess.Process:
        # Its own session: Ctrl-C in our terminal is ours to handle (we then ask
        # each app to quit), not a KeyboardInterrupt in every app at once.
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,
        )
        assert self.process.stdin is not None
        self._process = self.process
        self._stdin = self.process.stdin
        return self.process

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        env: dict[str, str] = super()._build_environment(width=width, height=height)
        # Ours quits when we are gone, however we went (Textual's would linger).
        env["TEXTUAL_DRIVER"] = DRIVER
        return env

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            # The app is gone (quit, crashed): the page should say so, not freeze.
            await self.remote_close()

    async def close(self, grace: float) -> None:
        """Ask the app to quit; kill its process group if it has not after `grace`.

        Cancelling it may leave the process running until it reads the end of its
        input (it then quits: see web_driver.py).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.stop()
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await process.wait()


class WebServer(Server):
    """textual-serve's server with a login, our own websocket handler and headers."""

    def __init__(
        self, argv: list[str], gate: Gate, *, secure: bool, loopback: bool, grace: float
    ) -> None:
        super().__init__(" ".join(argv), title="ccx-tui")
        self.argv = argv
        self.gate = gate
        self.secure = secure
        self.loopback = loopback
        self.grace = grace
        self.sockets: set[web.WebSocketResponse] = set()

    async def _make_app(self) -> web.Application:
        app: web.Application = await super()._make_app()
        app.middlewares.append(self.guard)
        app.router.add_get("/login", self.handle_login)
        app.router.add_post("/login", self.handle_login)
        app.on_response_prepare.append(self.add_headers)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Nothing: `run_web` says where we listen (textual-serve prints a logo)."""

    async def on_shutdown(self, app: web.Application) -> None:
        # Each handler then asks its app to quit; aiohttp waits for the handlers.
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-store")

    def host_ok(self, request: web.Request) -> bool:
        if not self.loopback:
            return True
        return auth.is_loopback(split_host(request.host, self.secure)[0])

    @web.middleware
    async def guard(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if not self.host_ok(request):
            # A name that resolves to us but is not ours: DNS rebinding.
            return web.Response(status=403, text="forbidden: not a loopback host\n")
        origin_ok = same_origin(request.headers.get("Origin"), request.host, self.secure)
        if request.path == "/login":
            if request.method == "POST" and not origin_ok:
                return web.Response(status=403, text="forbidden: cross-site\n")
            return await handler(request)
        cookie = request.cookies.get(cookie_name(request.host, self.secure))
        if not self.gate.cookie_ok(cookie, time.time()):
            if request.path == "/":
                return self.login_page("Log in to use ccx-tui here.")
            return web.Response(status=401, text="unauthorized: log in at /login\n")
        if request.path == "/ws" and not origin_ok:
            return web.Response(status=403, text="forbidden: cross-site\n")
        return await handler(request)

    def login_page(self, message: str, status: int = 401) -> web.Response:
        page = LOGIN_PAGE.format(message=html.escape(message))
        return web.Response(status=status, text=page, content_type="text/html")

    async def handle_login(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            form = await request.post()
            token = form.get("token")
            if not isinstance(token, str) or not self.gate.token_ok(token):
                return self.login_page("Wrong token.")
        elif self.gate.open:
            pass
        elif "code" not in request.query:
            return self.login_page("Log in to use ccx-tui here.")
        elif not self.gate.redeem(request.query["code"]):
            return self.login_page("That login link was used already, or is not from this server.")
        response = web.Response(status=303, headers={"Location": "/"})
        if not self.gate.open:
            response.set_cookie(
                cookie_name(request.host, self.secure),
                self.gate.cookie(time.time()),
                max_age=COOKIE_LIFETIME,
                path="/",
                httponly=True,
                samesite="Strict",
                secure=self.secure,
            )
        return response

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        # From the Host the browser used, so the socket goes where its cookie goes.
        scheme = "wss" if self.secure else "ws"
        context = {
            "font_size": max(6, min(64, to_int(request.query.get("fontsize", "16"), 16))),
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": "ccx-tui"},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=15)
        width = max(1, min(MAX_SIZE, to_int(request.query.get("width", "80"), 80)))
        height = max(1, min(MAX_SIZE, to_int(request.query.get("height", "24"), 24)))
        await ws.prepare(request)
        service = WebAppService(
            self.argv,
            write_bytes=ws.send_bytes,
            write_str=ws.send_str,
            close=ws.close,
            download_manager=self.download_manager,
        )
        self.sockets.add(ws)
        try:
            try:
                await service.start(width, height)
            except OSError as exc:
                sys.stderr.write(f"ccx-tui web: cannot start the app: {exc.strerror or exc}\n")
                await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"cannot start the app")
                return ws
            await self.relay(ws, service)
        finally:
            self.sockets.discard(ws)
            await service.close(self.grace)
        return ws

    async def relay(self, ws: web.WebSocketResponse, service: WebAppService) -> None:
        """Browser -> app: keys, sizes, focus; anything malformed is dropped."""
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
                kind = envelope[0]
                if kind == "stdin":
                    await service.send_bytes(str(envelope[1]).encode("utf-8"))
                elif kind == "resize":
                    size = envelope[1]
                    await service.set_terminal_size(
                        max(1, min(MAX_SIZE, int(size["width"]))),
                        max(1, min(MAX_SIZE, int(size["height"]))),
                    )
                elif kind == "ping":
                    await ws.send_json(["pong", str(envelope[1])])
                elif kind == "blur":
                    await service.blur()
                elif kind == "focus":
                    await service.focus()
            except (ValueError, LookupError, TypeError):
                continue


def _public_host(host: str) -> str:
    """The host to put in a URL we print: a wildcard bind is reached by our name."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


def run_web(options: WebOptions, data_dir: Path, config: Path | None, grace: float) -> int:
    """Serve until SIGINT/SIGTERM/SIGHUP; returns the exit code (1: cannot listen).

    Raises ConfigError if the token file cannot be made or used.
    """
    out = sys.stderr
    warn = "ccx-tui web: warning:"
    if not auth.is_loopback(options.host) and options.tls is None:
        out.write(f"{warn} --insecure: the login and the screen cross the network in the clear\n")
    if options.no_auth:
        out.write(f"{warn} --no-auth: every user of this machine can use the app as you\n")
        gate = Gate(None)
        path = None
    else:
        token, path = ensure_token(data_dir)
        gate = Gate(token)
    server = WebServer(
        app_command(data_dir, config),
        gate,
        secure=options.tls is not None,
        loopback=auth.is_loopback(options.host),
        grace=grace + QUIT_SPARE,
    )
    return asyncio.run(_serve(server, options, path))


async def _serve(server: WebServer, options: WebOptions, path: Path | None) -> int:
    out = sys.stderr
    stop = asyncio.Event()
    with on_stop_signals(lambda _signum: stop.set()):
        app = await server._make_app()
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2 * server.grace + 1
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, options.host, options.port, ssl_context=options.tls)
            try:
                await site.start()
            except OSError as exc:
                # asyncio's strerror repeats the address; errno's own words suffice.
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                out.write(
                    f"ccx-tui web: cannot listen on {options.host}:{options.port}: {reason}\n"
                )
                return 1
            port = runner.addresses[0][1]
            scheme = "https" if options.tls else "http"
            base = f"{scheme}://{_public_host(options.host)}:{port}"
            if path is None:
                out.write(f"ccx-tui web: serving on {base}/ (no authentication)\n")
            elif out.isatty():
                # The user's own terminal, as jupyter does; never a log file (below).
                out.write(f"ccx-tui web: serving on {base}/ (token in {path})\n")
                out.write(f"ccx-tui web: log in: {base}/login?code={server.gate.new_code()}\n")
            else:
                out.write(
                    f"ccx-tui web: serving on {base}/; log in at {base}/login "
                    f"with the token in {path}\n"
                )
            out.flush()
            await stop.wait()
            out.write("ccx-tui web: stopping\n")
            out.flush()
        finally:
            await runner.cleanup()
    return 0
