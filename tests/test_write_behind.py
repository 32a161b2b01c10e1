"""WriteBehind: transcript writes on a thread, in order, with back-pressure."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from ccx_tui.engine import SessionSpec, State
from ccx_tui.engine.transcripts import write_behind
from ccx_tui.engine.transcripts.transcript import STDERR, STDOUT, TranscriptWriter, read_segments
from ccx_tui.engine.transcripts.write_behind import WriteBehind


async def test_inline_and_threaded_writes_keep_their_order(tmp_path: Path) -> None:
    """Small chunks go inline, big ones (and whatever follows them) to the thread: the
    file is the exact concatenation, and the counts seen on the loop end exact."""
    rng = random.Random(7)
    chunks = [
        (rng.choice((STDOUT, STDERR)), os.urandom(rng.choice((10, 300, 20_000, 200_000))))
        for _ in range(400)
    ]
    written: list[int] = []
    writer = WriteBehind(
        TranscriptWriter(tmp_path), asyncio.get_running_loop(), on_written=lambda: written.append(1)
    )
    for stream, data in chunks:
        writer.write(stream, data)
        if rng.random() < 0.1:
            await asyncio.sleep(0)  # let some batches finish in between
    await writer.aclose()
    expected = b"".join(data for _, data in chunks)
    assert (tmp_path / "transcript.log").read_bytes() == expected
    assert writer.offset == len(expected)
    assert writer.newlines == expected.count(b"\n")
    assert written  # the loop heard about the thread's batches
    segments = read_segments(tmp_path / "chunks.bin")
    assert {seg.stream for seg in segments} == {STDOUT, STDERR}


async def test_a_source_that_cannot_pause_waits_at_the_hard_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "HARD_LIMIT", 256 * 1024)
    monkeypatch.setattr(write_behind, "HIGH_WATER", 128 * 1024)
    writer = WriteBehind(TranscriptWriter(tmp_path), asyncio.get_running_loop())
    data = os.urandom(100_000)
    for _ in range(100):
        writer.write(STDOUT, data)
        assert writer.backlog <= 256 * 1024 + len(data)  # bounded without a pause
    await writer.aclose()
    assert (tmp_path / "transcript.log").read_bytes() == data * 100


async def test_a_flood_is_paused_for_the_disk_and_arrives_whole(
    make_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tiny watermarks, a process printing 64 MiB as fast as it can is held back
    (its pipes stop being read) while the writer thread catches up, then resumed; every
    byte arrives in order."""
    monkeypatch.setattr(write_behind, "HIGH_WATER", 256 * 1024)
    monkeypatch.setattr(write_behind, "LOW_WATER", 64 * 1024)
    seen: list[WriteBehind] = []
    async with make_engine() as engine:
        info = await engine.start(
            SessionSpec("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 67108864")
        )
        while engine.get(info.id).state is State.RUNNING:
            rec = engine._records[info.id]
            if rec.writer is not None and rec.writer not in seen:
                seen.append(rec.writer)
            await asyncio.sleep(0.01)
        done = await engine.wait(info.id)
    assert done.state is State.EXITED and done.exit_code == 0
    data = done.transcript.read_bytes()
    assert len(data) == 64 * 1024 * 1024 == done.bytes
    assert done.lines == data.count(b"\n")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    whole, rest = divmod(len(data), len(line))
    assert data == line * whole + line[:rest]  # in order, nothing lost or doubled
    assert seen and sum(w.pauses for w in seen) > 0
