"""`python -m ccx_tui` runs the command line."""

from __future__ import annotations

from ccx_tui.cli import main

raise SystemExit(main())
