"""The ANSI palette: Textual's Monokai, but with magenta and blue told apart."""

from __future__ import annotations

from rich.terminal_theme import TerminalTheme

_RED = (244, 0, 95)
_GREEN = (152, 224, 36)
_YELLOW = (253, 151, 31)
_BLUE = (80, 140, 255)  # Monokai draws blue as purple
_MAGENTA = (217, 80, 220)  # ... and magenta exactly like red
_CYAN = (88, 209, 235)

ANSI_THEME = TerminalTheme(
    (12, 12, 12),
    (217, 217, 217),
    [(26, 26, 26), _RED, _GREEN, _YELLOW, _BLUE, _MAGENTA, _CYAN, (196, 197, 181)],
    [
        (98, 94, 76),
        (255, 90, 140),
        (180, 240, 80),
        (224, 213, 97),
        (130, 175, 255),
        (240, 130, 240),
        (140, 230, 245),
        (246, 246, 239),
    ],
)
