"""ccx-tui's own environment variables in sessions (no imports: the settings need them,
and `--help` should not load the process machinery)."""

from __future__ import annotations

MARKER_ENV = "CCX_TUI_SESSION"
"""In every session's environment, naming its run: descendants that outlive their
session are found by it (see process.py)."""
SECRET_ENV = frozenset({"CCX_TUI_TOKEN"})
"""Variables of ccx-tui's own that no session inherits, whatever the configuration."""
