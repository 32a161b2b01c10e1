"""The data directory: one folder per session, atomic metadata, history, retention."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from ccx_tui.engine.sessions.session import SessionInfo, State, new_session_id
from ccx_tui.engine.transcripts.transcript import TRANSCRIPT_NAME
from ccx_tui.errors import DataDirError

META_NAME = "meta.json"
LOCK_NAME = "live.lock"
SESSIONS = "sessions"
DEFAULT_RETENTION = 5 * 1024**3
_NEW_SESSION_TRIES = 100
META_BLOCK = 4096
META_HEADROOM = 1024
"""meta.json keeps this much room (at least) for a bigger record on a full disk."""


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
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            _check_owner(self.root)  # before any chmod: root could chmod anyone's dir
            self.sessions_dir.mkdir(exist_ok=True, mode=0o700)
            _check_owner(self.sessions_dir)
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
        """Make the folder of a new session; FileExistsError if it exists (two sessions
        never share a folder: callers retry with a new id, see `new_session`)."""
        path = self.session_dir(session_id)
        path.mkdir(mode=0o700, exist_ok=False)
        # An empty transcript from the start: a viewer can open a queued session.
        os.close(os.open(path / TRANSCRIPT_NAME, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        _reserve(path / META_NAME)
        return path

    def new_session(self, make_id: Callable[[], str] = new_session_id) -> tuple[str, Path]:
        """A new session id and its folder, made with an id nobody holds yet.

        Ids carry 48 random bits, so a clash is all but impossible; should one happen
        anyway (another process made the same id), the folder's creation fails and a
        new id is tried.  Raises DataDirError if the folder cannot be made at all.
        """
        for _ in range(_NEW_SESSION_TRIES):
            session_id = make_id()
            try:
                return session_id, self.create_session_dir(session_id)
            except FileExistsError:
                continue
            except OSError as exc:
                raise DataDirError(
                    f"cannot create a session in {self.sessions_dir}: {exc.strerror or exc}"
                ) from None
        raise DataDirError(f"cannot create a session in {self.sessions_dir}: every id was taken")

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
        """Write meta.json, atomically (temp file + rename) while the disk allows it.

        The file is padded with spaces (valid JSON) to leave room for a bigger record.
        When the disk refuses a new file (full, over quota), the existing one is
        overwritten in place instead, in the blocks it already holds: on a full disk,
        recording how a session ended matters more than atomicity.  Errors are left to
        the caller.
        """
        path = info.directory / META_NAME
        text = json.dumps(info.to_json(), indent=1, sort_keys=True).encode()
        try:
            _replace_file(path, _padded(text))
        except OSError as exc:
            if exc.errno not in _NO_SPACE or not _overwrite(path, text):
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
        deleted, nor is one whose lock is held: `history` may be stale, and another
        ccx-tui (or this one) may have restarted a session it shows as finished.  The
        lock is taken before deleting and held until the folder is gone, so nobody can
        start the session meanwhile.  Returns the deleted ids.
        """
        infos = list(history)
        total = sum(info.bytes for info in infos)
        deleted: list[str] = []
        for info in sorted(infos, key=lambda i: i.id):  # ids sort by creation time
            if total <= limit:
                break
            if info.id in live or not info.state.final:
                continue
            directory = self.session_dir(info.id)
            try:
                fd = self.lock_session(directory)
            except FileNotFoundError:  # already gone (another ccx-tui deleted it)
                total -= info.bytes
                deleted.append(info.id)
                continue
            except OSError:
                continue  # live somewhere: never delete it
            try:
                shutil.rmtree(directory, ignore_errors=True)
            finally:
                self.unlock_session(fd)
            total -= info.bytes
            deleted.append(info.id)
        return deleted


def _check_owner(path: Path) -> None:
    """Refuse a data dir (or its sessions folder) that belongs to another user: its
    owner could read our transcripts, plant sessions or swap files under us."""
    owner = os.stat(path).st_uid
    if owner != os.getuid():
        raise DataDirError(
            f"data dir belongs to another user (uid {owner}, not {os.getuid()}): {path}"
        )


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _padded(text: bytes) -> bytes:
    """`text` and a newline, padded with spaces to whole blocks with room to spare."""
    size = -(-(len(text) + 1 + META_HEADROOM) // META_BLOCK) * META_BLOCK
    return text + b"\n" + b" " * (size - len(text) - 1)


def _reserve(path: Path) -> None:
    """Claim a block for meta.json before the session prints anything: if its output
    fills the disk before the first record is written, that record can still be
    written in place (see `_overwrite`).  Blank until then (read as no record yet).
    A disk already full is left to the writes that follow."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, b" " * META_BLOCK)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_file(path: Path, data: bytes) -> None:
    """Write `path` atomically: a temp file beside it, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".meta.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _overwrite(path: Path, text: bytes) -> bool:
    """Overwrite `path` in place with `text`, padded to the file's own size (no new
    blocks needed).  False if it does not fit or there is no file to overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # no O_TRUNC: keep its blocks
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        if len(text) + 1 > size:
            return False
        view = memoryview(text + b"\n" + b" " * (size - len(text) - 1))
        pos = 0
        while pos < len(view):
            pos += os.pwrite(fd, view[pos:], pos)
        return True
    finally:
        os.close(fd)


def interrupted(info: SessionInfo) -> SessionInfo:
    """A session that was live when its ccx-tui died, as it is now: its counters read
    from its transcript (its record was last saved long before the end)."""
    size, lines = transcript_counts(info.transcript)
    return replace(
        info,
        state=State.INTERRUPTED,
        reason=info.reason or "ccx-tui stopped while the session was live",
        ended_at=info.ended_at or info.started_at or info.created_at,
        bytes=max(size, info.bytes),
        lines=max(lines, info.lines),
    )


def transcript_counts(path: Path, block: int = 4 * 1024 * 1024) -> tuple[int, int]:
    """(bytes, newlines) of a transcript, read in blocks; (0, 0) if it cannot be read."""
    size = lines = 0
    try:
        with path.open("rb") as f:
            while data := f.read(block):
                size += len(data)
                lines += data.count(b"\n")
    except OSError:
        return 0, 0
    return size, lines


def _with_directory(info: SessionInfo, directory: Path) -> SessionInfo:
    return replace(info, directory=directory)


class MetaWriter:
    """Writes meta.json files on a thread of its own, so the event loop never waits on
    the disk; only each session's latest snapshot is written (older ones are skipped).

    `flush()` returns once everything handed over is on disk; `close()` flushes and
    stops the thread.  Write errors never stop the engine; `error()` tells the last one
    of a session (a full disk keeps a record anyway: see `DataStore.write_meta`).

    A session's lock handed over with its final snapshot (`put(info, unlock=fd)`) is
    released only once that snapshot is written: until then its meta.json still says
    "running", and another ccx-tui seeing a free lock would mark it interrupted.
    """

    def __init__(self, store: DataStore) -> None:
        self._store = store
        self._pending: dict[Path, SessionInfo] = {}
        self._unlocks: dict[Path, int] = {}  # lock fds to close once their meta is written
        self._errors: dict[Path, str] = {}  # the last write of each session that failed
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def put(self, info: SessionInfo, *, unlock: int | None = None) -> None:
        """Write `info` soon; then release the session lock `unlock`, if given."""
        with self._cond:
            if unlock is not None:
                self._unlocks[info.directory] = unlock
            if self._closed:  # after close: write it here and now
                self._write(info)
                self._release(info.directory)
                return
            self._pending[info.directory] = info
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="ccx-meta-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def reclaim_lock(self, directory: Path) -> int | None:
        """Take back a lock handed over and not yet released (a session started again
        before its final snapshot was written); None if it is already released."""
        with self._cond:
            return self._unlocks.pop(directory, None)

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
            for directory in list(self._unlocks):
                self._release(directory)

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
                for directory in batch:
                    if directory not in self._pending:  # else released after the newer
                        self._release(directory)
                self._busy = False
                self._cond.notify_all()

    def _release(self, directory: Path) -> None:
        """Close the lock handed over for `directory` (call with `_cond` held, so that
        `reclaim_lock` never sees a lock that is about to be closed)."""
        fd = self._unlocks.pop(directory, None)
        if fd is not None:
            DataStore.unlock_session(fd)

    def error(self, directory: Path) -> str | None:
        """Why the latest meta.json of the session in `directory` could not be written,
        or None if it was (or nothing was tried yet)."""
        return self._errors.get(directory)

    def _write(self, info: SessionInfo) -> None:
        try:
            self._store.write_meta(info)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "error")
            self._errors[info.directory] = f"{exc.strerror or exc} ({name})"
        else:
            self._errors.pop(info.directory, None)
