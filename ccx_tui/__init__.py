"""ccx-tui: a terminal UI multiplexer for many concurrent commands."""

from __future__ import annotations

__version__ = "0.1.0"
