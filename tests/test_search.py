"""The `/` search core: query compilation, per-line counts equal to grep, growing files."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccx_tui.engine.transcripts import search as search_module
from ccx_tui.engine.transcripts.search import Query, Searcher, compile_query
from ccx_tui.errors import CcxError, SearchError, TranscriptError

GREP = shutil.which("grep")


def reference(query: Query, data: bytes, *, final: bool = True) -> list[int]:
    """The obvious per-line oracle: split on newlines, search each line on its own."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" if the data ends with a newline
    if final and tail:
        lines.append(tail)
    found = []
    for number, line in enumerate(lines):
        if query.bytes_pattern is not None:
            hit = query.bytes_pattern.search(line) is not None
        else:
            hit = query.text_pattern.search(line.decode("utf-8", "surrogateescape")) is not None
        if hit:
            found.append(number)
    return found


def scan_all(path: Path, query: Query, *, block_size: int | None = None, final: bool = True):
    searcher = Searcher(path, query, block_size=block_size)
    searcher.scan(final=final)
    assert searcher.caught_up
    return searcher


def grep_count(path: Path, pattern: str, *, ignore_case: bool) -> int:
    assert GREP is not None
    argv = [GREP, "-c", "-E", *(["-i"] if ignore_case else []), "--", pattern, str(path)]
    out = subprocess.run(argv, capture_output=True, env={"LC_ALL": "C"}, check=False)
    assert out.returncode in (0, 1), out.stderr
    return int(out.stdout)


# -- compile_query ---------------------------------------------------------------------


def test_smart_case_is_insensitive_unless_the_text_has_a_capital() -> None:
    assert not compile_query("error").case_sensitive
    assert compile_query("Error").case_sensitive
    assert not compile_query(r"\S+ \W\d").case_sensitive  # escapes are not capitals
    assert compile_query(r"\S+ X").case_sensitive
    assert compile_query("error", case=True).case_sensitive
    assert not compile_query("Error", case=False).case_sensitive
    assert compile_query("error").matches_line("An ERROR here")
    assert not compile_query("Error").matches_line("An ERROR here")
    assert compile_query("Error", case=False).matches_line("An ERROR here")


def test_invalid_regex_gives_a_short_message_with_the_position() -> None:
    with pytest.raises(SearchError, match=r"^unterminated character set at position 3$"):
        compile_query("ab [cd")
    with pytest.raises(SearchError, match=r"missing \), unterminated subpattern at position 1"):
        compile_query("a(b")
    with pytest.raises(SearchError, match="nothing to repeat at position 0"):
        compile_query("*x")
    with pytest.raises(SearchError, match="empty search"):
        compile_query("")
    assert issubclass(SearchError, CcxError)


def test_literal_mode_escapes_the_text() -> None:
    query = compile_query("a.b [x", regex=False)
    assert query.matches_line("say a.b [x now")
    assert not query.matches_line("say axb [x now")
    assert query.spans("A.B [X and a.b [x") == [(0, 6), (11, 17)]


def test_spans_for_highlighting_skip_empty_matches() -> None:
    assert compile_query("o+").spans("foo bOo") == [(1, 3), (5, 7)]
    assert compile_query("x*").spans("abc") == []
    assert compile_query("^").spans("abc") == []


def test_needles_are_taken_from_the_parsed_pattern() -> None:
    """Every literal a match needs, wherever it stands, becomes a needle set to search
    for (the scan picks the rarest); a case-sensitive literal prefix is left to `re`."""
    assert compile_query("[0-9]+ ERROR").needles == ((b" ERROR",),)
    assert compile_query("ERROR [0-9]+").needles == ()  # re scans for a literal prefix itself
    assert compile_query("error [0-9]+").needles == ((b"error ",),)  # but not ignoring case
    assert compile_query("timeout|refused").needles == ((b"refused", b"timeout"),)
    assert compile_query("Échec").needles == (("Échec".encode(),),)  # spares decoding blocks
    assert compile_query("worker-7 .*theta").needles == ((b"worker-7 ",), (b"theta",))
    assert compile_query("ERROR .*Timeout").needles == ((b"Timeout",), (b"ERROR ",))
    assert compile_query(r"(timeout|refused) after \d+").needles == (
        (b" after ",),  # as long as the others, and one literal: tried first
        (b"refused", b"timeout"),
    )
    assert compile_query(r"caf\xe9").needles == ((b"caf\xe9",),)  # one byte, as re reads it
    query = compile_query("(?i:ABC)def")  # a scoped flag: fold everything
    assert query.folded and query.needles == ((b"abc",), (b"def",))
    assert compile_query("a*|bcd").needles == ()  # `a*` needs no literal at all
    assert compile_query("[0-9]+").needles == ()


def test_scoped_case_flag_is_honoured_by_the_needle_scan(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.write_bytes(b"timeout\ntimEoUt\nTIMEOUT\ntim\n")
    assert scan_all(path, compile_query("tim(?i:EOUT)")).matches.tolist() == [0, 1]


# -- counts equal grep -c --------------------------------------------------------------


def generated_log(rng: random.Random, lines: int) -> bytes:
    words = ["ok", "GET", "/api", "error", "ERROR", "Error", "timeout", "conn", "refused"]
    words += ["abc", "xyz", "a", "b", "42", "123", "o", "oo", "ooo", "", "  "]
    out = []
    for _ in range(lines):
        out.append(" ".join(rng.choice(words) for _ in range(rng.randint(0, 12))))
    return ("\n".join(out) + "\n").encode()


GREP_PATTERNS = [
    "ERROR [0-9]+",
    "error [0-9]+",
    "timeout|refused",
    "error",
    "^abc",
    "xyz$",
    "^$",
    "a.*b",
    "[0-9]{3}",
    "o+",
    "o o",
    "(ok|GET) /api",
    "Error|timeout",
    "[^ ]{9}",
    r"\bERROR\b",
]


@pytest.mark.skipif(GREP is None, reason="grep not installed")
@pytest.mark.parametrize("block_size", [7, 64, 1000, None])
def test_counts_equal_grep_c(tmp_path: Path, block_size: int | None) -> None:
    """Per-line counts match `grep -c -E` (ignoring case when smart case does), also with
    tiny blocks so that lines and matches straddle block boundaries everywhere."""
    path = tmp_path / "log"
    path.write_bytes(generated_log(random.Random(7), 3000))
    for pattern in GREP_PATTERNS:
        query = compile_query(pattern)
        searcher = scan_all(path, query, block_size=block_size)
        expected = grep_count(path, pattern, ignore_case=not query.case_sensitive)
        assert searcher.total == expected, pattern
        assert searcher.matches.tolist() == reference(query, path.read_bytes()), pattern
        assert searcher.lines_scanned == 3000


@pytest.mark.skipif(GREP is None, reason="grep not installed")
def test_unterminated_last_line_counts_like_grep_when_final(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"ERROR 1\nfine\nERROR 2")
    assert scan_all(path, compile_query("ERROR [0-9]+"), final=True).total == 2
    assert grep_count(path, "ERROR [0-9]+", ignore_case=False) == 2
    assert scan_all(path, compile_query("ERROR [0-9]+"), final=False).total == 1


def test_a_line_with_several_matches_counts_once(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"oops oops oops\nnone\noops\n")
    searcher = scan_all(path, compile_query("oops"))
    assert (searcher.total, searcher.matches.tolist()) == (2, [0, 2])


def test_anchors_mean_line_start_and_end(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"start x\nx start\nx end\nend x\nend\n")
    assert scan_all(path, compile_query("^start")).matches.tolist() == [0]
    assert scan_all(path, compile_query("end$")).matches.tolist() == [2, 4]
    assert scan_all(path, compile_query("^end$")).matches.tolist() == [4]
    assert scan_all(path, compile_query("^")).total == 5


@pytest.mark.parametrize("block_size", [3, None])
def test_a_match_running_over_a_newline_does_not_count(tmp_path: Path, block_size) -> None:
    """`\\s`, `[^x]` and `(?s).` can match a newline; a line counts only if it matches on
    its own, as with grep.  Here no single line holds `foo bar`-like text."""
    path = tmp_path / "log"
    path.write_bytes(b"foo\nbar\nxx foo\n  bar\nfoo bar\nq\n")
    for pattern, lines in [
        (r"foo\s+bar", [4]),
        (r"foo[^x]*bar", [4]),
        (r"(?s)foo.*bar", [4]),
        (r"\s", [2, 3, 4]),
        (r"o\s*", [0, 2, 4]),  # runs over the newline, but the line matches by itself
    ]:
        searcher = scan_all(path, compile_query(pattern), block_size=block_size)
        assert searcher.matches.tolist() == lines, pattern


def test_no_phantom_line_after_the_last_newline(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"a\n\nb\n")
    searcher = scan_all(path, compile_query("x*"))
    assert (searcher.total, searcher.lines_scanned) == (3, 3)
    path.write_bytes(b"")
    assert scan_all(path, compile_query("x*")).total == 0


# -- a file that grows, shrinks or is replaced -------------------------------------------


def test_growing_file_scans_only_what_is_new(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"hit 1\nmiss\n")
    searcher = Searcher(path, compile_query("hit"), block_size=4)
    assert searcher.scan() == 1
    assert searcher.scan() == 0
    with open(path, "ab") as f:
        f.write(b"hit 2\nmiss\nhit 3\n")
    assert searcher.scan() == 2
    assert searcher.matches.tolist() == [0, 2, 4]
    assert (searcher.lines_scanned, searcher.scanned_bytes) == (5, path.stat().st_size)


def test_partial_last_line_waits_unless_final_and_counts_once(tmp_path: Path) -> None:
    """A line still being written is searched when complete; a final scan counts it
    provisionally, and once completed it is searched again but counted once."""
    path = tmp_path / "log"
    path.write_bytes(b"hit 1\nhi")
    searcher = Searcher(path, compile_query("hit"))
    assert searcher.scan() == 1
    assert searcher.lines_scanned == 1
    with open(path, "ab") as f:
        f.write(b"t 2")  # "hit 2", no newline yet
    assert searcher.scan() == 0
    assert searcher.scan(final=True) == 1
    assert (searcher.total, searcher.tail_match, searcher.lines_scanned) == (2, 1, 2)
    assert searcher.scan(final=True) == 0  # unchanged tail: not searched again
    with open(path, "ab") as f:
        f.write(b" more\nhit 3\n")
    assert searcher.scan(final=True) == 1
    assert searcher.matches.tolist() == [0, 1, 2]
    assert (searcher.total, searcher.tail_match) == (3, None)


def test_provisional_tail_that_stops_matching_is_withdrawn(tmp_path: Path) -> None:
    """`foo$` matches the partial line "foo"; once it is "foobar" it no longer does."""
    path = tmp_path / "log"
    path.write_bytes(b"foo\nfoo")
    searcher = Searcher(path, compile_query("foo$"))
    assert searcher.scan(final=True) == 2
    held = searcher.matches
    with open(path, "ab") as f:
        f.write(b"bar\n")
    assert searcher.scan(final=True) == -1
    assert searcher.matches.tolist() == [0]
    assert held.tolist() == [0, 1]  # a reader's old reference is never changed under it


def test_truncated_file_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"hit\nhit\nhit\n")
    searcher = Searcher(path, compile_query("hit"))
    assert searcher.scan() == 3
    path.write_bytes(b"hit\n")
    assert searcher.scan() == 1
    assert (searcher.generation, searcher.total, searcher.matches.tolist()) == (1, 1, [0])


def test_replaced_file_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"hit\nhit\n")
    searcher = Searcher(path, compile_query("hit"))
    searcher.scan()
    new = tmp_path / "new"
    new.write_bytes(b"miss\nmiss\nhit\n")  # bigger: only the inode tells
    os.replace(new, path)
    assert searcher.scan() == 1
    assert (searcher.generation, searcher.matches.tolist()) == (1, [2])


def test_missing_file_raises_transcript_error(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="cannot open"):
        Searcher(tmp_path / "nope", compile_query("x")).scan()


# -- bytes that are not text, lines that do not end --------------------------------------


def test_invalid_utf8_is_searched_raw_and_highlighted_replaced(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"ok \xff\xfe ERROR 7\n\xc3(\ncaf\xc3\xa9 \xff\n")
    assert scan_all(path, compile_query("ERROR [0-9]")).matches.tolist() == [0]
    query = compile_query("café")  # non-ASCII: the text scan
    assert query.bytes_pattern is None
    assert scan_all(path, query).matches.tolist() == [2]
    shown = b"caf\xc3\xa9 \xff".decode("utf-8", errors="replace")
    assert query.spans(shown) == [(0, 4)]


def test_non_ascii_patterns_have_text_semantics(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes("éé\nè\nÉCOLE\nabc\n".encode())
    assert scan_all(path, compile_query("^é+$")).matches.tolist() == [0]
    assert scan_all(path, compile_query("[éè]")).matches.tolist() == [0, 1, 2]
    assert scan_all(path, compile_query("école")).matches.tolist() == [2]
    assert scan_all(path, compile_query("école", case=True)).matches.tolist() == []


def test_long_line_without_newline_is_read_linearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long line written in many pieces is read about once, not once per scan (which
    would be quadratic), and searched as a whole when complete or final."""
    read = [0]
    real_preadv = os.preadv

    def counting_preadv(fd: int, buffers: list[bytearray | memoryview], offset: int) -> int:
        n = real_preadv(fd, buffers, offset)
        read[0] += n
        return n

    monkeypatch.setattr(search_module.os, "preadv", counting_preadv)
    path = tmp_path / "log"
    path.write_bytes(b"first\n")
    searcher = Searcher(path, compile_query("needle"), block_size=4096)
    searcher.scan()
    piece = b"x" * 10_000
    with open(path, "ab") as f:
        for _ in range(100):  # a 1 MB line, scanned after every piece
            f.write(piece)
            f.flush()
            searcher.scan(max_bytes=8192)
        f.write(b"needle")
        f.flush()
        while not searcher.caught_up:
            searcher.scan(max_bytes=8192)
        assert searcher.total == 0
        assert searcher.scan(final=True) == 1
        f.write(b"\nnext needle\n")
    assert searcher.scan(final=True) == 1
    assert searcher.matches.tolist() == [1, 2]
    size = path.stat().st_size
    assert read[0] < 4 * size, f"read {read[0]} bytes of a {size}-byte file"


def test_a_line_beyond_the_long_line_limit_is_searched_in_its_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented caveat: only the first LONG_LINE_LIMIT bytes of a line count."""
    monkeypatch.setattr(search_module, "LONG_LINE_LIMIT", 1000)
    path = tmp_path / "log"
    path.write_bytes(b"a" * 500 + b"early" + b"a" * 2000 + b"late\n")
    assert scan_all(path, compile_query("early"), block_size=100).total == 1
    assert scan_all(path, compile_query("late"), block_size=100).total == 0


# -- stepping, navigation, the cap, threads --------------------------------------------


def test_scan_in_steps_equals_one_scan(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(generated_log(random.Random(3), 2000))
    query = compile_query("timeout|refused")
    whole = scan_all(path, query)
    stepped = Searcher(path, query, block_size=500)
    steps = 0
    while True:
        stepped.scan(max_bytes=1000)
        steps += 1
        if stepped.caught_up:
            break
        assert 0 < stepped.scanned_bytes < path.stat().st_size
    assert steps > 10
    assert stepped.matches == whole.matches and stepped.total == whole.total


def test_next_previous_and_index_of(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"".join(b"hit\n" if i in (2, 5, 9) else b"miss\n" for i in range(12)))
    searcher = scan_all(path, compile_query("hit"))
    assert [searcher.next_match(n) for n in (0, 2, 5, 9)] == [2, 5, 9, None]
    assert [searcher.previous_match(n) for n in (11, 9, 2)] == [9, 5, None]
    assert [searcher.index_of(n) for n in (2, 5, 9, 3)] == [0, 1, 2, None]
    assert (searcher.match_at(1), searcher.match_lines(1, 10), searcher.kept) == (5, [5, 9], 3)
    with pytest.raises(IndexError):
        searcher.match_at(3)


def test_kept_line_numbers_are_capped_but_total_keeps_counting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_module, "MAX_KEPT", 5)
    path = tmp_path / "log"
    path.write_bytes(b"hit\n" * 12)
    searcher = scan_all(path, compile_query("hit"), block_size=16)
    assert (searcher.total, searcher.capped, searcher.matches.tolist()) == (
        12,
        True,
        [0, 1, 2, 3, 4],
    )
    assert searcher.next_match(4) is None


def test_results_can_be_read_while_a_thread_scans(tmp_path: Path) -> None:
    """The UI reads `matches` (bisect, len, index) while a worker appends to it."""
    path = tmp_path / "log"
    path.write_bytes(b"".join(b"hit %d\n" % i if i % 3 == 0 else b"miss\n" for i in range(30000)))
    searcher = Searcher(path, compile_query("hit"), block_size=256)
    worker = threading.Thread(target=searcher.scan)
    worker.start()
    seen = 0
    while worker.is_alive() or seen < searcher.total:
        matches = searcher.matches
        count = len(matches)
        if count:
            last = matches[count - 1]
            assert last % 3 == 0 and searcher.index_of(last) == count - 1
            assert searcher.previous_match(last) == (last - 3 if last else None)
        seen = count
    worker.join()
    assert searcher.total == 10000 == len(searcher.matches)


# -- property: any content, any block size, same lines as the oracle ---------------------

PROPERTY_PATTERNS = [
    "ab",
    "a|b",
    "^a",
    "b$",
    "^$",
    "a.b",
    r"a\sb",
    "[^a]b",
    "(?s)a.*b",
    "x*",
    "ERR",
    "err",
    "é",
    "[éa]b",
    r"\bab\b",
    "(?i:AB)c",
    "abc|cab",
    "ERR|Rab",
    "a ERR",
    "éab",
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.lists(
        st.lists(
            st.sampled_from(
                [b"a", b"b", b"c", b" ", b"\n", b"\n", b"E", b"R", b"r", b"\xc3\xa9", b"\xff"]
            ),
            max_size=40,
        ).map(b"".join),
        min_size=1,
        max_size=4,
    ),
    pattern=st.sampled_from(PROPERTY_PATTERNS),
    block_size=st.integers(1, 48),
    step=st.one_of(st.none(), st.integers(1, 64)),
    final=st.booleans(),
)
def test_matches_equal_a_per_line_oracle(
    tmp_path: Path,
    chunks: list[bytes],
    pattern: str,
    block_size: int,
    step: int | None,
    final: bool,
) -> None:
    """Whatever the content, block size and step, scanning a file as it is appended to
    (chunk by chunk) finds exactly the lines the obvious per-line search finds."""
    query = compile_query(pattern)
    path = tmp_path / "prop.log"
    path.write_bytes(b"")
    searcher = Searcher(path, query, block_size=block_size)
    data = b""
    for chunk in chunks:
        data += chunk
        with open(path, "ab") as f:
            f.write(chunk)
        searcher.scan(max_bytes=step, final=final)
        while not searcher.caught_up:
            searcher.scan(max_bytes=step, final=final)
        expected = reference(query, data, final=final)
        assert searcher.matches.tolist() == expected
        assert searcher.total == len(expected)
        assert searcher.lines_scanned == data.count(b"\n") + (
            final and not data.endswith(b"\n") and bool(data)
        )


def test_line_end_anchors_match_crlf_lines_of_terminal_sessions(tmp_path: Path) -> None:
    """A terminal session's lines end in CRLF: `ok$` matches them as it matches LF
    lines; a `$` escaped or inside a class stays a dollar sign."""
    path = tmp_path / "t.log"
    path.write_bytes(b"all ok\r\nnot ok!\r\nok\n$ price\r\ncost [$]\r\n")
    assert matched(path, compile_query("ok$")) == [0, 2]
    assert matched(path, compile_query("^ok$")) == [2]
    assert matched(path, compile_query(r"^\$")) == [3]
    assert matched(path, compile_query("[$]]$")) == [4]
    assert matched(path, compile_query("ok$", regex=False)) == []


def matched(path: Path, query: Query) -> list[int]:
    searcher = scan_all(path, query)
    return searcher.match_lines(0, searcher.lines_scanned)
