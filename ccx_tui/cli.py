"""argv -> settings -> the app or a headless command; exit codes.

Startup time is part of the interface (`ccx-tui exec -- true` should cost little more
than Python itself): this module loads what every command needs, and each command loads
the rest where it runs: Textual for the app, asyncio and the engine for `exec`, the
config file's parser when there is a file.  tests/test_startup_imports.py holds the line.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ccx_tui import __version__
from ccx_tui.config import (
    ServerTarget,
    Settings,
    given_token,
    parse_env,
    parse_positive_int,
    parse_seconds,
    resolve_servers,
    server_token,
)
from ccx_tui.engine.sessions.session import DEFAULT_COLS, DEFAULT_ROWS, SessionSpec
from ccx_tui.errors import CcxError, ConfigError
from ccx_tui.textsafe import escape_controls

if TYPE_CHECKING:
    from ccx_tui.config_file import ConfigFile, FileDefaults

EXIT_USAGE = 2
SUBCOMMANDS = ("exec", "sessions", "view", "serve", "engine", "web", "attach", "kill")
AUTO_CONFIG = "ccx.toml"
"""Read from the current directory when present, unless --config or --no-config."""


class _Parser(argparse.ArgumentParser):
    """argparse that fails with one line (plus a hint), never a wall of usage."""

    def error(self, message: str) -> NoReturn:
        # The message quotes the user's argv, which may hold control characters.
        message = escape_controls(message)
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where transcripts live (default $CCX_TUI_DATA_DIR, the config file's "
        "data_dir, or ~/.local/share/ccx-tui)",
    )
    files = parser.add_mutually_exclusive_group()
    files.add_argument(
        "--config",
        metavar="PATH",
        help=f"a ccx.toml of defaults, [[session]] and [[server]] tables "
        f"(default ./{AUTO_CONFIG} if present)",
    )
    files.add_argument("--no-config", action="store_true", help=f"do not read ./{AUTO_CONFIG}")


def _main_parser() -> argparse.ArgumentParser:
    main = _Parser(
        prog="ccx-tui",
        description="Run and watch many commands at once: the positional commands, the "
        "[[session]] tables of ccx.toml and the entries of a Procfile. Settings come from "
        "flags, then CCX_TUI_* variables, then the config file. Subcommands: attach, kill, "
        "exec, sessions, view, serve, web (see `ccx-tui SUBCOMMAND --help`).",
    )
    main.add_argument("--version", action="version", version=f"ccx-tui {__version__}")
    _common(main)
    main.add_argument("--max-sessions", metavar="N", help="live sessions at once (default 16)")
    main.add_argument("--ttl", metavar="SECONDS", help="default time limit for each session")
    main.add_argument("--kill-grace", metavar="SECONDS", help="TERM -> KILL delay (default 3)")
    _on_exit(main)
    _wrap(main)
    main.add_argument(
        "--no-tty",
        action="store_true",
        help="run the sessions it starts on pipes, not on a pseudo-terminal (also "
        "CCX_TUI_TTY=0, or tty = false in ccx.toml)",
    )
    main.add_argument(
        "--connect",
        metavar="URL",
        action="append",
        default=[],
        help="a server to run sessions on (repeatable): a ccx-tui server is attached "
        "like the local engine (all its sessions; going leaves them running), a "
        "cc_executor server shows the sessions started here",
    )
    _client_auth(main, "--connect")
    main.add_argument(
        "--procfile",
        metavar="PATH",
        help="start each NAME: COMMAND line of this Procfile as a session, in its directory",
    )
    main.add_argument(
        "--names",
        metavar="A,B,...",
        help="names for the commands' sessions, in order (as mprocs' --names)",
    )
    main.add_argument("command", nargs="*", help="commands to start, one session each")
    return main


def _exec_parser() -> argparse.ArgumentParser:
    exe = _Parser(prog="ccx-tui exec", description="Run one command as a recorded session.")
    _common(exe)
    exe.add_argument("--ttl", metavar="SECONDS", help="kill it after this long (exit 124)")
    exe.add_argument("--cwd", metavar="DIR", help="directory to run in")
    exe.add_argument("--env", metavar="K=V", action="append", default=[], help="set a variable")
    exe.add_argument("--kill-grace", metavar="SECONDS", help="TERM -> KILL delay (default 3)")
    exe.add_argument(
        "--tty",
        action="store_true",
        help="run it on a pseudo-terminal (line-buffered, colours; stdout and stderr "
        "become one stream) instead of pipes",
    )
    exe.add_argument(
        "--server",
        metavar="URL|NAME",
        help="run on a cc_executor server: a URL like ws://host:8003/ws/mcp, "
        "or the name of a [[server]] in the config file",
    )
    _client_auth(exe, "--server")
    exe.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    return exe


def _sessions_parser() -> argparse.ArgumentParser:
    ses = _Parser(prog="ccx-tui sessions", description="List recorded sessions.")
    _common(ses)
    ses.add_argument("--json", action="store_true", help="machine-readable output")
    return ses


def _serve_parser() -> argparse.ArgumentParser:
    srv = _Parser(
        prog="ccx-tui serve",
        description="Serve the cc_executor WebSocket protocol over the local engine.",
    )
    _common(srv)
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    srv.add_argument("--port", default="8003", help="port (default 8003; 0 picks a free one)")
    auth = srv.add_mutually_exclusive_group()
    auth.add_argument(
        "--token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer TOKEN' with the token in FILE (mode 600); "
        "default $CCX_TUI_TOKEN, else a random token kept in DATA_DIR/serve/token",
    )
    auth.add_argument("--token", help="the token itself (visible to other users in ps)")
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="accept anyone who can connect (loopback only: every local user can)",
    )
    srv.add_argument("--tls-cert", metavar="FILE", help="serve wss://: certificate (PEM)")
    srv.add_argument("--tls-key", metavar="FILE", help="serve wss://: its private key (PEM)")
    srv.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without TLS (token and output in the clear)",
    )
    srv.add_argument("--max-sessions", metavar="N", help="processes live at once (default 16)")
    srv.add_argument(
        "--max-connections",
        metavar="N",
        default="100",
        help="connections at once (default 100, like upstream's MAX_SESSIONS)",
    )
    srv.add_argument("--ttl", metavar="SECONDS", help="default time limit for each session")
    srv.add_argument("--kill-grace", metavar="SECONDS", help="TERM -> KILL delay (default 3)")
    return srv


def _view_parser() -> argparse.ArgumentParser:
    view = _Parser(prog="ccx-tui view", description="View a file or a past session.")
    _common(view)
    _wrap(view)
    view.add_argument("target", metavar="PATH|SESSION_ID")
    return view


def _attach_parser() -> argparse.ArgumentParser:
    att = _Parser(
        prog="ccx-tui attach",
        description="Show the sessions of the running engine process (after a detach).",
    )
    _common(att)
    _on_exit(att)
    _wrap(att)
    att.add_argument(
        "--server",
        metavar="URL",
        action="append",
        default=[],
        help="a ccx-tui server (`ccx-tui serve` on another machine): show its sessions "
        "as the local engine's, live and past; going leaves them running (repeatable)",
    )
    _client_auth(att, "--server")
    return att


def _kill_parser() -> argparse.ArgumentParser:
    kil = _Parser(prog="ccx-tui kill", description="Kill sessions of the running engine.")
    _common(kil)
    kil.add_argument("--now", action="store_true", help="SIGKILL at once, no grace period")
    which = kil.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every running or queued session")
    which.add_argument("ids", nargs="*", default=[], metavar="SESSION_ID", help="ids or prefixes")
    return kil


def _engine_parser() -> argparse.ArgumentParser:
    # Hidden (not in the main help): the engine process, started by ccx-tui itself.
    eng = _Parser(prog="ccx-tui engine", description="Be the engine process of a data dir.")
    eng.add_argument("--data-dir", metavar="DIR", help="the data dir it serves")
    eng.add_argument("--idle-exit", metavar="SECONDS", help="exit after this long unused")
    eng.add_argument("--kill-grace", metavar="SECONDS", help="TERM -> KILL delay (default 3)")
    eng.add_argument("--max-sessions", metavar="N", help="sessions running at once")
    eng.add_argument("--ttl", metavar="SECONDS", help="default time limit (0: none)")
    eng.add_argument("--retention-bytes", metavar="N", help="history kept on disk")
    eng.add_argument("--scrub", metavar="NAME", action="append", default=[], help="never inherited")
    eng.add_argument("--detach", action="store_true", help="fork once it holds the data dir")
    return eng


def _wrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wrap",
        action="store_true",
        help="soft-wrap long lines in the output views (W switches it; also "
        "CCX_TUI_WRAP=1, or wrap = true in ccx.toml)",
    )


def _on_exit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--on-exit",
        choices=("ask", "kill", "detach"),
        help="what quitting does to running sessions: ask (default), kill them, or "
        "detach (they keep running; `ccx-tui attach` brings them back)",
    )


def _client_auth(parser: argparse.ArgumentParser, flag: str) -> None:
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"bearer token for {flag}, read from FILE (default $CCX_TUI_TOKEN; for a "
        "loopback URL, the token a `serve` of the same data dir generated)",
    )
    tokens.add_argument(
        "--token", help=f"bearer token for {flag} itself (visible to other users in ps)"
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help=f"CA certificates (PEM) to verify a wss:// {flag} (default: the system's)",
    )


def _given_token(ns: argparse.Namespace, prog: str) -> str | None:
    """--token-file, else --token (with a warning: argv is public), else None."""
    if ns.token:
        sys.stderr.write(
            f"{prog}: warning: a token on the command line is visible to other users "
            "(ps); use --token-file FILE or $CCX_TUI_TOKEN\n"
        )
    return given_token(ns.token, ns.token_file)


def _ca_file(ns: argparse.Namespace) -> Path | None:
    """--ca-file, checked now (a one-line error, not a failure per session later)."""
    if not ns.ca_file:
        return None
    from ccx_tui.engine.wire.auth import client_tls

    path = Path(ns.ca_file).expanduser().absolute()
    client_tls(path)
    return path


def command_line(words: list[str]) -> str:
    """One word is a shell command line; several are an argv, quoted into one."""
    if words and words[0] == "--":
        words = words[1:]
    if len(words) == 1:
        return words[0]
    return shlex.join(words)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # Past a file-size limit we want EFBIG (reported per session), not a dead process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        if args and args[0] in SUBCOMMANDS:
            return _subcommand(args[0], build_parser(args[0]).parse_args(args[1:]))
        ns = build_parser("main").parse_args(args)
        return _run_app(ns)
    except CcxError as exc:
        # Messages quote ids, paths and servers' words: never let them drive the terminal.
        sys.stderr.write(f"ccx-tui: {escape_controls(str(exc))}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _subcommand(name: str, ns: argparse.Namespace) -> int:
    if name == "exec":
        command = command_line(ns.command)
        if not command.strip():
            sys.stderr.write("ccx-tui exec: error: empty command (usage: ccx-tui exec -- CMD)\n")
            return EXIT_USAGE
        config = _load_config(ns)
        settings = Settings.resolve(
            data_dir=ns.data_dir,
            kill_grace=ns.kill_grace,
            file=_file_defaults(config),
            servers=config.servers if config else (),
        )
        cols, rows = _terminal_size()
        spec = SessionSpec(
            command=command,
            cwd=ns.cwd,
            env=parse_env(ns.env),
            ttl=parse_seconds(ns.ttl) if ns.ttl else None,
            tty=ns.tty,
            cols=cols,
            rows=rows,
        )
        if not ns.server:  # a remote cwd is the server's business
            spec = spec.validated()
        import asyncio

        if ns.server:
            from ccx_tui.headless import run_remote_exec

            target = _exec_server(ns, config, settings.data_dir)
            return asyncio.run(run_remote_exec(settings, spec, target))
        from ccx_tui.headless import run_exec

        return asyncio.run(run_exec(settings, spec))
    if name == "serve":
        return _serve(ns)
    if name == "web":
        return _web(ns)
    if name == "engine":
        from ccx_tui.engine.server.daemon import IDLE_EXIT, run_engine

        idle = IDLE_EXIT
        if ns.idle_exit:
            idle = parse_seconds(ns.idle_exit, "idle exit", allow_zero=True) or 0.0
        settings = Settings.resolve(
            data_dir=ns.data_dir,
            kill_grace=ns.kill_grace,
            max_sessions=ns.max_sessions,
            ttl=ns.ttl,
        )
        if ns.retention_bytes:
            retention = parse_positive_int(ns.retention_bytes, "retention bytes")
            settings = replace(settings, retention_bytes=retention)
        settings = replace(settings, scrub_env=settings.scrub_env | set(ns.scrub))
        return run_engine(settings, idle_exit=idle, detach=ns.detach)
    settings = Settings.resolve(
        data_dir=ns.data_dir,
        on_exit=getattr(ns, "on_exit", None),
        wrap=getattr(ns, "wrap", False),
        file=_file_defaults(_load_config(ns)),
    )
    if name == "attach":
        from ccx_tui.app import run_app
        from ccx_tui.engine_cli import require_engine

        attach = resolve_servers(
            ns.server,
            _given_token(ns, "ccx-tui attach"),
            (),
            data_dir=settings.data_dir,
            ca_file=_ca_file(ns),
        )
        if not attach:  # else the local engine need not be running already
            require_engine(settings)
        for target in attach:  # a wrong token says so here, not as a toast later
            import asyncio

            from ccx_tui.engine.wire.client import ServerSocket, probe

            asyncio.run(probe(ServerSocket(target.url, token=target.token, ca_file=target.ca_file)))
        return run_app(settings, [], attach=attach)
    if name == "kill":
        from ccx_tui.engine_cli import kill

        if not ns.all and not ns.ids:
            build_parser("kill").error("give SESSION_ID... or --all")
        return kill(settings, ns.ids, every=ns.all, force=ns.now)
    if name == "sessions":
        from ccx_tui.headless import list_sessions

        return list_sessions(settings, as_json=ns.json)
    from ccx_tui.viewer import run_viewer

    return run_viewer(settings, ns.target)


def _terminal_size() -> tuple[int, int]:
    """The size of the terminal `exec` prints to (80x24 when it prints to a file)."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError):
        return DEFAULT_COLS, DEFAULT_ROWS
    return max(1, size.columns), max(1, size.lines)


def _load_config(ns: argparse.Namespace) -> ConfigFile | None:
    """--config PATH, else ./ccx.toml if it exists (and not --no-config) and the user
    allows it (asked once per file and content, see trust.py), else None."""
    if not ns.config and (ns.no_config or not Path(AUTO_CONFIG).is_file()):
        return None
    from ccx_tui.config_file import load_config  # tomllib and its checks: only for a file

    if ns.config:
        return load_config(Path(ns.config))
    from ccx_tui.trust import check_implicit

    path = Path(AUTO_CONFIG)
    config = load_config(path)  # any problem with the file is reported from here
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if load_config(path) != config:  # the answer must be about what is used
        raise ConfigError(f"{path}: changed while it was being read; try again")
    # Where answers are kept: never a data_dir the file itself names.
    data_dir = Settings.resolve(data_dir=ns.data_dir).data_dir
    return config if check_implicit(config, content, data_dir) else None


def _file_defaults(config: ConfigFile | None) -> FileDefaults | None:
    return config.defaults if config is not None else None


def _exec_server(ns: argparse.Namespace, config: ConfigFile | None, data_dir: Path) -> ServerTarget:
    """`exec --server`: a URL or a [[server]] name, with its token and CA file.

    The token: --token-file or --token, else $CCX_TUI_TOKEN for a URL or the
    [[server]]'s token_env, else (loopback) the token file of a `serve` of `data_dir`.
    """
    server = ns.server
    token = _given_token(ns, "ccx-tui exec")
    ca_file = _ca_file(ns)
    if "://" in server:
        [target] = resolve_servers([server], token, data_dir=data_dir, ca_file=ca_file)
        return target
    entries = {entry.name: entry for entry in (config.servers if config else [])}
    if server not in entries:
        where = f"in {config.path}" if config else f"(no --config, no ./{AUTO_CONFIG})"
        known = f"; known: {', '.join(entries)}" if entries else ""
        raise ConfigError(
            f"--server {server!r}: not a ws:// URL and no [[server]] of that name {where}{known}"
        )
    entry = entries[server]
    return ServerTarget(
        entry.url,
        token or server_token(entry, data_dir=data_dir),
        entry.name,
        ca_file or entry.ca_file,
    )


def _run_app(ns: argparse.Namespace) -> int:
    config = _load_config(ns)
    settings = Settings.resolve(
        data_dir=ns.data_dir,
        max_sessions=ns.max_sessions,
        ttl=ns.ttl,
        kill_grace=ns.kill_grace,
        on_exit=ns.on_exit,
        no_tty=ns.no_tty,
        wrap=ns.wrap,
        file=_file_defaults(config),
        servers=config.servers if config else (),
    )
    declared = list(config.sessions) if config else []
    if ns.procfile:
        from ccx_tui.config_file import load_procfile

        declared += load_procfile(Path(ns.procfile))
    servers = resolve_servers(
        ns.connect,
        _given_token(ns, "ccx-tui"),
        config.servers if config else (),
        data_dir=settings.data_dir,
        ca_file=_ca_file(ns),
    )
    commands = [c for c in ns.command if c.strip()]
    names = [n.strip() for n in ns.names.split(",")] if ns.names else []
    if len(names) > len(commands):
        raise ConfigError(f"--names gives {len(names)} names for {len(commands)} command(s)")
    attach: list[ServerTarget] = []
    if servers:  # ccx-tui servers are attached like the local engine, not launch-only
        import asyncio

        from ccx_tui.server_kinds import sort_servers

        servers, attach = asyncio.run(sort_servers(servers))
    from ccx_tui.app import run_app  # Textual: only when the app runs

    return run_app(
        settings, commands, servers=servers, declared=declared, names=names, attach=attach
    )


def _serve(ns: argparse.Namespace) -> int:
    import asyncio

    from ccx_tui.engine.server.server import ServeConfig
    from ccx_tui.engine.wire import auth
    from ccx_tui.headless import run_serve

    def refuse(message: str) -> int:
        sys.stderr.write(f"ccx-tui serve: error: {message}\n")
        return EXIT_USAGE

    host = ns.host
    loopback = auth.is_loopback(host)
    if bool(ns.tls_cert) != bool(ns.tls_key):
        return refuse("--tls-cert and --tls-key go together")
    tls = auth.server_tls(Path(ns.tls_cert), Path(ns.tls_key)) if ns.tls_cert else None
    if not loopback and tls is None and not ns.insecure:
        return refuse(
            f"refusing to serve on {host} without TLS: the token and all output would "
            "cross the network in the clear (give --tls-cert and --tls-key, or --insecure)"
        )
    if ns.no_auth and not loopback:
        return refuse(f"--no-auth is for loopback only, not {host}")
    try:
        port = int(ns.port)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        return refuse(f"bad --port {ns.port!r}")
    settings = Settings.resolve(
        data_dir=ns.data_dir,
        max_sessions=ns.max_sessions,
        ttl=ns.ttl,
        kill_grace=ns.kill_grace,
        file=_file_defaults(_load_config(ns)),
    )
    warn = "ccx-tui serve: warning:"
    if not loopback and tls is None:
        sys.stderr.write(f"{warn} --insecure: tokens and output cross the network in the clear\n")
    token = _given_token(ns, "ccx-tui serve")
    if ns.no_auth:
        sys.stderr.write(f"{warn} --no-auth: every user of this machine can run commands as you\n")
        where = "no authentication"
    elif ns.token_file:
        where = f"token from {ns.token_file}"
    elif token:
        where = "token from --token"
    elif token := os.environ.get(auth.TOKEN_ENV) or None:
        where = f"token from ${auth.TOKEN_ENV}"
    else:
        token, path = auth.ensure_token_file(settings.data_dir)
        where = f"token in {path}"
    config = ServeConfig(
        host=host,
        port=port,
        token=token,
        no_auth=ns.no_auth,
        tls=tls,
        max_connections=parse_positive_int(ns.max_connections, "max connections"),
    )
    return asyncio.run(run_serve(settings, config, where))


def _web_parser() -> argparse.ArgumentParser:
    web = _Parser(
        prog="ccx-tui web",
        description="Serve the app in a browser: each browser tab is one more client. "
        "Log in with the link it prints, or with the token in DATA_DIR/web/token.",
    )
    _common(web)
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    web.add_argument("--port", default="8000", help="port (default 8000; 0 picks a free one)")
    web.add_argument(
        "--no-auth",
        action="store_true",
        help="no login (loopback only: every local user can then use the app as you)",
    )
    web.add_argument("--tls-cert", metavar="FILE", help="serve https://: certificate (PEM)")
    web.add_argument("--tls-key", metavar="FILE", help="serve https://: its private key (PEM)")
    web.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without TLS (login and screen in the clear)",
    )
    return web


def _web(ns: argparse.Namespace) -> int:
    from ccx_tui.web import run_web
    from ccx_tui.web_auth import check_flags

    options = check_flags(  # usage errors before any question about ./ccx.toml
        ns.host,
        ns.port,
        no_auth=ns.no_auth,
        tls_cert=ns.tls_cert,
        tls_key=ns.tls_key,
        insecure=ns.insecure,
    )
    config = _load_config(ns)
    settings = Settings.resolve(data_dir=ns.data_dir, file=_file_defaults(config))
    path = config.path.absolute() if config else None
    return run_web(options, settings.data_dir.absolute(), path, settings.kill_grace)


def build_parser(name: str) -> argparse.ArgumentParser:
    """The parser of subcommand `name` ("main": plain `ccx-tui`).  Only that one is
    built: building all nine took ten times as long as building one."""
    return _PARSERS[name]()


_PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "main": _main_parser,
    "exec": _exec_parser,
    "sessions": _sessions_parser,
    "view": _view_parser,
    "serve": _serve_parser,
    "engine": _engine_parser,
    "web": _web_parser,
    "attach": _attach_parser,
    "kill": _kill_parser,
}
