"""What a terminal sends to a program for a key: Textual's key names to bytes.

Pure (no Textual import): `key_bytes(key, character)` takes a key event's `key` and
`character` and returns what xterm would send, so that arrows, function keys and
ctrl/alt combinations reach a program in input mode as they would in any terminal.
"""

from __future__ import annotations

_CSI = "\x1b["
_PLAIN = {
    "up": _CSI + "A",
    "down": _CSI + "B",
    "right": _CSI + "C",
    "left": _CSI + "D",
    "home": _CSI + "H",
    "end": _CSI + "F",
    "insert": _CSI + "2~",
    "delete": _CSI + "3~",
    "pageup": _CSI + "5~",
    "pagedown": _CSI + "6~",
    "f1": "\x1bOP",
    "f2": "\x1bOQ",
    "f3": "\x1bOR",
    "f4": "\x1bOS",
    "f5": _CSI + "15~",
    "f6": _CSI + "17~",
    "f7": _CSI + "18~",
    "f8": _CSI + "19~",
    "f9": _CSI + "20~",
    "f10": _CSI + "21~",
    "f11": _CSI + "23~",
    "f12": _CSI + "24~",
    "enter": "\r",
    "tab": "\t",
    "shift+tab": _CSI + "Z",
    "escape": "\x1b",
    "backspace": "\x7f",
    "space": " ",
    "ctrl+space": "\x00",
    "ctrl+@": "\x00",
}
_FINAL = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
_TILDE = {"insert": "2", "delete": "3", "pageup": "5", "pagedown": "6"}
_TILDE.update(
    {"f5": "15", "f6": "17", "f7": "18", "f8": "19", "f9": "20", "f10": "21"}
    | {"f11": "23", "f12": "24"}
)
_SS3 = {"f1": "P", "f2": "Q", "f3": "R", "f4": "S"}
_MODIFIERS = {"shift": 1, "alt": 2, "ctrl": 4}


def key_bytes(key: str, character: str | None, *, app_cursor: bool = False) -> bytes:
    """The bytes a terminal sends for the key; b"" for a key it sends nothing for.

    With `app_cursor` (the program set DECCKM, as curses programs do) unmodified
    arrows, Home and End are sent as SS3 sequences (`ESC O A`), as xterm does then.
    """
    if app_cursor and key in _FINAL:
        return f"\x1bO{_FINAL[key]}".encode()
    if key in _PLAIN:
        return _PLAIN[key].encode()
    *mods, base = key.split("+") if key != "+" else ("+",)
    if mods and all(m in _MODIFIERS for m in mods):
        code = 1 + sum(_MODIFIERS[m] for m in set(mods))
        if base in _FINAL:
            return f"{_CSI}1;{code}{_FINAL[base]}".encode()
        if base in _TILDE:
            return f"{_CSI}{_TILDE[base]};{code}~".encode()
        if base in _SS3:
            return f"{_CSI}1;{code}{_SS3[base]}".encode()
        if mods == ["alt"] or set(mods) == {"alt", "shift"}:
            inner = key_bytes(key.replace("alt+", ""), character)
            return b"\x1b" + inner if inner else b""
        if set(mods) == {"ctrl", "alt"}:
            inner = key_bytes(key.replace("alt+", ""), None)
            return b"\x1b" + inner if inner else b""
        if mods == ["ctrl"] and len(base) == 1:
            return _ctrl(base)
    if character:
        return character.encode("utf-8", "replace")
    return b""


def _ctrl(char: str) -> bytes:
    """ctrl+letter and the few ctrl+punctuation keys terminals send as C0 codes."""
    if "a" <= char.lower() <= "z":
        return bytes([ord(char.lower()) - ord("a") + 1])
    codes = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31, "?": 127}
    return bytes([codes[char]]) if char in codes else b""


def paste_bytes(text: str, *, bracketed: bool = False) -> bytes:
    """A paste as a terminal sends it: line ends as carriage returns (what Enter
    sends), wrapped in bracketed-paste markers for a program that asked for them."""
    data = text.replace("\r\n", "\r").replace("\n", "\r").encode("utf-8", "replace")
    if bracketed:
        # A paste must not end the bracket early with a marker of its own.
        data = data.replace(b"\x1b[201~", b"")
        return b"\x1b[200~" + data + b"\x1b[201~"
    return data
