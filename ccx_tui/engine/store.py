"""The data directory: one folder per session, atomic metadata, history, retention."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ccx_tui.engine.session import SessionInfo, State
from ccx_tui.errors import DataDirError

META_NAME = "meta.json"
SESSIONS = "sessions"
DEFAULT_RETENTION = 5 * 1024**3


def default_data_dir() -> Path:
    """$CCX_TUI_DATA_DIR, else $XDG_DATA_HOME/ccx-tui, else ~/.local/share/ccx-tui."""
    env = os.environ.get("CCX_TUI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "ccx-tui"


class DataStore:
    """Owns the on-disk layout ``ROOT/sessions/<id>/{meta.json,transcript.log,...}``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        self.sessions_dir = self.root / SESSIONS
        try:
            self.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.root, 0o700)
            os.chmod(self.sessions_dir, 0o700)
            probe = tempfile.NamedTemporaryFile(dir=self.sessions_dir, delete=True)  # noqa: SIM115
            probe.close()
        except FileExistsError:
            raise DataDirError(f"data dir is not a directory: {self.root}") from None
        except NotADirectoryError:
            raise DataDirError(f"data dir is not a directory: {self.root}") from None
        except PermissionError:
            raise DataDirError(f"data dir is not writable: {self.root}") from None
        except OSError as exc:
            raise DataDirError(f"data dir unusable: {self.root}: {exc.strerror}") from None

    def session_dir(self, session_id: str) -> Path:
        return self.sessions_dir / session_id

    def create_session_dir(self, session_id: str) -> Path:
        path = self.session_dir(session_id)
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def write_meta(self, info: SessionInfo) -> None:
        """Write meta.json atomically (temp file + rename); errors are left to the caller."""
        path = info.directory / META_NAME
        fd, tmp = tempfile.mkstemp(dir=info.directory, prefix=".meta.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(info.to_json(), f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def read_meta(self, directory: Path) -> SessionInfo | None:
        try:
            with open(directory / META_NAME, encoding="utf-8") as f:
                info = SessionInfo.from_json(json.load(f))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # The folder may have moved with its data dir: trust where we found it.
        return _with_directory(info, directory)

    def load_history(self) -> list[SessionInfo]:
        """All sessions on disk, oldest first.  Any not final is marked interrupted."""
        found: list[SessionInfo] = []
        try:
            entries = sorted(os.scandir(self.sessions_dir), key=lambda e: e.name)
        except OSError as exc:
            raise DataDirError(f"cannot list {self.sessions_dir}: {exc.strerror}") from None
        for entry in entries:
            if not entry.is_dir():
                continue
            info = self.read_meta(Path(entry.path))
            if info is None:
                continue
            if not info.state.final:
                info = interrupted(info)
                try:
                    self.write_meta(info)
                except OSError:
                    pass
            found.append(info)
        return found

    def enforce_retention(
        self, limit: int, history: Iterable[SessionInfo], live: set[str]
    ) -> list[str]:
        """Delete the oldest finished sessions until the total is within `limit` bytes.

        Sessions whose id is in `live` are never deleted.  Returns the deleted ids.
        """
        sizes: list[tuple[str, int]] = []
        total = 0
        for info in history:
            size = dir_size(info.directory)
            total += size
            if info.id not in live and info.state.final:
                sizes.append((info.id, size))
        deleted: list[str] = []
        for session_id, size in sorted(sizes):  # ids sort by creation time
            if total <= limit:
                break
            shutil.rmtree(self.session_dir(session_id), ignore_errors=True)
            total -= size
            deleted.append(session_id)
        return deleted


def dir_size(path: Path) -> int:
    total = 0
    try:
        for entry in os.scandir(path):
            try:
                total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                pass
    except OSError:
        pass
    return total


def interrupted(info: SessionInfo) -> SessionInfo:
    return replace(
        info,
        state=State.INTERRUPTED,
        reason=info.reason or "ccx-tui stopped while the session was live",
        ended_at=info.ended_at or info.started_at or info.created_at,
    )


def _with_directory(info: SessionInfo, directory: Path) -> SessionInfo:
    return replace(info, directory=directory)
