"""Who may use a `ccx-tui serve`: bearer tokens (kept in 0600 files) and TLS contexts.

A server always checks a token on the WebSocket handshake, even on loopback (every
local user can reach loopback).  When none is given, `serve` makes one and keeps it
in ``DATA_DIR/serve/token`` (directory 0700, file 0600, created exclusively), and a
client of the same user on the same machine reads it from there for a loopback URL.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

from ccx_tui.errors import ConfigError

TOKEN_ENV = "CCX_TUI_TOKEN"
"""The variable `serve` and the clients read a token from (never passed to sessions)."""


def token_path(data_dir: Path) -> Path:
    """Where `serve` keeps the token it generated for this data dir."""
    return data_dir / "serve" / "token"


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is loopback."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and is_loopback(host)


def read_token_file(path: Path) -> str:
    """The token in `path` (surrounding whitespace stripped).

    Raises ConfigError, naming the file, if it cannot be read, is empty, or (a regular
    file) is owned by someone else or readable by other users: a token anyone can read
    is no secret.  Pipes (``--token-file <(pass show ccx)``) are read as they are.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"token file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            if st.st_uid != os.geteuid():
                raise ConfigError(f"token file {path}: owned by another user (uid {st.st_uid})")
            if st.st_mode & 0o077:
                raise ConfigError(
                    f"token file {path}: other users can read it "
                    f"(mode {stat.S_IMODE(st.st_mode):o}; run: chmod 600 {path})"
                )
        raw = f.read(4096)
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"token file {path}: not a token (non-ASCII bytes)") from None
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(f"token file {path}: empty, or more than one word")
    return token


def ensure_token_file(data_dir: Path) -> tuple[str, Path]:
    """The token in ``DATA_DIR/serve/token``, made (random, file 0600) if there is none.

    The token is kept across restarts, so clients elsewhere that were given a copy keep
    working; delete the file to make a new one.  Raises ConfigError.
    """
    return ensure_token_at(token_path(data_dir))


def ensure_token_at(path: Path) -> tuple[str, Path]:
    """The token in `path`, made (random, file 0600, folder 0700) if there is none.
    Raises ConfigError (it cannot be made, or is not safe to use)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.parent.stat()
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            path.parent.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"cannot make {path.parent}: {exc.strerror or exc}") from None
    token = secrets.token_urlsafe(32)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return read_token_file(path), path
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token, path


def local_token(data_dir: Path, url: str) -> str | None:
    """For a loopback URL: the token a `serve` of this data dir generated, if any.

    Raises ConfigError if that file exists but is not safe to use (see read_token_file).
    """
    if not url_is_loopback(url):
        return None
    path = token_path(data_dir)
    if not path.exists():
        return None
    return read_token_file(path)


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    """The server's TLS context from a certificate (chain) and its key (PEM files).

    Raises ConfigError naming what is wrong.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS: {exc.filename or cert}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"TLS: cannot load certificate {cert} with key {key}: {_ssl_reason(exc)}"
        ) from None
    return context


@functools.lru_cache(maxsize=16)
def client_tls(ca_file: Path | None = None) -> ssl.SSLContext:
    """A client TLS context that verifies the server: system CAs, or those of `ca_file`.

    Raises ConfigError if `ca_file` cannot be used.  Cached: one per CA file.
    """
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except FileNotFoundError:
        raise ConfigError(f"CA file {ca_file}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"CA file {ca_file}: {_ssl_reason(exc)}") from None


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
    return str(reason or exc).lower().replace("_", " ")
