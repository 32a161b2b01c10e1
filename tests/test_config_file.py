"""ccx.toml and Procfiles: every key, precedence, token_env, and errors that say where."""

from __future__ import annotations

import os
import textwrap
import tomllib
from pathlib import Path

import pytest

from ccx_tui.config import ServerTarget, Settings, resolve_servers, server_token
from ccx_tui.config_file import (
    ConfigFile,
    FileDefaults,
    load_config,
    load_procfile,
    locate_keys,
)
from ccx_tui.engine.sessions.session import DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_DELAY
from ccx_tui.engine.transcripts.store import DEFAULT_RETENTION
from ccx_tui.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' own CCX_TUI_* variables must not leak in from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("CCX_TUI_"):
            monkeypatch.delenv(name)


def write(directory: Path, text: str, name: str = "ccx.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(directory: Path, text: str) -> ConfigFile:
    return load_config(write(directory, text))


def error_of(directory: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(directory, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- what a good file gives ---------------------------------------------------------------


def test_every_key_is_read(tmp_path: Path) -> None:
    (tmp_path / "frontend").mkdir()
    config = load(
        tmp_path,
        """
        [defaults]
        max_sessions = 4
        ttl = "1h"
        kill_grace = 0.5
        data_dir = "state"
        retention_bytes = 1000000

        [[session]]
        name = "web"
        command = "npm run dev"
        cwd = "frontend"
        env = { PORT = "3000", WORKERS = 2, RATIO = 0.5 }
        ttl = 90
        autostart = false
        restart = "on-failure"
        max_restarts = 0
        restart_delay = "1.5s"
        shell = "sh"

        [[session]]
        name = "remote"
        command = "make"
        cwd = "/srv/build"
        server = "build-box"

        [[server]]
        name = "build-box"
        url = "ws://build-box:8003/ws/mcp"
        token_env = "BUILD_BOX_TOKEN"   # the token is read from this variable
        """,
    )
    assert config.defaults == FileDefaults(
        max_sessions=4,
        ttl=3600.0,
        kill_grace=0.5,
        data_dir=tmp_path / "state",
        retention_bytes=1_000_000,
    )
    web, remote = config.sessions
    assert (web.autostart, web.server) == (False, None)
    assert web.spec.name == "web" and web.spec.command == "npm run dev"
    assert web.spec.cwd == str(tmp_path / "frontend")
    assert web.spec.env == {"PORT": "3000", "WORKERS": "2", "RATIO": "0.5"}
    assert web.spec.ttl == 90.0
    assert (web.spec.restart, web.spec.max_restarts, web.spec.restart_delay) == (
        "on-failure",
        0,
        1.5,
    )
    assert web.spec.shell == "sh"
    assert (remote.server, remote.spec.cwd, remote.autostart) == ("build-box", "/srv/build", True)
    [server] = config.servers
    assert (server.name, server.url, server.token_env) == (
        "build-box",
        "ws://build-box:8003/ws/mcp",
        "BUILD_BOX_TOKEN",
    )


def test_absent_keys_take_their_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session needs only name and command; it runs in the file's directory, wherever
    ccx-tui was started."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load(tmp_path, '[[session]]\nname = "a"\ncommand = "true"\n')
    assert config.defaults == FileDefaults()
    assert config.servers == []
    [item] = config.sessions
    assert (item.autostart, item.server) == (True, None)
    spec = item.spec
    assert (spec.cwd, spec.env, spec.ttl, spec.shell) == (str(tmp_path), {}, None, "/bin/sh")
    assert (spec.restart, spec.max_restarts, spec.restart_delay) == (
        "never",
        DEFAULT_MAX_RESTARTS,
        DEFAULT_RESTART_DELAY,
    )


def test_an_empty_file_is_fine(tmp_path: Path) -> None:
    config = load(tmp_path, "# nothing yet\n")
    assert (config.defaults, config.sessions, config.servers) == (FileDefaults(), [], [])


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("90", 90.0), ("2.5", 2.5), ('"90s"', 90.0), ('"5m"', 300.0), ('"0"', 0.0)],
)
def test_seconds_forms(tmp_path: Path, value: str, seconds: float) -> None:
    """Numbers are seconds, strings may carry a unit; 0 means no TTL."""
    config = load(
        tmp_path,
        f"""
        [defaults]
        ttl = {value}
        [[session]]
        name = "a"
        command = "true"
        ttl = {value}
        restart_delay = {value}
        """,
    )
    assert config.defaults.ttl == seconds
    [item] = config.sessions
    assert item.spec.ttl == seconds  # 0: none at all, not the default (None)
    assert item.spec.restart_delay == seconds


def test_relative_paths_are_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "app").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    config = load_config(
        write(
            tmp_path / "conf",
            """
            [defaults]
            data_dir = "../data"
            [[session]]
            name = "a"
            command = "true"
            cwd = "app"
            """,
        ).relative_to(tmp_path)
    )
    assert config.defaults.data_dir == tmp_path / "conf" / ".." / "data"
    assert config.sessions[0].spec.cwd == str(tmp_path / "conf" / "app")


def test_env_as_a_sub_table_and_dotted_keys(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [[session]]
        name = "a"
        command = "true"
        env.A = "1"

        [[session]]
        name = "b"
        command = "true"

        [session.env]
        B = "2"
        """,
    )
    assert [s.spec.env for s in config.sessions] == [{"A": "1"}, {"B": "2"}]


# -- precedence ---------------------------------------------------------------------------


def test_file_defaults_are_used_when_nothing_else_is_set(tmp_path: Path) -> None:
    file = FileDefaults(
        max_sessions=3, ttl=60.0, kill_grace=1.0, data_dir=tmp_path, retention_bytes=99
    )
    settings = Settings.resolve(file=file)
    assert settings == Settings(
        data_dir=tmp_path, max_sessions=3, ttl=60.0, kill_grace=1.0, retention_bytes=99
    )


def test_builtin_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings.resolve(file=FileDefaults())
    assert settings == Settings(
        data_dir=tmp_path / "ccx-tui",
        max_sessions=16,
        ttl=None,
        kill_grace=3.0,
        retention_bytes=DEFAULT_RETENTION,
    )


def test_env_beats_file_and_flag_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = FileDefaults(
        max_sessions=3, ttl=60.0, kill_grace=1.0, data_dir=tmp_path / "file", retention_bytes=99
    )
    monkeypatch.setenv("CCX_TUI_MAX_SESSIONS", "5")
    monkeypatch.setenv("CCX_TUI_TTL", "2m")
    monkeypatch.setenv("CCX_TUI_KILL_GRACE", "2")
    monkeypatch.setenv("CCX_TUI_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("CCX_TUI_RETENTION_BYTES", "77")
    from_env = Settings.resolve(file=file)
    assert from_env == Settings(
        data_dir=tmp_path / "env", max_sessions=5, ttl=120.0, kill_grace=2.0, retention_bytes=77
    )
    from_flags = Settings.resolve(
        data_dir=str(tmp_path / "flag"), max_sessions="7", ttl="0", kill_grace="0", file=file
    )
    assert from_flags == Settings(
        data_dir=tmp_path / "flag", max_sessions=7, ttl=None, kill_grace=0.0, retention_bytes=77
    )


def test_ttl_zero_in_the_file_means_none() -> None:
    assert Settings.resolve(file=FileDefaults(ttl=0.0)).ttl is None


# -- servers and tokens -------------------------------------------------------------------


def test_token_env_is_read_when_servers_resolve(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [[server]]
        name = "box"
        url = "wss://box.example:8003/ws/mcp"
        token_env = "BOX_TOKEN"

        [[server]]
        name = "open"
        url = "ws://127.0.0.1:8003/ws/mcp"
        """,
    )
    targets = resolve_servers(
        ["ws://a:1/ws/mcp"], "flag-token", config.servers, environ={"BOX_TOKEN": "s3cret"}
    )
    assert targets == [
        ServerTarget("ws://a:1/ws/mcp", "flag-token"),
        ServerTarget("wss://box.example:8003/ws/mcp", "s3cret", "box"),
        ServerTarget("ws://127.0.0.1:8003/ws/mcp", None, "open"),
    ]


def test_connect_token_falls_back_to_ccx_tui_token() -> None:
    env = {"CCX_TUI_TOKEN": "from-env"}
    assert resolve_servers(["ws://a:1/x"], None, environ=env) == [
        ServerTarget("ws://a:1/x", "from-env")
    ]
    assert resolve_servers(["ws://a:1/x"], "flag", environ=env)[0].token == "flag"
    assert resolve_servers(["ws://a:1/x"], None, environ={})[0].token is None


@pytest.mark.parametrize(("environ", "state"), [({}, "not set"), ({"BOX_TOKEN": ""}, "empty")])
def test_missing_token_variable_names_server_and_variable(
    tmp_path: Path, environ: dict[str, str], state: str
) -> None:
    path = write(
        tmp_path,
        """
        [[server]]
        name = "box"
        url = "ws://box:8003/ws/mcp"
        token_env = "BOX_TOKEN"
        """,
    )
    [entry] = load_config(path).servers
    with pytest.raises(ConfigError) as caught:
        resolve_servers([], None, [entry], environ=environ)
    assert str(caught.value) == (
        f"{path}:4: [server \"box\"] key 'token_env': $BOX_TOKEN is {state} "
        "(export the token in it, or remove token_env)"
    )
    with pytest.raises(ConfigError):
        server_token(entry, environ)


# -- errors: each says the line and the key -----------------------------------------------

SESSION = '[[session]]\nname = "web"\ncommand = "true"\n'
"""Lines 1-3 of many error cases: a good session to add a bad key to (at line 4)."""

ERRORS = [
    # (file text, line, every fragment the message must contain)
    (
        SESSION + 'restart = "sometimes"\n',
        4,
        ["[session \"web\"] key 'restart': bad value 'sometimes' (use never, on-failure, always)"],
    ),
    (SESSION + 'comand = "x"\n', 4, ["unknown key 'comand'", "(did you mean 'command'?)"]),
    (SESSION + "ttl = -5\n", 4, ["key 'ttl':", "bad value -5 (must be 0 or more seconds)"]),
    (SESSION + 'ttl = "soon"\n', 4, ["key 'ttl':", "bad value 'soon'"]),
    (SESSION + "ttl = true\n", 4, ["key 'ttl':", "got a boolean"]),
    (SESSION + "ttl = inf\n", 4, ["key 'ttl':", "bad value inf"]),
    (SESSION + "max_restarts = -1\n", 4, ["key 'max_restarts':", "must be 0 or more"]),
    (SESSION + 'max_restarts = "3"\n', 4, ["key 'max_restarts':", "expected a whole number"]),
    (SESSION + "restart_delay = -1\n", 4, ["key 'restart_delay':", "bad value -1"]),
    (SESSION + 'autostart = "yes"\n', 4, ["key 'autostart':", "expected true or false"]),
    (SESSION + 'cwd = "no/such/dir"\n', 4, ["key 'cwd':", "no such directory:", "no/such/dir"]),
    (SESSION + "cwd = 7\n", 4, ["key 'cwd':", "expected a string, got a whole number"]),
    (SESSION + 'env = "PORT=1"\n', 4, ["key 'env':", "expected a table"]),
    (SESSION + "env = { DEBUG = true }\n", 4, ["key 'env.DEBUG':", "got a boolean"]),
    (SESSION + 'env = { "1X" = "a" }\n', 4, ["key 'env.1X':", "bad variable name"]),
    (SESSION + "env.LIST = [1]\n", 4, ["key 'env.LIST':", "got an array"]),
    (SESSION + '\n[session.env]\nA = "1"\nB = false\n', 7, ["key 'env.B':", "got a boolean"]),
    (SESSION + 'shell = "/no/such/shell"\n', 4, ["key 'shell':", "no such program"]),
    (SESSION + 'server = "x"\n', 4, ["key 'server':", "no [[server]] named 'x'", "has no"]),
    (
        SESSION + 'server = "bild-box"\n[[server]]\nname = "build-box"\nurl = "ws://b:1/x"\n',
        4,
        ["key 'server':", "(did you mean 'build-box'?)"],
    ),
    ('[[session]]\nname = "web"\n', 1, ["[session \"web\"] missing key 'command'"]),
    ('[[session]]\ncommand = "true"\n', 1, ["[session #1] missing key 'name'"]),
    (SESSION + '[[session]]\nname = "b"\ncommand = "  "\n', 6, ["key 'command': must not be"]),
    (
        SESSION + '\n[[session]]\ncommand = "true"\nname = "web"\n',
        7,
        ["[session \"web\"] key 'name': duplicate session name (first at line 2)"],
    ),
    ('[session]\nname = "a"\ncommand = "b"\n', 1, ["write [[session]] (one per session)"]),
    ("[sesion]\n", 1, ["unknown table [sesion] (did you mean [[session]]?)"]),
    ("# top\n\nmax_sessions = 3\n", 3, ["key 'max_sessions' belongs under [defaults]"]),
    ("servers = 1\n", 1, ["unknown key 'servers' (did you mean [[server]]?)"]),
    ("defaults = 1\n", 1, ["'defaults' must be a table"]),
    (
        "[defaults]\nmax_session = 3\n",
        2,
        ["[defaults] unknown key 'max_session'", "'max_sessions'"],
    ),
    ("[defaults]\nmax_sessions = 0\n", 2, ["key 'max_sessions': bad value 0 (must be 1 or more)"]),
    ("[defaults]\nmax_sessions = 2.5\n", 2, ["expected a whole number, got a decimal number"]),
    ("[defaults]\nkill_grace = -1\n", 2, ["[defaults] key 'kill_grace': bad value -1"]),
    ("[defaults]\ndata_dir = 1\n", 2, ["key 'data_dir': expected a string"]),
    ("defaults.ttl = []\n", 1, ["[defaults] key 'ttl':", "got an array"]),
    ('[[server]]\nname = "b"\n', 1, ["[server \"b\"] missing key 'url'"]),
    (
        '[[server]]\nname = "b"\nurl = "http://b:1"\n',
        3,
        ["key 'url': bad value 'http://b:1' (expected ws://"],
    ),
    ('[[server]]\nname = "b"\nurl = "ws://b:1"\ntoken = "x"\n', 4, ["never stored", "token_env"]),
    ('[[server]]\nname = "b"\nurl = "ws://b:1/x (y)"\n', 3, ["key 'url': bad value"]),
    (
        '[[server]]\nname = "b"\nurl = "ws://b:1"\ntoken_env = "$TOK"\n',
        4,
        ["key 'token_env': bad value '$TOK'"],
    ),
    ('[[server]]\nname = "local"\nurl = "ws://b:1"\n', 2, ["key 'name':", "reserved"]),
    (
        '[[server]]\nname = "b"\nurl = "ws://b:1"\n[[server]]\nname = "b"\nurl = "ws://c:1"\n',
        5,
        ["[server \"b\"] key 'name': duplicate server name (first at line 2)"],
    ),
    # the locator is not fooled by keys inside strings and comments
    (
        '[[session]]\nname = "web"\ncommand = """\nrestart = "x"\n"""\n# restart = 1\n'
        'restart = "no"\n',
        7,
        ["key 'restart': bad value 'no'"],
    ),
]


@pytest.mark.parametrize(("text", "line", "fragments"), ERRORS)
def test_errors_say_path_line_and_key(
    tmp_path: Path, text: str, line: int, fragments: list[str]
) -> None:
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'ccx.toml'}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_the_issue_example_error_is_exact(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        """
        [defaults]
        max_sessions = 16

        [[session]]
        name = "web"
        command = "npm run dev"
        env = { PORT = "3000" }
        restart = "sometimes"
        """,
    )
    assert message == (
        f"{tmp_path / 'ccx.toml'}:8: [session \"web\"] key 'restart': "
        "bad value 'sometimes' (use never, on-failure, always)"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[[session]]\nname = "a"\ncommand = npm\n', ":3:11: Invalid value"),
        ("[defaults]\nttl = 1\nttl = 2\n", ":3:"),
        ('a = "unterminated\n', ":1:"),
        ("[[session]\n", ":1:"),
    ],
)
def test_syntax_errors_keep_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'ccx.toml'}{where}"), message
    assert "(at line" not in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file$"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"# fine\n# \xff\n")
    with pytest.raises(ConfigError, match=r"bad\.toml:2: not UTF-8 text"):
        load_config(bad)


# -- the locator --------------------------------------------------------------------------


def test_locator_tracks_tables_keys_and_skips_strings() -> None:
    lines = [
        "top = 1",  # 1
        "[defaults]",
        "ttl = 5  # x = 1",
        "[[session]]",
        "name = 'a'",  # 5
        'command = """',
        "fake = 1",
        "[[session]]",
        '\\" """',
        'env = { A = "1", B = "}" }',  # 10
        "args = [",
        '  "[[session]]",',
        '  "x = 1",  # y = 2',
        "]",
        "[[ session ]]",  # 15
        '"quoted key" = ' + "'''",
        "more = 2",
        "'''",
        'other.C = "3"',
        "[session.env]",  # 20
        'D = "4"',
        "[server]",
        'url = "ws://x" \r',
        "",
    ]
    text = "\n".join(lines)
    tomllib.loads(text)  # a valid file: the locator only ever sees those
    where = locate_keys(text)
    assert where.headers == {
        ("defaults", None): 2,
        ("session", 0): 4,
        ("session", 1): 15,
        ("server", None): 22,
    }
    assert where.line(("", None), "top") == 1
    assert where.line(("defaults", None), "ttl") == 3
    assert where.line(("session", 0), "command") == 6
    assert where.line(("session", 0), "env", "B") == 10
    assert where.line(("session", 0), "args") == 11
    assert where.line(("session", 0), "nothing") == 4
    assert where.line(("session", 1), "quoted key") == 16
    assert where.line(("session", 1), "other", "C") == 19
    assert where.line(("session", 1), "env") == 20
    assert where.line(("session", 1), "env", "D") == 21
    assert where.line(("server", None), "url") == 23
    assert where.line(("session", 5), "name") is None


def test_locator_finds_inline_arrays_of_tables() -> None:
    where = locate_keys('\nsession = [\n  { name = "a", command = "b" },\n]\n')
    assert where.line(("session", 0), "name") == 2


# -- Procfile ------------------------------------------------------------------------------


def test_procfile_entries_become_sessions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        # comment
        web: python3 -m http.server 8000

        worker:   sh -c 'echo a: b'
          clock_2-x:echo tick
        """,
        "Procfile",
    )
    sessions = load_procfile(path)
    assert [(s.spec.name, s.spec.command) for s in sessions] == [
        ("web", "python3 -m http.server 8000"),
        ("worker", "sh -c 'echo a: b'"),
        ("clock_2-x", "echo tick"),
    ]
    assert all(s.spec.cwd == str(tmp_path) and s.autostart for s in sessions)
    assert all(s.server is None for s in sessions)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web: a\nnot a line\n", ":2: malformed line 'not a line' (expected NAME: COMMAND"),
        ("# c\n\nweb server: x\n", ":3: malformed line"),
        ("web: a\nweb: b\n", ":2: duplicate name 'web' (first at line 1)"),
        ("web:\n", ":1: 'web' has no command"),
        ("# only comments\n\n", ": no entries"),
    ],
)
def test_procfile_errors_say_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text, "Procfile")
    with pytest.raises(ConfigError) as caught:
        load_procfile(path)
    assert str(caught.value).startswith(f"{path}{message}"), str(caught.value)


def test_missing_procfile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Procfile: no such file"):
        load_procfile(tmp_path / "Procfile")


# -- the examples ---------------------------------------------------------------------------


def test_the_examples_load() -> None:
    """examples/ccx.toml and examples/Procfile stay valid as the format grows."""
    config = load_config(EXAMPLES / "ccx.toml")
    assert {s.spec.name for s in config.sessions} >= {"ticker", "flaky"}
    assert any(s.spec.restart == "on-failure" for s in config.sessions)
    assert all(s.spec.cwd == str(EXAMPLES) for s in config.sessions)
    procfile = load_procfile(EXAMPLES / "Procfile")
    assert len(procfile) >= 2
