"""The mirror's protocol state and its resume point, without sockets (issue 11): frames
in, pieces for the copy out, exact by the server's offsets; and where a copy that
holds a note for lost bytes goes on from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ccx_tui.engine.transcripts.runs import RUNS_NAME, append_copy
from ccx_tui.engine.transcripts.transcript import (
    META,
    SIDECAR_NAME,
    STDERR,
    STDOUT,
    TranscriptWriter,
    read_segments,
)
from ccx_tui.engine.wire import protocol as p
from ccx_tui.engine.wire.mirror import (
    ANCHOR_NAME,
    Anchor,
    open_copy,
    resume_point,
    write_anchor,
)
from ccx_tui.engine.wire.mirror_protocol import Gap, MirrorFollower, Output, Runs, Step

ALL = ["execute", "attach", p.BATCH, p.RUNS]


def _hello(caps: list[str]) -> str:
    return p.encode_notification("connected", {"session_id": "c", "capabilities": caps})


def _follower(offset: int = 0, runs: int = 0, caps: list[str] = ALL) -> tuple[MirrorFollower, Any]:
    """A follower that has connected: (it, the params of the attach it sent)."""
    follower = MirrorFollower("ws://x", "s1", offset=offset, runs=runs)
    step = follower.receive(_hello(caps))
    assert step.error is None
    [frame] = step.send
    request = json.loads(frame)
    assert request["method"] == "session.attach"
    return follower, request["params"]


def _feed(follower: MirrorFollower, *frames: str | bytes) -> list[Step]:
    return [follower.receive(frame) for frame in frames]


def test_attach_asks_for_batches_and_runs_from_where_the_copy_is() -> None:
    """The attach resumes at the copy's server offset and its runs.jsonl size; a
    server without "runs" is not asked for them (an older server: no separators)."""
    _, params = _follower(offset=1234, runs=56)
    assert params == {"session_id": "s1", "offset": 1234, "batch": True, "runs": 56}
    follower, params = _follower(offset=7, caps=["attach", p.BATCH])
    assert params == {"session_id": "s1", "offset": 7, "batch": True}
    assert follower.runs_offered is False


def test_a_server_without_batched_attach_is_refused_plainly() -> None:
    """Upstream (no attach) or a server without batches: an error, never a request."""
    for caps in (["execute", "control", "stream"], ["attach"]):
        step = MirrorFollower("ws://x", "s1", offset=0, runs=0).receive(_hello(caps))
        assert (
            step.send == []
            and step.error == "ws://x cannot copy sessions (it has no batched attach)"
        )


def test_batches_keep_meta_bytes_and_drop_what_a_replay_repeats() -> None:
    """Every byte at its offset with its stream, the server's own newline between two
    runs included (a copy without it would shift every later offset); a replay after
    a reconnect that starts before our offset gives only what is new."""
    follower, _ = _follower(offset=0)
    header = p.encode_batch(0, [("stdout", 3), ("meta", 1), ("stderr", 4)])
    _, step = _feed(follower, header, b"abc\nerr\n")
    assert step.pieces == [
        Output(0, STDOUT, b"abc"),
        Output(3, META, b"\n"),
        Output(4, STDERR, b"err\n"),
    ]
    assert follower.offset == 8
    follower.connecting()
    _, step = _feed(
        follower, p.encode_batch(2, [("stdout", 1), ("meta", 1), ("stderr", 8)]), b"c\nerr\nmore"
    )
    assert step.pieces == [Output(8, STDERR, b"more")]
    assert follower.offset == 12 and step.error is None


def test_a_stated_loss_is_a_gap_with_its_offsets() -> None:
    """`process.output_lost` becomes a Gap from where we are to its end, with the note
    a live client shows; the next batch follows it; a loss we are past is ignored."""
    follower, _ = _follower(offset=6)
    lost = {"offset": 6, "bytes": 100, "reason": "the server's disk is full"}
    [step] = _feed(follower, p.encode_notification(p.LOST_METHOD, lost))
    assert step.pieces == [Gap(6, 100, "the server's disk is full")]
    assert (
        step.pieces[0].note == b"[ccx-tui: 100 bytes of output lost: the server's disk is full]\n"
    )  # type: ignore[union-attr]
    _, step = _feed(follower, p.encode_batch(106, [("stdout", 5)]), b"last\n")
    assert step.pieces == [Output(106, STDOUT, b"last\n")] and follower.offset == 111
    [step] = _feed(follower, p.encode_notification(p.LOST_METHOD, lost))
    assert step.pieces == []


def test_a_batch_past_our_offset_is_a_gap_never_a_silent_skip() -> None:
    """Bytes the server skipped without saying so are stated as lost."""
    follower, _ = _follower(offset=0)
    _, step = _feed(follower, p.encode_batch(10, [("stdout", 2)]), b"x\n")
    assert step.pieces == [Gap(0, 10, "the server did not send it"), Output(10, STDOUT, b"x\n")]


def test_runs_pieces_append_to_what_we_have() -> None:
    """Pieces of runs.jsonl come at their offset; only what follows ours is taken."""
    lines = b'{"start":1}\n{"end":1}\n'
    follower, _ = _follower(runs=12)
    _, step = _feed(follower, p.encode_runs(0, len(lines)), lines)  # overlaps what we have
    assert step.pieces == [Runs(12, b'{"end":1}\n')]
    assert follower.runs == len(lines)
    _, step = _feed(follower, p.encode_runs(0, len(lines)), lines)  # all of it had
    assert step.pieces == [] and follower.runs == len(lines)
    _, step = _feed(follower, p.encode_runs(99, 3), b"{}\n")  # not next to ours
    assert step.pieces == [] and follower.runs == len(lines)


def test_the_end_pings_and_refusals() -> None:
    """A ping is answered, the terminal notification ends the copy, a refused attach
    and a header without its bytes are errors (the loop closes and says why)."""
    follower, _ = _follower()
    [step] = _feed(follower, p.encode_notification("ping", {"timestamp": 1.0}))
    assert step.send == [p.encode_notification("pong", {})]
    [step] = _feed(follower, p.encode_completed(1, 1, 0, 0.1))
    assert step.done
    [step] = _feed(follower, p.encode_error(1, p.INTERNAL, "no session 's1'"))
    assert step.error == "ws://x refused: no session 's1'"
    _, step = _feed(follower, p.encode_batch(0, [("stdout", 1)]), p.encode_notification("ping", {}))
    assert step.error == "ws://x sent a header without its bytes"
    [step] = _feed(follower, b"stray")
    assert step.error == "ws://x sent bytes without a header"
    _, step = _feed(follower, p.encode_batch(0, [("stdout", 3)]), b"ab")
    assert step.error is not None and "2 bytes" in step.error


# -- the resume point -------------------------------------------------------------------


def _copy(directory: Path, *pieces: tuple[int, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    writer = TranscriptWriter(directory)
    for stream, data in pieces:
        writer.write(stream, data)
    writer.close()


def test_without_an_anchor_the_copy_is_the_servers_bytes(tmp_path: Path) -> None:
    """No note in the copy: its length is the server's offset (copies made before
    anchors existed resume as they did)."""
    assert resume_point(tmp_path / "none") == (0, 0)
    _copy(tmp_path, (STDOUT, b"0123456789"))
    assert resume_point(tmp_path) == (10, 10)


def test_past_a_note_the_server_offset_counts_the_lost_bytes(tmp_path: Path) -> None:
    """A copy of 6 bytes, a note of 20 bytes for 1000 lost ones, then 4 more bytes:
    the server's offset is 6 + 1000 + 4, not the copy's 30."""
    _copy(tmp_path, (STDOUT, b"first\n"))
    write_anchor(tmp_path, Anchor(6, 6, 20, 1000))
    _copy(tmp_path, (STDERR, b"n" * 20), (STDOUT, b"more"))
    assert resume_point(tmp_path) == (30, 1010)
    writer, server = open_copy(tmp_path)
    writer.close()
    assert (writer.offset, server) == (30, 1010)


def test_a_note_that_did_not_land_whole_is_cut_and_asked_for_again(tmp_path: Path) -> None:
    """The client died while writing the note: the copy is cut back to where the
    note starts (its stream records too) and resumes at the loss, which the server
    states again."""
    _copy(tmp_path, (STDOUT, b"first\n"))
    write_anchor(tmp_path, Anchor(6, 6, 20, 1000))
    _copy(tmp_path, (STDERR, b"n" * 7))
    assert resume_point(tmp_path) == (6, 6)
    writer, server = open_copy(tmp_path)
    writer.close()
    assert server == 6 and (tmp_path / "transcript.log").read_bytes() == b"first\n"
    assert [s.stream for s in read_segments(tmp_path / SIDECAR_NAME)] == [STDOUT]
    assert (tmp_path / ANCHOR_NAME).exists()  # the note will be written at its place


def test_a_copy_cut_before_its_anchor_starts_over(tmp_path: Path) -> None:
    """Cut below the anchor (by hand): nothing places it, so it is copied anew."""
    _copy(tmp_path, (STDOUT, b"first\n"))
    write_anchor(tmp_path, Anchor(6, 6, 20, 1000))
    (tmp_path / "transcript.log").write_bytes(b"fir")
    writer, server = open_copy(tmp_path)
    writer.close()
    assert (writer.offset, server) == (0, 0)
    assert not (tmp_path / ANCHOR_NAME).exists()
    assert read_segments(tmp_path / SIDECAR_NAME)[0].offset == 0


def test_runs_are_appended_only_at_the_copys_end(tmp_path: Path) -> None:
    """A piece of a server's runs.jsonl lands only where the copy ends, so the copy
    stays an exact prefix of the server's file."""
    assert append_copy(tmp_path, 0, b'{"start":1}\n')
    assert not append_copy(tmp_path, 0, b'{"start":1}\n')
    assert not append_copy(tmp_path, 99, b'{"end":1}\n')
    assert append_copy(tmp_path, 12, b'{"end":1}\n')
    assert (tmp_path / RUNS_NAME).read_bytes() == b'{"start":1}\n{"end":1}\n'
