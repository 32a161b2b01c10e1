"""Benchmarks for ccx-tui: `python -m bench [--quick]`.

Every figure is measured against a baseline taken in the same run (or read from the OS
for memory), so the table stays meaningful on a noisy, shared machine.
"""
