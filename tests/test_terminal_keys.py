"""terminal_keys: input mode sends what xterm would for each key (issue 12)."""

from __future__ import annotations

import pytest

from ccx_tui.terminal_keys import key_bytes, paste_bytes


@pytest.mark.parametrize(
    ("key", "character", "expected"),
    [
        ("a", "a", b"a"),
        ("A", "A", b"A"),
        ("é", "é", "é".encode()),
        ("enter", "\r", b"\r"),
        ("tab", "\t", b"\t"),
        ("backspace", "\x08", b"\x7f"),
        ("escape", "\x1b", b"\x1b"),
        ("space", " ", b" "),
        ("ctrl+c", "\x03", b"\x03"),
        ("ctrl+d", None, b"\x04"),
        ("ctrl+right_square_bracket", "\x1d", b"\x1d"),
        ("up", None, b"\x1b[A"),
        ("left", None, b"\x1b[D"),
        ("ctrl+up", None, b"\x1b[1;5A"),
        ("shift+right", None, b"\x1b[1;2C"),
        ("ctrl+shift+left", None, b"\x1b[1;6D"),
        ("pagedown", None, b"\x1b[6~"),
        ("ctrl+delete", None, b"\x1b[3;5~"),
        ("f1", None, b"\x1bOP"),
        ("f5", None, b"\x1b[15~"),
        ("f12", None, b"\x1b[24~"),
        ("shift+f5", None, b"\x1b[15;2~"),
        ("ctrl+f1", None, b"\x1b[1;5P"),
        ("shift+tab", None, b"\x1b[Z"),
        ("alt+x", "x", b"\x1bx"),
        ("alt+up", None, b"\x1b[1;3A"),
        ("ctrl+alt+c", None, b"\x1b\x03"),
        ("plus", "+", b"+"),
        ("unknown_key", None, b""),
    ],
)
def test_keys(key: str, character: str | None, expected: bytes) -> None:
    assert key_bytes(key, character) == expected


def test_paste_sends_line_ends_as_enter_and_brackets_when_asked() -> None:
    assert paste_bytes("a\nb\r\nc") == b"a\rb\rc"
    assert paste_bytes("x\x1b[201~y", bracketed=True) == b"\x1b[200~xy\x1b[201~"


def test_application_cursor_mode_sends_ss3_arrows() -> None:
    """curses programs set DECCKM and expect `ESC O A` for up (their terminfo's)."""
    assert key_bytes("up", None, app_cursor=True) == b"\x1bOA"
    assert key_bytes("home", None, app_cursor=True) == b"\x1bOH"
    assert key_bytes("ctrl+up", None, app_cursor=True) == b"\x1b[1;5A"  # as xterm
    assert key_bytes("a", "a", app_cursor=True) == b"a"
