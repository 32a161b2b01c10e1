"""Every error ccx-tui raises on purpose.

CcxError                  base; its message is one line fit for a user
+-- ConfigError           a bad flag, env value or config file entry
+-- DataDirError          the data directory cannot be created or written, or is not ours
+-- SessionError          something about one session
|   +-- UnknownSession    no session has that id
|   |   +-- AmbiguousSession  several sessions start with that id prefix
|   +-- InvalidCommand    empty command, unusable cwd, bad env or TTL
|   +-- InvalidTransition the session's state forbids the action
+-- TranscriptError       a transcript cannot be opened or read
+-- SearchError           a search query is empty or not a valid regex
+-- ExportError           a transcript cannot be saved where the user asked
"""

from __future__ import annotations


class CcxError(Exception):
    """Base class: the message is a single line meant for the user."""


class ConfigError(CcxError):
    """A flag, environment variable or config entry has a bad value."""


class DataDirError(CcxError):
    """The data directory is missing, unwritable, corrupt beyond use, or owned by
    another user."""


class SessionError(CcxError):
    """An action on one session cannot be carried out."""


class UnknownSession(SessionError):
    """No session has the given id (or id prefix)."""


class AmbiguousSession(UnknownSession):
    """Several sessions start with the given id prefix (the message lists them)."""


class InvalidCommand(SessionError):
    """The session spec is unusable: empty command, missing cwd, bad env or TTL."""


class InvalidTransition(SessionError):
    """The session is in a state where the action makes no sense."""


class TranscriptError(CcxError):
    """A transcript file cannot be opened or read."""


class ExportError(CcxError):
    """Saving a transcript (or its filtered lines) to a file failed."""


class SearchError(CcxError):
    """A search query cannot be used: it is empty or not a valid regular expression."""
