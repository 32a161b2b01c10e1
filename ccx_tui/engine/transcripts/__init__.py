"""Transcripts on disk and what reads them: writer, line index, store, search, export."""
