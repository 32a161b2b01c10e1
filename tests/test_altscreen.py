"""AltScreenTracker: the engine finds where a terminal program enters and leaves the
alternate screen, however the output is cut into chunks (issue 12)."""

from __future__ import annotations

import random

from ccx_tui.engine.sessions.altscreen import AltScreenTracker

ENTER, LEAVE = b"\x1b[?1049h", b"\x1b[?1049l"


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[int | None]:
    tracker = AltScreenTracker()
    states = []
    pos = 0
    for cut in [*cuts, len(data)]:
        tracker.feed(pos, data[pos:cut])
        pos = cut
        states.append(tracker.active_at)
    return states


def test_enter_and_leave_at_their_offsets() -> None:
    tracker = AltScreenTracker()
    assert tracker.feed(0, b"hello\r\n" + ENTER + b"screen") is True
    assert tracker.active_at == 7 + len(ENTER)
    assert tracker.feed(100, b"more") is False
    assert tracker.feed(104, b"x" + LEAVE + b"back") is True
    assert tracker.active_at is None


def test_the_older_modes_and_combined_parameters_count_others_do_not() -> None:
    for seq in (b"\x1b[?47h", b"\x1b[?1047h", b"\x1b[?1;1049h", b"\x1b[?1049;25h"):
        tracker = AltScreenTracker()
        assert tracker.feed(0, seq), seq
    for seq in (b"\x1b[?25h", b"\x1b[?10490h", b"\x1b[1049h", b"\x1b[?2004h", b"\x1b[?12h"):
        tracker = AltScreenTracker()
        assert not tracker.feed(0, seq), seq


def test_a_sequence_split_across_chunks_is_found_at_every_cut() -> None:
    data = b"abc" + ENTER + b"def" + LEAVE + b"ghi" + ENTER + b"end"
    expected_at = len(data) - 3
    for cut in range(len(data) + 1):
        tracker = AltScreenTracker()
        tracker.feed(0, data[:cut])
        tracker.feed(cut, data[cut:])
        assert tracker.active_at == expected_at, cut


def test_random_chunking_agrees_with_one_chunk() -> None:
    rng = random.Random(3)
    parts = [
        rng.choice([ENTER, LEAVE, b"\x1b[?25l", b"\x1b[", b"text\r\n", b"\x1b"]) for _ in range(400)
    ]
    data = b"".join(parts)
    whole = AltScreenTracker()
    whole.feed(0, data)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(data)), 30))
        assert feed_in_pieces(data, cuts)[-1] == whole.active_at


def test_application_cursor_keys_count_as_a_full_screen_program() -> None:
    """top draws on the normal screen but sends smkx (`CSI ? 1 h`) first and rmkx
    (`CSI ? 1 l`) at the end: a full-screen program all the same."""
    tracker = AltScreenTracker()
    assert tracker.feed(0, b"$ top\r\n\x1b[?1h\x1b=\x1b[H\x1b[2Jtop - 12:00") is True
    assert tracker.active_at == 7 + len(b"\x1b[?1h")
    assert tracker.feed(100, b"\x1b[?1h\x1b=again") is False  # a redraw: same start
    assert tracker.feed(200, b"\x1b[?1049h") is False  # both on: the earlier start
    assert tracker.feed(300, b"\x1b[?1049l") is False  # still in keypad mode
    assert tracker.feed(400, b"\x1b[?1l\x1b>done\r\n") is True
    assert tracker.active_at is None
