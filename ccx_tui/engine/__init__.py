"""The headless core of ccx-tui: sessions, processes, transcripts.  No UI imports."""

from __future__ import annotations

from ccx_tui.engine.events import (
    Event,
    OutputAppended,
    SessionAdded,
    SessionRemoved,
    SessionUpdated,
)
from ccx_tui.engine.local import EngineConfig, EngineStats, LocalEngine
from ccx_tui.engine.reader import Line, TranscriptReader
from ccx_tui.engine.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.store import DataStore, default_data_dir

__all__ = [
    "DataStore",
    "EngineConfig",
    "EngineStats",
    "Event",
    "Line",
    "LocalEngine",
    "OutputAppended",
    "SessionAdded",
    "SessionInfo",
    "SessionRemoved",
    "SessionSpec",
    "SessionUpdated",
    "State",
    "TranscriptReader",
    "default_data_dir",
]
