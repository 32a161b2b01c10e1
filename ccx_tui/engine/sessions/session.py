"""The session record: what to run, its state machine, and a frozen snapshot of it."""

from __future__ import annotations

import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ccx_tui.engine.sessions.titles import command_title
from ccx_tui.errors import AmbiguousSession, InvalidCommand, InvalidTransition, UnknownSession


class State(StrEnum):
    """Where a session is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"
    FAILED = "failed"
    KILLED = "killed"
    EXPIRED = "expired"
    INTERRUPTED = "interrupted"
    LOST = "lost"  # a remote session whose connection dropped
    CREATED = "created"  # declared (autostart = false) and never started yet

    @property
    def live(self) -> bool:
        """Running or paused: it holds one of the engine's slots."""
        return self in (State.RUNNING, State.PAUSED)

    @property
    def final(self) -> bool:
        return self not in (State.QUEUED, State.RUNNING, State.PAUSED)


_ALLOWED: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.RUNNING, State.FAILED, State.KILLED, State.INTERRUPTED}),
    State.RUNNING: frozenset(
        {
            State.PAUSED,
            State.EXITED,
            State.KILLED,
            State.EXPIRED,
            State.FAILED,
            State.LOST,
            State.INTERRUPTED,
            State.RUNNING,
            State.QUEUED,  # a remote server at its session limit: wait again
        }
    ),
    State.PAUSED: frozenset(
        {State.RUNNING, State.EXITED, State.KILLED, State.EXPIRED, State.LOST, State.INTERRUPTED}
    ),
}
_FINAL_NEXT = frozenset({State.QUEUED})  # a finished session can only be restarted


def check_transition(old: State, new: State) -> None:
    """Raise InvalidTransition unless `old -> new` is an edge of the state machine."""
    allowed = _FINAL_NEXT if old.final else _ALLOWED[old]
    if new not in allowed:
        raise InvalidTransition(f"cannot go from {old.value} to {new.value}")


RESTART_POLICIES = ("never", "on-failure", "always")
"""When a session that ended on its own is run again automatically."""
DEFAULT_MAX_RESTARTS = 10
DEFAULT_RESTART_DELAY = 1.0


DEPENDENCY_CONDITIONS = ("started", "ready", "succeeded")
READY_PROBES = ("http", "tcp", "log", "exec")
DEFAULT_COLS, DEFAULT_ROWS = 80, 24
MAX_TERMINAL_SIDE = 2000
"""Columns or rows of a session's terminal, at most (a bad value cannot make a huge
screen)."""


def check_size(cols: int, rows: int) -> None:
    """Raise InvalidCommand unless `cols` x `rows` is a usable terminal size."""
    for value, what in ((cols, "columns"), (rows, "rows")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidCommand(f"bad terminal {what}: {value!r} (a whole number)")
        if not 1 <= value <= MAX_TERMINAL_SIDE:
            raise InvalidCommand(f"bad terminal {what}: {value} (1 to {MAX_TERMINAL_SIDE})")


MAX_NAME = 64
"""Characters in a session's name, at most."""


def check_name(name: str) -> str:
    """`name` without blanks at its ends; InvalidCommand unless it can name a session
    (one line of printable text, at most MAX_NAME characters; empty: no name)."""
    name = name.strip()
    if len(name) > MAX_NAME:
        raise InvalidCommand(f"a name has at most {MAX_NAME} characters, not {len(name)}")
    if any(not char.isprintable() for char in name):
        raise InvalidCommand("a name is one line of printable text")
    return name


_id_lock = threading.Lock()
_last_ms = 0
_seq = 0
ID_RANDOM_BITS = 48
"""Random bits at the end of every id: processes starting sessions in the same
millisecond (whose counters may agree) still get different ids."""


def resolve_id(prefix: str, ids: Iterable[str], *, what: str = "session") -> str:
    """The id that is `prefix`, else the one id that starts with it.

    Raises UnknownSession (none; `what` names the thing looked for) or
    AmbiguousSession (several: the message lists up to five of them).
    """
    matches = [i for i in ids if prefix and i.startswith(prefix)]
    if prefix in matches:
        return prefix
    if not matches:
        raise UnknownSession(f"no such {what}: {prefix}")
    if len(matches) > 1:
        shown = ", ".join(sorted(matches)[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise AmbiguousSession(
            f"ambiguous id prefix '{prefix}': matches {shown}{more} (give more digits)"
        )
    return matches[0]


def new_session_id() -> str:
    """A 27-hex-digit id that sorts by creation time: 12 digits of ms clock, a 3-digit
    counter (ids made in one process in one ms keep their order), 12 random digits.

    Older ids had 16 digits (4 random bits); they still load and sort with these (the
    clock comes first in both).
    """
    global _last_ms, _seq
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
        else:
            _seq = secrets.randbelow(0x100)
        if _seq > 0xFFF:
            ms += 1
            _seq = 0
        _last_ms = ms
        return f"{ms:012x}{_seq:03x}{secrets.randbits(ID_RANDOM_BITS):012x}"


def check_cwd(path: str, shown: str) -> None:
    """Raise InvalidCommand naming `shown` unless `path` is a directory we may enter
    (else the shell could not start there, and would say only "cannot start /bin/sh")."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidCommand(f"no such directory: {shown}") from None
    except OSError as exc:
        raise InvalidCommand(f"cannot use directory {shown}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(mode):
        raise InvalidCommand(f"not a directory: {shown}")
    if not os.access(path, os.X_OK):
        raise InvalidCommand(f"cannot enter directory {shown}: permission denied")


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What to run.  `command` is a shell command line run with `shell -c`."""

    command: str
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    ttl: float | None = None
    """Seconds before the session expires; None: the engine's default; 0: none at all."""
    name: str | None = None
    shell: str = "/bin/sh"
    restart: str = "never"
    """One of RESTART_POLICIES."""
    max_restarts: int = DEFAULT_MAX_RESTARTS
    """Automatic restarts in a row before giving up."""
    restart_delay: float = DEFAULT_RESTART_DELAY
    """Seconds before the first automatic restart; doubles for each one in a row."""
    tty: bool = False
    """Run it on a pseudo-terminal (a real terminal to the program: line-buffered
    output, colours, typed input) instead of pipes with stdin from /dev/null."""
    cols: int = DEFAULT_COLS
    rows: int = DEFAULT_ROWS
    """The terminal's size when a run starts (a view resizes it while it runs)."""
    depends_on: dict[str, str] = field(default_factory=dict)
    """Sessions (by name) it waits for, each with a condition: started, ready or
    succeeded (see deps.py)."""
    ready_when: dict[str, str] = field(default_factory=dict)
    """How to tell it is ready: one of {"http": URL}, {"tcp": "[HOST:]PORT"},
    {"log": REGEX}, {"exec": COMMAND} (see readiness.py); empty: once started."""
    base_env: dict[str, str] | None = field(default=None, compare=False, repr=False)
    """The environment the session inherits instead of its engine's (the one of the
    client that asked the engine process for it: a session started from a shell with a
    venv active must see that venv).  Held in memory only: never saved, never sent."""

    def validated(self) -> SessionSpec:
        """Return a copy with cwd made absolute; raise InvalidCommand for bad values."""
        if not self.command.strip():
            raise InvalidCommand("empty command")
        if "\x00" in self.command:
            raise InvalidCommand("command contains a NUL byte")
        cwd = os.path.abspath(os.path.expanduser(self.cwd or os.getcwd()))
        check_cwd(cwd, self.cwd or cwd)
        for key, value in self.env.items():
            if not key or "=" in key or "\x00" in key or "\x00" in value:
                raise InvalidCommand(f"bad environment variable: {key!r}")
        # 0: no TTL, even where the engine has a default one (None takes the default).
        if self.ttl is not None and not (self.ttl >= 0 and self.ttl < float("inf")):
            raise InvalidCommand(f"bad TTL: {self.ttl} (must be a positive number of seconds)")
        if self.restart not in RESTART_POLICIES:
            choices = ", ".join(RESTART_POLICIES)
            raise InvalidCommand(f"bad restart policy: {self.restart!r} (use {choices})")
        if self.max_restarts < 0:
            raise InvalidCommand(f"bad max_restarts: {self.max_restarts} (must be 0 or more)")
        if not (0 <= self.restart_delay < float("inf")):
            raise InvalidCommand(f"bad restart_delay: {self.restart_delay} (seconds, 0 or more)")
        check_size(self.cols, self.rows)
        for name, condition in self.depends_on.items():
            if condition not in DEPENDENCY_CONDITIONS:
                raise InvalidCommand(
                    f"bad condition {condition!r} for dependency {name!r} "
                    f"(use {', '.join(DEPENDENCY_CONDITIONS)})"
                )
        if len(self.ready_when) > 1 or not set(self.ready_when) <= set(READY_PROBES):
            raise InvalidCommand(
                f"bad ready_when: {self.ready_when!r} (one of {', '.join(READY_PROBES)})"
            )
        for kind, probe in self.ready_when.items():
            if not probe.strip():
                raise InvalidCommand(f"bad ready_when: empty {kind}")
            if kind == "log":
                try:
                    re.compile(probe)
                except re.error as exc:
                    raise InvalidCommand(f"bad ready_when log regex: {exc}") from None
            if kind == "tcp" and not re.fullmatch(r"(?:[^:]+:)?[0-9]{1,5}", probe):
                raise InvalidCommand(f"bad ready_when tcp: {probe!r} (a port, or HOST:PORT)")
        return replace(self, cwd=cwd, env=dict(self.env))

    @property
    def title(self) -> str:
        """A short name for tabs: the given name, else what the command runs (see
        titles.py: `cd web && npm start` is "npm start")."""
        if self.name:
            return self.name
        return command_title(self.command)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["base_env"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSpec:
        return cls(
            command=str(data["command"]),
            cwd=data.get("cwd"),
            env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
            ttl=data.get("ttl"),
            name=data.get("name"),
            shell=str(data.get("shell") or "/bin/sh"),
            restart=str(data.get("restart") or "never"),
            max_restarts=int(data.get("max_restarts", DEFAULT_MAX_RESTARTS)),
            restart_delay=float(data.get("restart_delay", DEFAULT_RESTART_DELAY)),
            tty=bool(data.get("tty", False)),
            depends_on={str(k): str(v) for k, v in (data.get("depends_on") or {}).items()},
            ready_when={str(k): str(v) for k, v in (data.get("ready_when") or {}).items()},
            # As sent: `validated()` refuses what is not a usable size.
            cols=data.get("cols", DEFAULT_COLS),
            rows=data.get("rows", DEFAULT_ROWS),
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """An immutable snapshot of one session, as events and listings carry it."""

    id: str
    spec: SessionSpec
    state: State
    directory: Path
    created_at: float
    run: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    ttl_deadline: float | None = None  # time.time() at which the TTL runs out
    exit_code: int | None = None
    signal: int | None = None  # the signal that ended the process, if any
    reason: str | None = None  # why it failed / was killed / was lost
    pid: int | None = None
    bytes: int = 0
    lines: int = 0
    write_error: str | None = None
    bytes_lost: int = 0
    location: str = "local"
    restarts: int = 0  # automatic restarts in a row (reset by a user's restart)
    restart_at: float | None = None  # time.time() of the next automatic restart, if due
    ready_at: float | None = None
    """When the run became ready (its ready_when probe passed; without one: started)."""
    kill_at: float | None = None
    """While a kill waits out its grace period: time.time() when SIGKILL follows."""
    alt_screen: int | None = None
    """While a terminal session's program uses the alternate screen (a full-screen
    program): the transcript offset where it entered it (see altscreen.py)."""

    @property
    def transcript(self) -> Path:
        return self.directory / "transcript.log"

    def ttl_remaining(self, now: float | None = None) -> float | None:
        """Seconds of TTL left (never negative), or None if the session has no TTL."""
        if self.ttl_deadline is None:
            return None
        if self.state.final and self.ended_at is not None:
            return max(0.0, self.ttl_deadline - self.ended_at)
        return max(0.0, self.ttl_deadline - (time.time() if now is None else now))

    def elapsed(self, now: float | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else (now or time.time())
        return max(0.0, end - self.started_at)

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["spec"] = self.spec.to_json()
        data["state"] = self.state.value
        data["directory"] = str(self.directory)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionInfo:
        values = dict(data)
        values["spec"] = SessionSpec.from_json(values["spec"])
        values["state"] = State(values["state"])
        values["directory"] = Path(values["directory"])
        known = set(cls.__slots__)
        return cls(**{k: v for k, v in values.items() if k in known})
