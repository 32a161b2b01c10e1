"""Output is data: no escape sequence of a transcript reaches the terminal but colours
and plain-URL hyperlinks (textsafe.terminal_tokens and the view's line renderer)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.segment import Segment
from textual.strip import Strip

from ccx_tui.textsafe import Link, Sgr, escape_controls, safe_url, terminal_tokens
from ccx_tui.widgets.ansi import line_text

CONSOLE = Console(color_system="truecolor", force_terminal=True, width=200, legacy_windows=False)
# What Textual writes for a styled segment: SGR, and OSC 8 around a link's text.
OURS = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;(?:id=[^;\x1b]*)?;([^\x1b]*)\x1b\\")
UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def segments(data: bytes) -> list[Segment]:
    return list(line_text(data).render(CONSOLE))


def terminal_output(data: bytes) -> str:
    """Exactly what the app writes to the terminal for this line (Textual's Strip)."""
    return Strip(segments(data)).render(CONSOLE)


def assert_safe(data: bytes) -> None:
    """Only our SGR and OSC 8 sequences (with plain URLs) reach the terminal; the text
    holds no ESC, C0 (but tab) or C1 control; every link is a plain URL."""
    for seg in segments(data):
        assert not UNSAFE.search(seg.text), (data, seg)
        link = seg.style.link if seg.style else None
        assert link is None or safe_url(link) == link, (data, link)
    output = terminal_output(data)
    for match in OURS.finditer(output):
        assert match.group(1) in ("", None) or safe_url(match.group(1)), (data, match)
    rest = OURS.sub("", output)
    assert not UNSAFE.search(rest), (data, rest)


def links(data: bytes) -> list[tuple[str, str | None]]:
    return [(seg.text, seg.style.link if seg.style else None) for seg in segments(data) if seg.text]


TITLE = b"\x1b]2;pwned\x07"
CLIPBOARD = b"\x1b]52;c;cHduZWQ=\x07"

HOSTILE = {
    "osc 0 title, BEL": (b"a\x1b]0;pwned\x07b", "ab"),
    "osc 2 title, ST": (b"a\x1b]2;pwned\x1b\\b", "ab"),
    "osc 52 clipboard": (b"a" + CLIPBOARD + b"b", "ab"),
    "osc 8 with ESC in its URL": (
        b"\x1b]8;;http://x.example/" + TITLE + b"\x1b\\click\x1b]8;;\x1b\\",
        "click",
    ),
    "osc 8 with osc 52 in its URL": (
        b"\x1b]8;;http://x/" + CLIPBOARD + b"\x1b\\click\x1b]8;;\x1b\\",
        "click",
    ),
    "dcs": (b"a\x1bP1$qm\x1b\\b", "ab"),
    # ESC ESC inside it aborts the DCS; the second ESC starts nothing and shows.
    "dcs tmux passthrough": (b"a\x1bPtmux;\x1b\x1b]2;pwned\x07\x1b\\b", "a\u241bb"),
    "apc": (b"a\x1b_Gf=100;AAAA\x1b\\b", "ab"),
    "pm": (b"a\x1b^private\x1b\\b", "ab"),
    "sos": (b"a\x1bXstring\x1b\\b", "ab"),
    "8-bit csi": ("a\x9b2Jb".encode(), "ab"),
    "8-bit osc, 8-bit ST": ("a\x9d2;pwned\x9cb".encode(), "ab"),
    "8-bit osc, BEL": ("a\x9d52;c;cHduZWQ=\x07b".encode(), "ab"),
    "8-bit dcs apc pm sos": ("a\x90x\x9cb\x9fy\x9cc\x9ez\x9cd\x98w\x9ce".encode(), "abcde"),
    "unterminated osc": (b"a\x1b]2;pwned", "a"),
    "unterminated csi": (b"a\x1b[12", "a"),
    "unterminated dcs": (b"a\x1bPqpwned", "a"),
    "csi not sgr": (b"a\x1b[2J\x1b[H\x1b[?1049h\x1b[6n\x1b[>c\x1b[1;1'zb", "ab"),
    "two-character escapes": (b"a\x1bc\x1b7\x1b8\x1bM\x1b=\x1b(0\x1b#8b", "ab"),
    "C1 other than introducers": ("a\x85b\x84c".encode(), "a\ufffdb\ufffdc"),
    "C0 controls": (b"a\x00b\x0ec\x7fd", "a\u2400b\u240ec\u2421d"),
    "CAN aborts a string": (b"a\x1b]2;pwn\x18ed", "aed"),
    "ESC aborts a string": (b"a\x1b]2;pwn\x1b[31med", "aed"),
    "lone ESC at the end": (b"a\x1b", "a\u241b"),
}


@pytest.mark.parametrize("data,shown", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_sequences_are_dropped_and_their_text_kept(data: bytes, shown: str) -> None:
    assert line_text(data).plain == shown
    assert_safe(data)


def test_colours_and_plain_links_survive() -> None:
    data = b"\x1b[1;31mred\x1b[0m \x1b]8;id=7;https://example.com/a?b=c;d\x1b\\site\x1b]8;;\x07 x"
    assert line_text(data).plain == "red site x"
    [red, _space, site, rest] = [seg for seg in segments(data) if seg.text]
    assert red.style is not None and red.style.bold and red.style.color is not None
    assert red.style.color.number == 1
    assert site.style is not None and site.style.link == "https://example.com/a?b=c;d"
    assert rest.style is None or rest.style.link is None
    assert "\x1b]8;id=" in terminal_output(data)  # Textual does write the link
    assert_safe(data)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "http://a b",  # a space
        "http://é.example/",  # not ASCII: say it as punycode/percent-encoded
        "http://x/" + "a" * 5000,
        "ssh://host",
        "//no-scheme",
    ],
    ids=lambda url: url[:30],
)
def test_links_to_anything_but_a_plain_url_are_dropped(url: str) -> None:
    data = b"\x1b]8;;" + url.encode() + b"\x1b\\text\x1b]8;;\x1b\\"
    assert all(link is None for _text, link in links(data)), links(data)
    assert "text" in line_text(data).plain
    assert_safe(data)


@pytest.mark.parametrize("url", ["http://a", "HTTPS://b/c", "ftp://f", "file:///etc", "mailto:x@y"])
def test_plain_urls_are_links(url: str) -> None:
    assert safe_url(url) == url
    data = b"\x1b]8;;" + url.encode() + b"\x07text\x1b]8;;\x07"
    assert ("text", url) in links(data)


def test_a_sequence_split_across_lines_leaks_from_neither() -> None:
    """Lines are rendered one at a time: the rest of a sequence cut by a newline shows
    as text on the next line (Rich drops its BEL)."""
    first, second = b"a\x1b]8;;http://x/\x1b]2;pw", b"ned\x07\x1b\\b\x1b]8;;\x1b\\"
    assert line_text(first).plain == "a"
    assert line_text(second).plain == "nedb"
    assert_safe(first)
    assert_safe(second)


def test_tokens() -> None:
    assert list(terminal_tokens("x\x1b[1;2mY\x1b]8;;http://a\x07z\x1b]8;;\x1b\\")) == [
        "x",
        Sgr("1;2"),
        "Y",
        Link("http://a"),
        "z",
        Link(None),
    ]


# Lines of output made of what hostile output is made of: sequences (an introducer, a
# payload of any pieces, a terminator or none) mixed with single pieces and text.
PIECES = st.sampled_from(
    [
        b"\x1b]8;;", b"\x1b]8;id=1;", b"http://x/", b"\x1b]2;", b"\x1b]52;c;", b"\x1b\\",
        b"\x07", b"\x1b[", b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX", b"\x1b", b"[", b"]",
        b"\\", b";", b"8", b"m", b"31", b"?", b"(", b"\xc2\x9b", b"\xc2\x9c", b"\xc2\x9d",
        b"\xc2\x90", b"\xc2\x85", b"\x9b", b"\x9d", b"\xff", b"\x18", b"\x1a", b"\r", b"\t",
        b"\x00", b"a", b"\xe2\x82\xac",
    ]
)  # fmt: skip
INTRODUCERS = st.sampled_from(
    [b"\x1b]8;;", b"\x1b]8;;http://x/", b"\x1b]2;", b"\x1b]52;c;", b"\x1b[", b"\x1bP",
     b"\x1b_", b"\x1b^", b"\x1bX", b"\xc2\x9b", b"\xc2\x9d", b"\xc2\x90", b"\x1b"]
)  # fmt: skip
TERMINATORS = st.sampled_from([b"\x1b\\", b"\x07", b"\xc2\x9c", b"m", b"", b"\x18"])
SEQUENCES = st.tuples(INTRODUCERS, st.lists(PIECES, max_size=4).map(b"".join), TERMINATORS)
HOSTILE_LINES = st.lists(
    st.one_of(SEQUENCES.map(b"".join), PIECES, st.just(b"text")), max_size=12
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(HOSTILE_LINES)
def test_no_control_reaches_the_terminal_from_hostile_pieces(data: bytes) -> None:
    assert_safe(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_no_control_reaches_the_terminal_from_random_bytes(data: bytes) -> None:
    assert_safe(data.replace(b"\n", b""))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_escape_controls_leaves_no_control(text: str) -> None:
    escaped = escape_controls(text)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", escaped)
    printable = "".join(ch for ch in text if not re.match(r"[\x00-\x1f\x7f-\x9f]", ch))
    assert "".join(ch for ch in escaped if ord(ch) > 0x7F) == "".join(
        ch for ch in printable if ord(ch) > 0x7F
    )  # other Unicode unchanged


def test_escape_controls_examples() -> None:
    assert escape_controls("a\x1b]2;x\x07\nb\u009b é") == "a\\x1b]2;x\\x07\\nb\\x9b é"
