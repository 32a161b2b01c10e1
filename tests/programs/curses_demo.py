"""A small full-screen program for the tests (issue 12): draws on the alternate
screen with curses, counts `+` presses (and up-arrow presses by ten, which curses
reads in application cursor mode), and leaves on `q`, printing "demo done"."""

from __future__ import annotations

import curses


def main(window: curses.window) -> None:
    curses.curs_set(0)
    height, width = window.getmaxyx()
    window.addstr(0, 0, f"CURSES-DEMO {width}x{height}", curses.A_BOLD)
    if curses.has_colors():
        curses.init_pair(1, curses.COLOR_GREEN, curses.COLOR_BLACK)
        window.addstr(1, 0, "green text", curses.color_pair(1))
    count = 0
    while True:
        window.addstr(3, 0, f"count={count}   ")
        window.refresh()
        key = window.getch()
        if key == ord("q"):
            break
        if key == ord("+"):
            count += 1
        elif key == curses.KEY_UP:
            count += 10


curses.wrapper(main)
print("demo done")
