"""The data directory: one folder per session, atomic metadata, history, retention."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ccx_tui.engine.session import SessionInfo, State
from ccx_tui.engine.transcript import TRANSCRIPT_NAME
from ccx_tui.errors import DataDirError

META_NAME = "meta.json"
LOCK_NAME = "live.lock"
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
        # An empty transcript from the start: a viewer can open a queued session.
        os.close(os.open(path / TRANSCRIPT_NAME, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        return path

    def lock_session(self, directory: Path) -> int:
        """Hold an exclusive lock saying "a live engine owns this session".

        The lock dies with the process, so a session whose lock is free but whose
        metadata says live was left behind by a ccx-tui that died.  Returns the fd to
        pass to `unlock_session`.
        """
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def unlock_session(fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    @staticmethod
    def is_owned_elsewhere(directory: Path) -> bool:
        """True if another live process holds the session's lock."""
        try:
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

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

    def load_history(self, *, include_foreign: bool = False) -> list[SessionInfo]:
        """All sessions on disk, oldest first.

        A session not final whose lock is free was live in a ccx-tui that died: it is
        marked interrupted.  One still owned by another running ccx-tui is skipped,
        or returned as it is with `include_foreign`.
        """
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
                if self.is_owned_elsewhere(info.directory):
                    if include_foreign:
                        found.append(info)
                    continue
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
        """Delete the oldest finished sessions until their transcripts total `limit` bytes.

        Sizes come from the sessions' byte counts (no directory scan), so this is cheap
        enough to run whenever a session ends.  Sessions whose id is in `live` are never
        deleted.  Returns the deleted ids.
        """
        infos = list(history)
        total = sum(info.bytes for info in infos)
        deleted: list[str] = []
        for info in sorted(infos, key=lambda i: i.id):  # ids sort by creation time
            if total <= limit:
                break
            if info.id in live or not info.state.final:
                continue
            shutil.rmtree(self.session_dir(info.id), ignore_errors=True)
            total -= info.bytes
            deleted.append(info.id)
        return deleted


def interrupted(info: SessionInfo) -> SessionInfo:
    return replace(
        info,
        state=State.INTERRUPTED,
        reason=info.reason or "ccx-tui stopped while the session was live",
        ended_at=info.ended_at or info.started_at or info.created_at,
    )


def _with_directory(info: SessionInfo, directory: Path) -> SessionInfo:
    return replace(info, directory=directory)


class MetaWriter:
    """Writes meta.json files on a thread of its own, so the event loop never waits on
    the disk; only each session's latest snapshot is written (older ones are skipped).

    `flush()` returns once everything handed over is on disk; `close()` flushes and
    stops the thread.  Write errors are ignored (a full disk must not stop the engine;
    the transcript's error shows it).
    """

    def __init__(self, store: DataStore) -> None:
        self._store = store
        self._pending: dict[Path, SessionInfo] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def put(self, info: SessionInfo) -> None:
        with self._cond:
            if self._closed:  # after close: write it here and now
                self._write(info)
                return
            self._pending[info.directory] = info
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="ccx-meta-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def flush(self) -> None:
        with self._cond:
            while self._pending or self._busy:
                self._cond.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:  # in case the thread never ran
            for info in self._pending.values():
                self._write(info)
            self._pending.clear()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, {}
                self._busy = True
            for info in batch.values():
                self._write(info)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _write(self, info: SessionInfo) -> None:
        try:
            self._store.write_meta(info)
        except OSError:
            pass
