"""Who may use `ccx-tui web`: its token file, login codes, signed cookies, origins.

Pure (no I/O but the token file): the server in web.py asks it about each request.

- ``DATA_DIR/web/token`` holds a random secret (directory 0700, file 0600, kept
  across restarts; delete it to log every browser out).
- At start a one-time login code is printed to the terminal (never to a file) as
  ``http://HOST:PORT/login?code=...``.  Opening it sets a cookie and redirects to
  ``/``; the code is then spent, so the link in the browser's history is worthless.
- Another browser opens ``/login`` and pastes the token file's content (a POST: it
  never lands in a URL).
- The cookie is ``EXPIRY.HMAC(token, EXPIRY)``: HttpOnly, SameSite=Strict, Secure
  under TLS, named after the port (cookies do not tell ports apart), and valid
  across restarts of the server until it expires.
- Every path but ``/login`` needs the cookie.  The WebSocket also needs an Origin
  equal to the page's own (cross-site WebSocket hijacking); on loopback the Host
  must be a loopback name (DNS rebinding, which matters most with --no-auth).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ccx_tui.engine.wire import auth
from ccx_tui.errors import ConfigError

TOKEN_FILE = ("web", "token")
COOKIE_PREFIX = "ccx_web_"
COOKIE_LIFETIME = 7 * 24 * 3600
"""Seconds a login lasts; then the browser logs in again."""


@dataclass(frozen=True, slots=True)
class WebOptions:
    """The checked flags of `ccx-tui web`."""

    host: str
    port: int
    no_auth: bool
    tls: ssl.SSLContext | None
    insecure: bool


def check_flags(
    host: str,
    port: str,
    *,
    no_auth: bool,
    tls_cert: str | None,
    tls_key: str | None,
    insecure: bool,
) -> WebOptions:
    """The flags, checked as `ccx-tui serve` checks its own.  Raises ConfigError."""
    loopback = auth.is_loopback(host)
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("web: --tls-cert and --tls-key go together")
    tls = auth.server_tls(Path(tls_cert), Path(tls_key)) if tls_cert and tls_key else None
    if not loopback and tls is None and not insecure:
        raise ConfigError(
            f"web: refusing to serve on {host} without TLS: the login and the whole "
            "screen would cross the network in the clear (give --tls-cert and --tls-key, "
            "or --insecure)"
        )
    if no_auth and not loopback:
        raise ConfigError(f"web: --no-auth is for loopback only, not {host}")
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"web: bad --port {port!r}") from None
    return WebOptions(host, number, no_auth, tls, insecure)


def token_path(data_dir: Path) -> Path:
    """Where `web` keeps its secret for this data dir."""
    return data_dir.joinpath(*TOKEN_FILE)


def ensure_token(data_dir: Path) -> tuple[str, Path]:
    """The secret in ``DATA_DIR/web/token``, made (random, 0600) if there is none.

    Raises ConfigError (the file cannot be made, or is readable by others).
    """
    return auth.ensure_token_at(token_path(data_dir))


def split_host(host: str, secure: bool) -> tuple[str, int]:
    """A Host header (or an Origin's netloc) as (lower-case name, port)."""
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    return (parts.hostname or "").lower(), port or (443 if secure else 80)


def same_origin(origin: str | None, host: str, secure: bool) -> bool:
    """Whether a request's Origin header names the server the request was sent to."""
    if not origin:
        return True  # not a browser (browsers always send it on WebSockets and POSTs)
    parts = urlsplit(origin)
    if parts.scheme != ("https" if secure else "http"):
        return False
    return split_host(parts.netloc, secure) == split_host(host, secure)


class Gate:
    """Who may in: one-time login codes, the token, and cookies signed with it.

    Pure (no I/O): the server asks it about each request.  With no token
    (``--no-auth``) everybody may.
    """

    def __init__(self, token: str | None) -> None:
        self._key = hashlib.sha256(token.encode()).digest() if token else None
        self._token = token
        self._codes: set[str] = set()

    @property
    def open(self) -> bool:
        """Whether there is no authentication at all (--no-auth)."""
        return self._key is None

    def new_code(self) -> str:
        """A login code good for one use."""
        code = secrets.token_urlsafe(24)
        self._codes.add(code)
        return code

    def redeem(self, code: str) -> bool:
        """Whether `code` is a live login code; it is spent either way."""
        for live in list(self._codes):
            if hmac.compare_digest(live.encode(), code.encode()):
                self._codes.discard(live)
                return True
        return False

    def token_ok(self, given: str) -> bool:
        """Whether `given` (pasted in the login form) is the token."""
        if self._token is None:
            return True
        return hmac.compare_digest(given.strip().encode(), self._token.encode())

    def _mac(self, expiry: int) -> str:
        assert self._key is not None
        message = f"ccx-tui web login|{expiry}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def cookie(self, now: float) -> str:
        """A cookie value valid for COOKIE_LIFETIME from `now`."""
        expiry = int(now) + COOKIE_LIFETIME
        return f"{expiry}.{self._mac(expiry)}"

    def cookie_ok(self, value: str | None, now: float) -> bool:
        """Whether `value` is a cookie we made that has not expired."""
        if self._key is None:
            return True
        if not value or "." not in value:
            return False
        expiry_text, mac = value.split(".", 1)
        if not expiry_text.isdigit() or int(expiry_text) <= now:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(int(expiry_text)).encode())


def cookie_name(host: str, secure: bool) -> str:
    """The login cookie's name for requests sent to `host` (a Host header)."""
    return f"{COOKIE_PREFIX}{split_host(host, secure)[1]}"
