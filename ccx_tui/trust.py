"""Trust for a ccx.toml found implicitly: shown and asked once per file and content.

A `ccx.toml` read just because it is in the current directory (a cloned repository,
a downloaded archive) would otherwise run its commands, send tokens from the
variables it names to the servers it names, and move the data directory, without
the user ever choosing it.  As direnv does with `.envrc`, the first use of a given
file with a given content shows what it declares and asks; the answer is kept in
the data directory (0600), keyed by the file's absolute path and the SHA-256 of its
bytes, so an edited file (or the same file copied somewhere else, next to other
scripts) is asked about again.  `--config FILE` is an explicit choice: never asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ccx_tui.config_file import ConfigFile
from ccx_tui.errors import ConfigError
from ccx_tui.textsafe import escape_controls

TRUST_FILE = "trusted-configs.json"
"""In the data directory: {key: {"path", "allowed", "time"}} of every answer given."""


def config_key(path: Path, content: bytes) -> str:
    """What an answer is remembered by: the file's absolute path and content."""
    digest = hashlib.sha256()
    digest.update(os.fsencode(path.resolve()))
    digest.update(b"\0")
    digest.update(content)
    return digest.hexdigest()


class TrustStore:
    """The answers given so far, in DATA_DIR/trusted-configs.json."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / TRUST_FILE

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # An unreadable record trusts nothing: every file is asked about again.
            sys.stderr.write(f"ccx-tui: ignoring {self.path}: {exc}\n")
            return {}
        return data if isinstance(data, dict) else {}

    def lookup(self, key: str) -> bool | None:
        """True (allowed), False (declined) or None (never asked)."""
        entry = self._load().get(key)
        if isinstance(entry, dict) and isinstance(entry.get("allowed"), bool):
            return bool(entry["allowed"])
        return None

    def remember(self, key: str, path: Path, *, allowed: bool) -> None:
        """Keep the answer (atomically, 0600). Raises ConfigError if it cannot be kept."""
        data = self._load()
        data[key] = {"path": str(path.resolve()), "allowed": allowed, "time": time.time()}
        tmp = self.path.with_name(f".{TRUST_FILE}.{os.getpid()}.tmp")
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ConfigError(f"cannot record the answer in {self.path}: {exc}") from exc


def describe(config: ConfigFile) -> list[str]:
    """What the file would do, one line each, control characters escaped."""
    lines: list[str] = []
    for item in config.sessions:
        spec = item.spec
        where = f" on server {item.server}" if item.server else ""
        start = "" if item.autostart else " (not started until you press r)"
        cwd = f" in {spec.cwd}" if spec.cwd else ""
        lines.append(f"  run     {spec.title}: {spec.command}{cwd}{where}{start}")
    for server in config.servers:
        token = f", sending the token in ${server.token_env}" if server.token_env else ""
        lines.append(f"  server  {server.name}: {server.url}{token}")
    if config.defaults.data_dir is not None:
        lines.append(f"  data    keep transcripts in {config.defaults.data_dir}")
    if not lines:
        lines.append("  (no sessions or servers: only defaults)")
    return [escape_controls(line) for line in lines]


Ask = Callable[[str], str]
"""Shows a prompt, returns the answer; raises EOFError when there is nobody to ask."""


def _ask_terminal(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def check_implicit(
    config: ConfigFile,
    content: bytes,
    data_dir: Path,
    *,
    ask: Ask | None = None,
    out: TextIO | None = None,
) -> bool:
    """Whether a ccx.toml found in the current directory may be used.

    Known files get their remembered answer (a declined one with a note on `out`);
    a new one is shown and asked about on the terminal, and the answer kept; with
    no terminal to ask on it is not used, with a note saying how to use it.
    """
    out = out if out is not None else sys.stderr
    store = TrustStore(data_dir)
    key = config_key(config.path, content)
    name = escape_controls(str(config.path))
    known = store.lookup(key)
    if known is not None:
        if not known:
            out.write(
                f"ccx-tui: ignoring {name}: you declined it "
                f"(use --config {name} to run it, --no-config to silence this)\n"
            )
        return known
    if ask is None and not _interactive():
        out.write(
            f"ccx-tui: ignoring {name}: a config file found in the current directory runs "
            f"commands, and this one is new or changed; run in a terminal to be asked, or "
            f"pass --config {name} to use it\n"
        )
        return False
    out.write(f"{name} is new or has changed since you last allowed it. It declares:\n")
    out.write("\n".join(describe(config)) + "\n")
    out.flush()
    try:
        answer = (ask or _ask_terminal)(f"Use {name} and run what it declares? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        out.write("\nccx-tui: not using it (no answer)\n")
        return False
    allowed = answer.strip().lower() in ("y", "yes")
    store.remember(key, config.path, allowed=allowed)
    if not allowed:
        out.write(f"ccx-tui: not using {name} (remembered; --config {name} uses it anyway)\n")
    return allowed
