"""The ccx.toml config file and Procfiles: parsed, checked, every error located."""

from __future__ import annotations

import difflib
import math
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ccx_tui.config import DeclaredSession, parse_seconds
from ccx_tui.engine.sessions.deps import find_cycle
from ccx_tui.engine.sessions.session import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_RESTART_DELAY,
    DEPENDENCY_CONDITIONS,
    READY_PROBES,
    RESTART_POLICIES,
    SessionSpec,
)
from ccx_tui.errors import ConfigError, InvalidCommand

DEFAULTS_KEYS = (
    "max_sessions",
    "ttl",
    "kill_grace",
    "data_dir",
    "retention_bytes",
    "on_exit",
    "tty",
    "wrap",
)
ON_EXIT = ("ask", "kill", "detach")
"""What quitting the app does to running sessions (ask, kill them, leave them running)."""
SESSION_KEYS = (
    "name",
    "command",
    "cwd",
    "env",
    "ttl",
    "autostart",
    "tty",
    "depends_on",
    "ready_when",
    "restart",
    "max_restarts",
    "restart_delay",
    "server",
    "shell",
)
SERVER_KEYS = ("name", "url", "token_env", "ca_file")
TABLES = {"defaults": "[defaults]", "session": "[[session]]", "server": "[[server]]"}
RESERVED_SERVER_NAMES = ("local",)  # the app's name for the local engine
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class FileDefaults:
    """The [defaults] table; None where the file does not set a key."""

    max_sessions: int | None = None
    ttl: float | None = None
    """Seconds; 0.0 means "no TTL" (set, unlike None)."""
    kill_grace: float | None = None
    data_dir: Path | None = None
    retention_bytes: int | None = None
    on_exit: str | None = None
    """One of ON_EXIT."""
    tty: bool | None = None
    """Whether sessions run on a pseudo-terminal unless they say otherwise."""
    wrap: bool | None = None
    """Whether transcript views soft-wrap long lines."""


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """A [[server]] table; the token itself is read from `token_env` when it is used."""

    name: str
    url: str
    token_env: str | None = None
    where: str = ""
    """'PATH:LINE: [server "NAME"]', to start error messages about this entry."""
    ca_file: Path | None = None
    """CA certificates (PEM) that verify a wss:// server, instead of the system's."""


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A loaded, checked ccx.toml."""

    path: Path
    defaults: FileDefaults = field(default_factory=FileDefaults)
    sessions: list[DeclaredSession] = field(default_factory=list)
    servers: list[ServerEntry] = field(default_factory=list)


# -- where things are in the raw text -------------------------------------------------

TableRef = tuple[str, int | None]
"""A table by name and, for an array of tables, 0-based index; ("", None) is the top level."""
TOP: TableRef = ("", None)


@dataclass
class Locations:
    """The 1-based line of each table header and key of a (valid) TOML text."""

    headers: dict[TableRef, int] = field(default_factory=dict)
    keys: dict[tuple[TableRef, tuple[str, ...]], int] = field(default_factory=dict)

    def line(self, table: TableRef, *key: str) -> int | None:
        """The line of `key` (or its longest known prefix), else of its table's header."""
        for size in range(len(key), 0, -1):
            found = self.keys.get((table, key[:size]))
            if found is None and table[1] is None:  # `defaults.ttl = 5` at the top level
                found = self.keys.get((TOP, (table[0], *key[:size])))
            if found is not None:
                return found
        if table == TOP and key:  # a top-level name written as a [table] or [[table]]
            for ref in ((key[0], None), (key[0], 0)):
                if ref in self.headers:
                    return self.headers[ref]
        if table in self.headers:
            return self.headers[table]
        return self.keys.get((TOP, (table[0],)))  # `session = [{...}]` at the top level


def locate_keys(text: str) -> Locations:
    """Find the line of every header and `key =` of a TOML text that tomllib accepted.

    Strings (multi-line too), comments and arrays spanning lines are skipped over, so
    text inside them never looks like a key.  `[session.env]` after the Nth
    `[[session]]` counts as key `env` of session N.
    """
    found = Locations()
    counts: dict[str, int] = {}
    table: TableRef = TOP
    prefix: tuple[str, ...] = ()
    i, line = 0, 1
    while i < len(text):
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
        elif char in " \t\r":
            i += 1
        elif char == "#":
            i = _line_end(text, i)
        elif char == "[":
            array = text.startswith("[[", i)
            parts, i = _read_key(text, i + (2 if array else 1))
            i += 2 if array else 1
            name = parts[0] if parts else ""
            if len(parts) == 1:
                index = None
                if array:
                    index = counts[name] = counts.get(name, -1) + 1
                table, prefix = (name, index), ()
                found.headers.setdefault(table, line)
            else:  # a sub-table of the last table of that name
                table, prefix = (name, counts.get(name)), tuple(parts[1:])
                for size in range(1, len(prefix) + 1):
                    found.keys.setdefault((table, prefix[:size]), line)
        else:
            parts, i = _read_key(text, i)
            full = (*prefix, *parts)
            for size in range(1, len(full) + 1):
                found.keys.setdefault((table, full[:size]), line)
            i, line = _skip_value(text, i + 1, line)  # + 1: past the '='
    return found


def _line_end(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end


def _read_key(text: str, i: int) -> tuple[list[str], int]:
    """Read a dotted key (bare or quoted parts); stop at '=', ']' or anything else."""
    parts: list[str] = []
    while i < len(text):
        char = text[i]
        if char in " \t.":
            i += 1
        elif char in "\"'":
            start = i
            i, _ = _skip_string(text, i, 0)
            parts.append(tomllib.loads(f"k = {text[start:i]}")["k"])
        elif char.isascii() and (char.isalnum() or char in "_-"):
            start = i
            while i < len(text) and text[i].isascii() and (text[i].isalnum() or text[i] in "_-"):
                i += 1
            parts.append(text[start:i])
        else:
            break
    return parts, i


def _skip_value(text: str, i: int, line: int) -> tuple[int, int]:
    """Skip a value up to the newline that ends it; return (index, line) there."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char == "\n":
            if depth == 0:
                break
            line += 1
        elif char == "#":
            i = _line_end(text, i)
            continue
        elif char in "\"'":
            i, line = _skip_string(text, i, line)
            continue
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        i += 1
    return i, line


def _skip_string(text: str, i: int, line: int) -> tuple[int, int]:
    """Skip the string starting at text[i] (any of the four kinds); count its newlines."""
    quote = text[i]
    if text.startswith(quote * 3, i):
        i += 3
        while i < len(text) and not text.startswith(quote * 3, i):
            if text[i] == "\n":
                line += 1
            elif text[i] == "\\" and quote == '"':
                i += 1
                if text[i : i + 1] == "\n":
                    line += 1
            i += 1
        i += 3
        while i < len(text) and text[i] == quote:  # `""""` ends with a quote as content
            i += 1
        return i, line
    i += 1
    while i < len(text) and text[i] not in (quote, "\n"):
        i += 2 if text[i] == "\\" and quote == '"' else 1
    return i + 1, line


# -- checking one table -----------------------------------------------------------------


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", int: "a whole number", float: "a decimal number", dict: "a table"}
    return names.get(type(value), "an array" if isinstance(value, list) else "a date/time")


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower()


def _did_you_mean(word: str, choices: dict[str, str]) -> str:
    """' (did you mean X?)' for the closest of `choices` (name -> how to show it), or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {choices[close[0]]}?)" if close else ""


class _Table:
    """One table of the file: typed reads of its keys and errors that say where."""

    def __init__(
        self,
        path: str,
        where: Locations,
        ref: TableRef,
        data: dict[str, Any],
        label: str,
        known: tuple[str, ...],
    ) -> None:
        self.path, self.where, self.ref, self.data, self.label = path, where, ref, data, label
        for key in data:
            if key not in known:
                hint = _did_you_mean(key, {k: repr(k) for k in known})
                raise self.error(f"unknown key {key!r}{hint}", key, name_key=False)

    def at(self, *key: str) -> str:
        """'PATH:LINE:' for `key` of this table."""
        line = self.where.line(self.ref, *key)
        return f"{self.path}:{line}:" if line else f"{self.path}:"

    def error(self, message: str, *key: str, name_key: bool = True) -> ConfigError:
        words = [self.at(*key), self.label]
        if key and name_key:
            words.append(f"key {'.'.join(key)!r}:")
        return ConfigError(" ".join(w for w in (*words, message) if w))

    def get(self, key: str, kind: type[Any] | tuple[type[Any], ...], expected: str) -> Any:
        """The value of `key` if it is a `kind` (a bool only if `kind` is bool), or None."""
        value = self.data.get(key)
        if value is not None and (
            isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)
        ):
            raise self.error(f"expected {expected}, got {_type_name(value)}", key)
        return value

    def string(self, key: str, *, required: bool = False) -> str | None:
        value: str | None = self.get(key, str, "a string")
        if value is None and required:
            raise self.error(f"missing key {key!r}")
        if value is not None and not value.strip():
            raise self.error("must not be empty", key)
        if value is not None and "\x00" in value:
            raise self.error("contains a NUL character", key)
        return value

    def integer(self, key: str, minimum: int) -> int | None:
        value: int | None = self.get(key, int, "a whole number")
        if value is not None and value < minimum:
            raise self.error(f"bad value {value} (must be {minimum} or more)", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value: bool | None = self.get(key, bool, "true or false")
        return default if value is None else value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key) or default
        if value not in choices:
            raise self.error(f"bad value {value!r} (use {', '.join(choices)})", key)
        return value

    def seconds(self, key: str, *, allow_zero: bool) -> float | None:
        """A number of seconds, or a string like '90s', '5m', '2h'; 0.0 only if allowed."""
        value = self.get(key, (int, float, str), "seconds (a number, or a string like '5m')")
        if value is None:
            return None
        hint = "use seconds, or e.g. 90, '90s', '5m', '2h'"
        if isinstance(value, str):
            try:
                return parse_seconds(value, allow_zero=True) or 0.0
            except ConfigError:
                raise self.error(f"bad value {value!r} ({hint})", key) from None
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
            least = "0 or more" if allow_zero else "more than 0"
            raise self.error(f"bad value {_show(value)} (must be {least} seconds)", key)
        return seconds

    def path_value(self, key: str, base: Path) -> Path | None:
        """A path, '~' expanded, relative to `base`."""
        value = self.string(key)
        return None if value is None else base / Path(value).expanduser()

    def depends_on(self, key: str) -> dict[str, str]:
        """A list of session names (each must be ready), or a table of name = condition."""
        value = self.get(key, (list, dict), 'a list of names or a table like { db = "ready" }')
        if value is None:
            return {}
        if isinstance(value, list):
            if not all(isinstance(name, str) and name for name in value):
                raise self.error("expected a list of session names", key)
            return dict.fromkeys(value, "ready")
        deps: dict[str, str] = {}
        for name, condition in value.items():
            if condition not in DEPENDENCY_CONDITIONS:
                choices = ", ".join(DEPENDENCY_CONDITIONS)
                raise self.error(f"bad condition {condition!r} (use {choices})", key, name)
            deps[name] = condition
        return deps

    def ready_when(self, key: str) -> dict[str, str]:
        """One probe: { http = URL } / { tcp = PORT or "HOST:PORT" } / { log = REGEX } /
        { exec = COMMAND }."""
        value = self.get(key, dict, 'a table like { http = "http://127.0.0.1:8000/health" }')
        if value is None:
            return {}
        if len(value) != 1 or not set(value) <= set(READY_PROBES):
            raise self.error(f"give exactly one of {', '.join(READY_PROBES)}", key)
        ((kind, probe),) = value.items()
        if kind == "tcp" and isinstance(probe, int) and not isinstance(probe, bool):
            probe = str(probe)
        if not isinstance(probe, str) or not probe.strip():
            raise self.error(f"expected a non-empty string, got {_type_name(probe)}", key, kind)
        if kind == "tcp" and not re.fullmatch(r"(?:[^:]+:)?[0-9]{1,5}", probe):
            raise self.error(f"bad value {probe!r} (a port, or HOST:PORT)", key, kind)
        if kind == "http" and urlsplit(probe).scheme not in ("http", "https"):
            raise self.error(f"bad value {probe!r} (an http:// or https:// URL)", key, kind)
        if kind == "log":
            try:
                re.compile(probe)
            except re.error as exc:
                raise self.error(f"bad regex: {exc}", key, kind) from None
        return {kind: probe}

    def env(self, key: str) -> dict[str, str]:
        """A table of NAME = value; numbers become strings (booleans are refused)."""
        table = self.get(key, dict, 'a table like { NAME = "value" }') or {}
        env: dict[str, str] = {}
        for name, value in table.items():
            if not _ENV_NAME.fullmatch(name):
                raise self.error("bad variable name (letters, digits and _)", key, name)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                got = _type_name(value)
                raise self.error(f"expected a string or a number, got {got}", key, name)
            if isinstance(value, str) and "\x00" in value:
                raise self.error("contains a NUL character", key, name)
            env[name] = str(value)
        return env


# -- the whole file ---------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The file's text (UTF-8); ConfigError with a one-line reason if it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text") from None


def _syntax_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    message = str(exc)
    found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
    if found:
        return ConfigError(f"{path}:{found[2]}:{found[3]}: {found[1]}")
    if message.endswith(" (at end of document)"):
        line = text.rstrip().count("\n") + 1
        return ConfigError(f"{path}:{line}: {message.removesuffix(' (at end of document)')}")
    return ConfigError(f"{path}: {message}")


def load_config(path: Path | str) -> ConfigFile:
    """Read and check a ccx.toml; raise ConfigError 'PATH:LINE: ...' for any problem.

    Tables: [defaults] (DEFAULTS_KEYS), [[session]] (SESSION_KEYS; name and command
    required), [[server]] (SERVER_KEYS; name and url required).  Unknown tables and keys
    are errors.  Relative paths (`data_dir`, a session's `cwd`) are relative to the
    file's directory; a local session runs there by default and its cwd must exist now,
    a remote one's (`server = ...`) is the server's business and is passed on as written.
    A session's `ttl = 0` means no TTL at all, whatever the default.
    """
    path = Path(path)
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, text, exc) from None
    base = path.expanduser().absolute().parent
    where = locate_keys(text)
    top = _Table(str(path), where, TOP, {}, "", ())
    for key, value in data.items():
        _check_top_level(top, key, value)
    defaults = _defaults(str(path), where, data.get("defaults", {}), base)
    servers: dict[str, ServerEntry] = {}
    first: dict[str, int | None] = {}
    for index, item in enumerate(data.get("server", [])):
        entry = _server(str(path), where, index, item, base)
        _check_unique(where, "server", index, entry.name, first, str(path))
        servers[entry.name] = entry
    sessions: list[DeclaredSession] = []
    first = {}
    for index, item in enumerate(data.get("session", [])):
        declared = _session(str(path), where, index, item, base, servers)
        assert declared.spec.name is not None
        _check_unique(where, "session", index, declared.spec.name, first, str(path))
        sessions.append(declared)
    _check_dependencies(str(path), where, sessions)
    return ConfigFile(path, defaults, sessions, list(servers.values()))


def _check_dependencies(path: str, where: Locations, sessions: list[DeclaredSession]) -> None:
    """Every name a session depends on is a session of the file; no cycles."""
    index = {d.spec.name: i for i, d in enumerate(sessions)}
    graph: dict[str, list[str]] = {}
    for i, declared in enumerate(sessions):
        name = declared.spec.name
        assert name is not None
        for dep in declared.spec.depends_on:
            if dep not in index:
                line = where.line(("session", i), "depends_on")
                hint = _did_you_mean(dep, {n: repr(n) for n in index if n})
                raise ConfigError(
                    f"{path}:{line}: [session \"{name}\"] key 'depends_on': "
                    f"no session named {dep!r}{hint}"
                )
        graph[name] = list(declared.spec.depends_on)
    cycle = find_cycle(graph)
    if cycle:
        line = where.line(("session", index[cycle[0]]), "depends_on")
        raise ConfigError(
            f"{path}:{line}: [session \"{cycle[0]}\"] key 'depends_on': a cycle: "
            + " -> ".join(cycle)
        )


def _check_top_level(top: _Table, key: str, value: object) -> None:
    if key == "defaults" and not isinstance(value, dict):
        raise top.error("'defaults' must be a table: write [defaults]", key, name_key=False)
    if key in ("session", "server"):
        if isinstance(value, dict):
            raise top.error(f"write [[{key}]] (one per {key}), not [{key}]", key, name_key=False)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise top.error(f"write [[{key}]] tables", key, name_key=False)
    if key in TABLES:
        return
    if key in DEFAULTS_KEYS:
        raise top.error(f"key {key!r} belongs under [defaults]", key, name_key=False)
    hint = _did_you_mean(key, TABLES)
    what = f"table [{key}]" if isinstance(value, dict) else f"key {key!r}"
    raise top.error(f"unknown {what}{hint}", key, name_key=False)


def _check_unique(
    where: Locations, kind: str, index: int, name: str, first: dict[str, int | None], path: str
) -> None:
    line = where.line((kind, index), "name")
    if name in first:
        at = f" (first at line {first[name]})" if first[name] else ""
        label = f'[{kind} "{name}"]'
        raise ConfigError(f"{path}:{line}: {label} key 'name': duplicate {kind} name{at}")
    first[name] = line


def _defaults(path: str, where: Locations, data: dict[str, Any], base: Path) -> FileDefaults:
    table = _Table(path, where, ("defaults", None), data, "[defaults]", DEFAULTS_KEYS)
    return FileDefaults(
        max_sessions=table.integer("max_sessions", 1),
        ttl=table.seconds("ttl", allow_zero=True),
        kill_grace=table.seconds("kill_grace", allow_zero=True),
        data_dir=table.path_value("data_dir", base),
        retention_bytes=table.integer("retention_bytes", 1),
        on_exit=table.choice("on_exit", ON_EXIT, "ask") if table.string("on_exit") else None,
        tty=table.boolean("tty", True) if "tty" in data else None,
        wrap=table.boolean("wrap", False) if "wrap" in data else None,
    )


def _label(kind: str, index: int, data: dict[str, Any]) -> str:
    name = data.get("name")
    return f'[{kind} "{name}"]' if isinstance(name, str) and name else f"[{kind} #{index + 1}]"


def _server(
    path: str, where: Locations, index: int, data: dict[str, Any], base: Path
) -> ServerEntry:
    label = _label("server", index, data)
    table = _Table(path, where, ("server", index), data, label, (*SERVER_KEYS, "token"))
    if "token" in data:
        message = "tokens are never stored in the file: put it in a variable, set token_env"
        raise table.error(message, "token")
    name = table.string("name", required=True)
    assert name is not None
    if name in RESERVED_SERVER_NAMES:
        raise table.error(f"{name!r} is reserved for this machine; pick another name", "name")
    url = table.string("url", required=True)
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc or len(url.split()) > 1:
        raise table.error(f"bad value {url!r} (expected ws://HOST:PORT/PATH or wss://...)", "url")
    token_env = table.string("token_env")
    if token_env is not None and not _ENV_NAME.fullmatch(token_env):
        raise table.error(
            f"bad value {token_env!r} (the NAME of an environment variable)", "token_env"
        )
    ca_file = table.path_value("ca_file", base)
    if ca_file is not None and parts.scheme != "wss":
        raise table.error("only a wss:// url uses a CA file", "ca_file")
    where_token = f"{table.at('token_env')} {label}"
    return ServerEntry(name, url, token_env, where_token, ca_file)


def _session(
    path: str,
    where: Locations,
    index: int,
    data: dict[str, Any],
    base: Path,
    servers: dict[str, ServerEntry],
) -> DeclaredSession:
    table = _Table(
        path, where, ("session", index), data, _label("session", index, data), SESSION_KEYS
    )
    name = table.string("name", required=True)
    command = table.string("command", required=True)
    assert command is not None
    server = table.string("server")
    if server is not None and server not in servers:
        known = {s: repr(s) for s in servers}
        hint = _did_you_mean(server, known) or (
            f" (known: {', '.join(known.values())})" if known else " (the file has no [[server]])"
        )
        raise table.error(f"no [[server]] named {server!r}{hint}", "server")
    shell = table.string("shell") or "/bin/sh"
    cwd_path = table.path_value("cwd", base)
    if server is None:
        cwd_path = cwd_path or base
        if not cwd_path.is_dir():
            raise table.error(f"no such directory: {cwd_path}", "cwd")
        if shutil.which(shell) is None:
            raise table.error(f"no such program: {shell}", "shell")
    cwd = table.string("cwd") if server is not None else str(cwd_path)
    ttl = table.seconds("ttl", allow_zero=True)
    max_restarts = table.integer("max_restarts", 0)
    restart_delay = table.seconds("restart_delay", allow_zero=True)
    spec = SessionSpec(
        command=command,
        cwd=cwd,
        env=table.env("env"),
        ttl=ttl,
        name=name,
        shell=shell,
        restart=table.choice("restart", RESTART_POLICIES, "never"),
        max_restarts=DEFAULT_MAX_RESTARTS if max_restarts is None else max_restarts,
        restart_delay=DEFAULT_RESTART_DELAY if restart_delay is None else restart_delay,
        depends_on=table.depends_on("depends_on"),
        ready_when=table.ready_when("ready_when"),
    )
    if server is None:
        try:
            spec = spec.validated()
        except InvalidCommand as exc:  # a backstop: the checks above should catch it all
            raise table.error(str(exc)) from None
    tty = table.boolean("tty", True) if "tty" in data else None
    return DeclaredSession(spec, autostart=table.boolean("autostart", True), server=server, tty=tty)


# -- Procfile ---------------------------------------------------------------------------

_PROCFILE_LINE = re.compile(r"([A-Za-z0-9_-]+):[ \t]*(.*)")


def load_procfile(path: Path | str) -> list[DeclaredSession]:
    """Each `name: command` line of a Procfile as a session run in the Procfile's directory.

    Blank lines and `#` comments are skipped; a malformed line, an empty command, a
    duplicate name or a file with no entries is a ConfigError 'PATH:LINE: ...'.
    """
    path = Path(path)
    text = read_text(path)
    cwd = str(path.expanduser().absolute().parent)
    sessions: list[DeclaredSession] = []
    first: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _PROCFILE_LINE.fullmatch(line)
        if found is None:
            raise ConfigError(
                f"{path}:{number}: malformed line {line!r} "
                "(expected NAME: COMMAND, the NAME of letters, digits, _ and -)"
            )
        name, command = found[1], found[2].strip()
        if not command:
            raise ConfigError(f"{path}:{number}: {name!r} has no command")
        if name in first:
            raise ConfigError(
                f"{path}:{number}: duplicate name {name!r} (first at line {first[name]})"
            )
        first[name] = number
        try:
            spec = SessionSpec(command, cwd=cwd, name=name).validated()
        except InvalidCommand as exc:
            raise ConfigError(f"{path}:{number}: {name!r}: {exc}") from None
        sessions.append(DeclaredSession(spec))
    if not sessions:
        raise ConfigError(f"{path}: no entries (expected lines of NAME: COMMAND)")
    return sessions
