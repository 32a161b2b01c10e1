"""Textual widgets, one job each: transcript view, sidebar, tabs, dialogs."""
