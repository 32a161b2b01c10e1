"""The headless core of ccx-tui: sessions, processes, transcripts.  No UI imports.

Sub-packages: `sessions` (sessions and their processes), `transcripts` (on disk: the
writer, the index, the store, search, export), `wire` (the protocol and its clients),
`server` (`serve`, the engine process).  `api` is the one engine interface the app
uses.  The names below are loaded on first use (PEP 562), so importing a light module
(the codec, say) does not drag in the engine and psutil.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Event": "sessions.events",
    "OutputAppended": "sessions.events",
    "SessionAdded": "sessions.events",
    "SessionRemoved": "sessions.events",
    "SessionUpdated": "sessions.events",
    "EngineConfig": "sessions.local",
    "EngineStats": "sessions.local",
    "LocalEngine": "sessions.local",
    "SessionInfo": "sessions.session",
    "SessionSpec": "sessions.session",
    "State": "sessions.session",
    "Line": "transcripts.reader",
    "TranscriptReader": "transcripts.reader",
    "DataStore": "transcripts.store",
    "default_data_dir": "transcripts.store",
}

if TYPE_CHECKING:
    from ccx_tui.engine.sessions.events import (
        Event,
        OutputAppended,
        SessionAdded,
        SessionRemoved,
        SessionUpdated,
    )
    from ccx_tui.engine.sessions.local import EngineConfig, EngineStats, LocalEngine
    from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec, State
    from ccx_tui.engine.transcripts.reader import Line, TranscriptReader
    from ccx_tui.engine.transcripts.store import DataStore, default_data_dir


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


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
