"""Tab titles say what a command runs, not how the shell line starts (issue 13)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.engine.sessions.titles import MAX_TITLE, command_title


@pytest.mark.parametrize(
    ("command", "title"),
    [
        ("npm run dev", "npm run dev"),
        ("cd web && PORT=3 npm start", "npm start"),
        ("for i in $(seq 5); do curl -s x; done", "curl -s x (loop)"),
        ("while true; do date; sleep 1; done", "date (loop)"),
        ("python3 -c 'print(1)\nimport time'", "python3 -c …"),
        ("/usr/bin/make -j4 test", "make -j4 test"),
        ("sudo -u bob env A=1 ./run.sh --fast", "run.sh --fast"),
        ("timeout 30 pytest -x", "pytest -x"),
        ("set -e; ./build.sh", "build.sh"),
        ("trap '' TERM; echo up; sleep 100", "echo up"),
        ("(cd x; make)", "make"),
        ("for i in $(seq 9); do if [ $i -eq 3 ]; then echo three; fi; done", "echo three (loop)"),
        ("sleep 1000", "sleep 1000"),
        ('x="unclosed', 'x="unclosed'),
        ("", "?"),
    ],
)
def test_titles(command: str, title: str) -> None:
    assert command_title(command) == title


def test_a_name_wins_and_long_titles_are_cut() -> None:
    assert SessionSpec("npm run dev", name="web").title == "web"
    long = command_title("averyveryverylongprogramname --with --options")
    assert len(long) == MAX_TITLE and long.endswith("…")


@given(st.text(max_size=200))
def test_any_command_line_gets_a_short_title(command: str) -> None:
    title = command_title(command)
    assert 0 < len(title) <= MAX_TITLE
    assert "\n" not in title


def test_a_sleep_is_named_before_setup() -> None:
    assert command_title("cd / && exec sleep 200") == "sleep 200"
    assert command_title("sleep 1; make") == "make"
