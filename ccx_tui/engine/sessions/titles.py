"""A short title that says what a shell command line runs (for tabs and the sidebar).

`npm run dev` is "npm run dev"; `cd web && PORT=3 npm start` is "npm start";
`for i in $(seq 5); do curl -s x; done` is "curl -s x (loop)"; `python3 -c '...'` is
"python3 -c …".  No shell is parsed for real: words are split as `shlex` does (a
quote left open falls back to whitespace), cut into simple commands at `;`, `&&`,
`||`, `|` and `&`, and the first one that does work is named.
"""

from __future__ import annotations

import os
import re
import shlex

MAX_TITLE = 24
_SEPARATORS = {";", "&&", "||", "|", "&", "\n"}
_LOOPS = {"for", "while", "until", "select"}
_KEYWORDS = {"do", "then", "else", "elif", "{", "(", "!", "if", "time", "}", ")", "done", "fi"}
_WRAPPERS = {"env", "sudo", "nice", "nohup", "exec", "command", "builtin", "stdbuf", "timeout"}
_SETUP = {"cd", "export", "set", "source", ".", "umask", "trap", "unset", "ulimit", "shopt"}
_SETUP |= {"[", "[[", "test"}  # an `if`'s condition: what follows `then` is the work
_IDLE = {"true", ":", "sleep", "wait"}
_OPTIONS_WITH_VALUE = {"-u", "-g", "-n", "-s", "-k", "-C", "-h", "-p"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SPLIT = re.compile(r"(;|&&|\|\||\||&|\n)")


def command_title(command: str) -> str:
    """The title of a command line (see the module docstring), at most MAX_TITLE
    characters."""
    words = _words(command)
    loop = bool(words) and words[0] in _LOOPS
    commands = _simple_commands(words)
    for idle in (False, True):  # what does work, else a sleep or a wait
        for simple in commands:
            named = _name(simple, skip_loop_header=loop, idle=idle)
            if named:
                return _fit(named + (" (loop)" if loop else ""))
    if not commands:
        return "?"
    first = commands[0]  # only setup, sleeps and loop headers: say the first as it is
    return _fit(" ".join([os.path.basename(first[0]), *first[1:3]]))


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an open quote: whitespace will do
        return [part for part in _SPLIT.split(command) for part in part.split() or [part]]


def _simple_commands(words: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for word in words:
        # Punctuation runs come as one word (`);`, `&&`): any with ; & | separates.
        if word in _SEPARATORS or (set(word) <= set(";&|()") and set(word) & set(";&|")):
            commands.append([])
        elif set(word) <= set("()"):
            continue  # a subshell's parentheses
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def _name(words: list[str], *, skip_loop_header: bool, idle: bool) -> str | None:
    if skip_loop_header and words[0] in _LOOPS:
        return None  # `for i in ...`: the body says what it does
    while words and (words[0] in _KEYWORDS or _ASSIGNMENT.match(words[0])):
        words = words[1:]
    while words and words[0] in _WRAPPERS:
        words = words[1:]
        while words and (words[0].startswith("-") or _ASSIGNMENT.match(words[0])):
            # sudo -u x, env K=V, nice -n 5: options, and the values a few of them take
            words = words[2:] if words[0] in _OPTIONS_WITH_VALUE else words[1:]
        if words and words[0].replace(".", "").isdigit():
            words = words[1:]  # timeout 30 cmd
    if not words or words[0] in _SETUP or (not idle and words[0] in _IDLE):
        return None
    first = os.path.basename(words[0])
    rest: list[str] = []
    for word in words[1:3]:
        if "\n" in word or len(word) > 16:
            rest.append("…")
            break
        rest.append(word)
    return " ".join([first, *rest])


def _fit(title: str) -> str:
    title = " ".join(title.split()) or "?"
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"
