"""The search's fast paths (needle sets, folding, exact literals, newline counts) against
a naive per-line `re.search`, over generated files and many generated patterns."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from ccx_tui.engine.transcripts import search as search_module
from ccx_tui.engine.transcripts.literals import rarest, required_literals
from ccx_tui.engine.transcripts.search import Searcher, compile_query, crlf_line_ends

WORDS = [
    "worker-7", "Worker-7", "WORKER-7", "worker-3", "theta", "Theta", "THETA", "alpha",
    "ERROR", "error", "Error", "timeout", "TimeOut", "refused", "connection", "after",
    "42", "503", "7", "ok", "GET", "/api/v1", "café", "CAFÉ", "Café", "naïve", "日本",
    "\t", "", "x", "ab", "abc",
]  # fmt: skip
RAW_BITS = [b"\xff", b"\xe9", b"\xc3", b"\r", b"caf\xe9", b"\xc3\xa9"]  # invalid UTF-8, CR

FIXED_PATTERNS = [
    "ERROR [0-9]+",  # case-sensitive literal prefix: re's own scan
    "error [0-9]+",  # folded literal prefix
    "[0-9]+ ERROR",  # inner literal
    "worker-7 .*theta",  # two required literals, no usable prefix, folded
    "Worker-7 .*theta",  # the same, case-sensitive
    "worker-7.*(theta|alpha)",
    "timeout|refused",  # an alternation of literals: exact, folded
    "(timeout|refused) after",
    "TimeOut|refused",
    "theta$",  # CRLF line ends
    "^worker",
    r"\bab\b",
    "abc|ab",
    "(?i:THETA) alpha",
    "(?-i:theta)",
    "thet(?i:A)",
    "café",  # non-ASCII: text semantics
    "Café",
    "CAFÉ|naïve",
    r"caf\xe9",  # one byte 0xE9 in a bytes pattern
    "caf.",
    "é+",
    "日本",
    r"worker-(?:3|7) \S+",
    "(?:error){2,}",
    "err(?=or)",
    "a\\s+b",
    "x|",  # matches everything
    "theta(?!x)",
    "(?>worker)-7",
    "wor++ker",
    "[Ee]rror",
]


def random_line(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(0, 10)):
        if rng.random() < 0.08:
            parts.append(rng.choice(RAW_BITS))
        else:
            parts.append(rng.choice(WORDS).encode())
    line = b" ".join(parts)
    if rng.random() < 0.01:  # longer than the blocks
        line = line * 60
    if rng.random() < 0.2:
        line += b"\r"
    return line


def random_file(rng: random.Random, lines: int) -> bytes:
    data = b"\n".join(random_line(rng) for _ in range(lines))
    return data + (b"\n" if rng.random() < 0.7 else b"")


def random_pattern(rng: random.Random) -> str:
    """A regex made of literals (random case, some non-ASCII) and common constructs."""

    def literal() -> str:
        word = rng.choice([w for w in WORDS if w.strip()])
        word = rng.choice([word, word.lower(), word.upper(), word.capitalize()])
        return re.escape(word) if rng.random() < 0.5 else word.replace("/", r"\/")

    def atom() -> str:
        roll = rng.random()
        if roll < 0.45:
            return literal()
        if roll < 0.6:
            options = [literal() for _ in range(rng.randint(2, 3))]
            if rng.random() < 0.3:  # an alternative without a literal: none required
                options.append(rng.choice(["[0-9]+", ".", r"\s", ""]))
            return "(" + "|".join(options) + ")"
        if roll < 0.7:  # optional: its literals are not required
            return "(?:" + literal() + ")" + rng.choice(["?", "*", "{0,2}", "+"])
        return rng.choice([".*", " ", r"\s+", "[0-9]+", r"\S*", ".", "-?", r"\b", " .*?"])

    pattern = "".join(atom() for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.1:
        pattern = "^" + pattern
    if rng.random() < 0.1:
        pattern += "$"
    return pattern


def naive(pattern: str, case: bool | None, regex: bool, data: bytes) -> list[int]:
    """Per-line `re.search`, compiled here without the module's fast-path machinery:
    ASCII patterns on raw bytes (ASCII folding), others on the decoded line."""
    source = crlf_line_ends(pattern) if regex else re.escape(pattern)
    if case is None:
        case = any(c.isupper() for c in (re.sub(r"\\.", "", pattern) if regex else pattern))
    flags = re.MULTILINE | (0 if case else re.IGNORECASE)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    rx_bytes: re.Pattern[bytes] | None = None
    if source.isascii():
        try:
            rx_bytes = re.compile(source.encode(), flags)
        except re.error:
            pass
    rx_text = re.compile(source, flags)
    found = []
    for number, line in enumerate(lines):
        if rx_bytes is not None:
            hit = rx_bytes.search(line) is not None
        else:
            hit = rx_text.search(line.decode("utf-8", "surrogateescape")) is not None
        if hit:
            found.append(number)
    return found


def check(path: Path, data: bytes, pattern: str, case: bool | None, regex: bool, block: int):
    query = compile_query(pattern, case=case, regex=regex)
    searcher = Searcher(path, query, block_size=block)
    searcher.scan(final=True)
    expected = naive(pattern, case, regex, data)
    label = f"{pattern!r} case={case} regex={regex} block={block} needles={query.needles}"
    assert searcher.matches.tolist() == expected, label
    assert searcher.total == len(expected), label
    lines = data.split(b"\n")
    assert searcher.lines_scanned == len(lines) - (lines[-1] == b""), label
    # Each needle set is required: every matching line holds one of its literals.
    for number in expected:
        line = lines[number].lower() if query.folded else lines[number]
        for needles in query.needles:
            assert any(n in line for n in needles), (label, lines[number])


@pytest.mark.parametrize("seed", range(12))
def test_fast_paths_equal_a_naive_per_line_search(tmp_path: Path, seed: int) -> None:
    """Generated files (CRLF, invalid UTF-8, non-ASCII, lines longer than a block) and
    patterns (literal prefixes, inner literals, alternations, case variants, scoped
    flags, non-ASCII, plain text): the scan finds exactly the lines a per-line
    `re.search` finds, whatever the block size and whichever needle set it picks."""
    rng = random.Random(seed)
    data = random_file(rng, rng.randint(200, 1500))
    path = tmp_path / "f.log"
    path.write_bytes(data)
    patterns = [*FIXED_PATTERNS, *(random_pattern(rng) for _ in range(40))]
    for pattern in patterns:
        if seed % 3 == 0 and pattern not in FIXED_PATTERNS:
            pattern = pattern.replace("\\", "")  # plain text, as typed
            regex = False
        else:
            regex = True
        case = rng.choice([None, None, True, False])
        block = rng.choice([64, 1000, 4096, 65536, search_module.BLOCK_SIZE])
        check(path, data, pattern, case, regex, block)


def test_a_rare_set_is_picked_and_counts_stay_right(tmp_path: Path) -> None:
    """`worker-7 .*theta` over lines that all name worker-7: the scan searches for the
    rarer `theta` (not the first set) and still numbers every line right, over many
    blocks with long stretches between hits (the memchr newline count)."""
    lines = [b"2026 worker-7 alpha %d" % i for i in range(20000)]
    for i in (5, 777, 12345, 19999):
        lines[i] += b" THETA"
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "f.log"
    path.write_bytes(data)
    query = compile_query("worker-7 .*theta")
    assert query.needles == ((b"worker-7 ",), (b"theta",))
    assert rarest(data.lower(), len(data), query.needles) == (b"theta",)
    for block in (4096, 65536, None):
        searcher = Searcher(path, query, block_size=block)
        searcher.scan(final=True)
        assert searcher.matches.tolist() == [5, 777, 12345, 19999]
        assert searcher.lines_scanned == 20000


def test_newline_count_equals_count_for_any_line_length() -> None:
    """The memchr-based count (long stretches) and `count` (short lines) agree."""
    rng = random.Random(3)
    for width in (0, 1, 5, 40, 200, 5000):
        data = b"".join(b"y" * rng.randint(0, width) + b"\n" for _ in range(3000))
        for start, stop in [(0, len(data)), (7, len(data) - 3), (100, 9000)]:
            want = data.count(b"\n", start, stop)
            assert search_module._newlines(data, start, stop, b"\n") == want


def test_exact_only_for_patterns_that_are_just_literals() -> None:
    """A needle hit skips the regex check only when the pattern is nothing else."""
    assert compile_query("timeout|refused").exact
    assert compile_query("(timeout|refused)").exact
    assert compile_query("a.b [x", regex=False).exact
    assert not compile_query("timeout|refused$").exact
    assert not compile_query("(?i:abc)").exact  # scoped flag
    assert not compile_query("timeout|ab").exact  # `ab` is too short to be a needle
    assert not compile_query("café").exact  # text semantics: the regex decides
    assert not required_literals("abc(?=d)", re.MULTILINE, raw=True).exact
