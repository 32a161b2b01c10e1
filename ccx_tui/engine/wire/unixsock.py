"""Unix sockets of the engine process: their URLs, peer credentials and /health."""

from __future__ import annotations

import http.client
import json
import socket
import struct
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

UNIX_SCHEME = "ws+unix"
WS_URI = "ws://localhost/ws/mcp"
"""The request a client sends over a Unix socket (it has no host)."""
MAX_PATH_BYTES = 107  # sun_path holds 108 bytes, with the final NUL


class _Socket(Protocol):
    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


def unix_url(path: Path) -> str:
    """`ws+unix:///abs/path/engine.sock`: how a client names a Unix socket target."""
    return f"{UNIX_SCHEME}://{quote(str(path.absolute()))}"


def unix_path_of(url: str) -> Path | None:
    """The socket path of a `ws+unix://` URL, None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme != UNIX_SCHEME:
        return None
    return Path(unquote(parts.path))


def check_path(path: Path) -> None:
    """Raises ValueError if `path` is too long for a Unix socket (a one-line reason)."""
    size = len(str(path).encode())
    if size > MAX_PATH_BYTES:
        raise ValueError(
            f"socket path too long for a Unix socket ({size} bytes, at most "
            f"{MAX_PATH_BYTES}): {path}; use a shorter --data-dir"
        )


def peer_uid(sock: _Socket | None) -> int | None:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED), or
    None when that cannot be known (not a Unix socket)."""
    if sock is None:
        return None
    size = struct.calcsize("3i")
    try:
        _pid, uid, _gid = struct.unpack(
            "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
        )
    except (OSError, struct.error):
        return None
    return int(uid)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def get_health(path: Path, timeout: float = 5.0) -> dict[str, Any]:
    """GET /health over the Unix socket at `path` (blocking).

    Raises OSError if nothing answers there (no socket, a stale one, a timeout), or
    ConnectionRefusedError if the server refuses us (HTTP 403: another user's).
    """
    conn = _UnixHTTPConnection(path, timeout)
    try:
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            body = response.read(65536)
        except http.client.HTTPException as exc:
            raise OSError(f"not an engine: {exc}") from None
    finally:
        conn.close()
    if response.status == 403:
        raise ConnectionRefusedError(f"refused by the engine at {path}")
    if response.status != 200:
        raise OSError(f"not an engine: HTTP {response.status} from {path}")
    try:
        data = json.loads(body)
    except ValueError:
        raise OSError(f"not an engine: bad /health from {path}") from None
    return data if isinstance(data, dict) else {}
