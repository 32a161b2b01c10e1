"""Serving the engine: `ccx-tui serve`, the engine process, its management channel."""
