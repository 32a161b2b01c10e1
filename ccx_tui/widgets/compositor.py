"""Textual's compositor, without drawing or cutting up what is hidden behind other
widgets or outside the areas to update, nor laying the screen out twice.

To draw a frame, Textual's compositor takes every widget that overlaps the box around
all the areas to update, front to back, renders its lines and divides each line at
every widget edge on that line; the first piece for a place wins, the rest are thrown
away, and only the pieces that meet an area to update are sent to the terminal.  The
containers behind a session's output (the screen, the body, the tabs, the pane, the
panel: seven of them) were each rendered, then cut up line by line, only to be thrown
away: with a tab switch, over half of the frame's time.  And the box is large: a tab
switch updates the output on the left and two rows of the sidebar on the right, and
the box around them is the whole screen, so every line of the sidebar, its scrollbar
and its rows was drawn for two rows (a fifth of a switch's drawing).

Here a widget is rendered only if some place on one of its lines is still free and
meets an area to update, only over the lines where one does, and a line of it is
divided only if a place on it is.  And a scroll right after a layout (a tab switch
scrolls the sidebar to the session's row) repaints what moved, not the whole screen.
The result is the same frame (tests compare what reaches the terminal); Textual is
pinned exactly, so the methods replaced here cannot change under us.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from textual._compositor import ChopsUpdate, Compositor, CompositorMap, ReflowResult
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget


class SparseCompositor(Compositor):
    """A Compositor whose chops skip what is covered or not updated."""

    # While a partial update is drawn: line -> the (start, end) columns to update on it.
    _spans: dict[int, list[tuple[int, int]]] | None = None
    # The map the last frame was drawn from (see `reflow_visible`).
    _drawn_map: CompositorMap | None = None

    def render_partial_update(self) -> ChopsUpdate | None:
        # Textual 8.2.8's, but the chops are told which places are sent (the spans),
        # not only the box around them.
        update_regions = self._dirty_regions.copy()
        self._dirty_regions.clear()
        if not update_regions:
            return None
        crop = Region.from_union(update_regions).intersection(self.size.region)
        spans = list(self._regions_to_spans(update_regions))
        wanted: dict[int, list[tuple[int, int]]] = {}
        for y, x1, x2 in spans:
            wanted.setdefault(y, []).append((x1, x2))
        self._spans = wanted
        try:
            chops = self._render_chops(crop, wanted.__contains__)
        finally:
            self._spans = None
        chop_ends = [cut_set[1:] for cut_set in self.cuts]
        return ChopsUpdate(chops, spans, chop_ends)

    def reflow(self, parent: Widget, size: Size) -> ReflowResult:
        # Textual's reflow lays out every widget, shown or not (`visible_only=False`):
        # the full map, new.  But a widget refreshed before it was on screen (the tab
        # switched to: its view, focused) marked the full map out of date before the
        # reflow, and the reflow leaves that mark: the first look-up after it (a
        # widget's region) laid the whole screen out again, a fifth of a switch's
        # layout time.
        result = super().reflow(parent, size)
        self._full_map_invalidated = False
        return result

    def reflow_visible(self, parent: Widget, size: Size) -> set[Widget]:
        # Textual's lays out what is in view (after a scroll) and repaints what moved,
        # appeared or went since the last such layout; after a full reflow there is
        # none, so it compared with nothing and repainted the whole screen (after a
        # tab switch, whose new view or the sidebar scrolls: one switch in five drew
        # every widget).  Compared with the map the screen was last drawn from, it
        # repaints what changed since.
        if self._visible_map is None and self._drawn_map is not None and size == self.size:
            self._visible_map = self._drawn_map
        return super().reflow_visible(parent, size)

    def _render_chops(
        self,
        crop: Region,
        is_rendered_line: Callable[[int], bool],
    ) -> Sequence[Mapping[int, Strip]]:
        # Textual 8.2.8's `Compositor._render_chops` with its `_get_renders` inlined, a
        # widget drawn only on lines where some place it covers is still free and sent,
        # and only the lines from the first to the last such line rendered.
        self._drawn_map = self._visible_map if self._visible_map is not None else self._full_map
        cuts = self.cuts
        fromkeys = cast("Callable[[list[int]], dict[int, Strip | None]]", dict.fromkeys)
        chops: list[dict[int, Strip | None]] = [fromkeys(cut_set[:-1]) for cut_set in cuts]
        free = self._free_spans(crop, is_rendered_line)

        crop_overlaps = crop.overlaps
        for widget, (region, clip) in self.visible_widgets.items():
            if not free:
                break  # every place sent is drawn
            if not crop_overlaps(clip):
                continue
            render_region = region.intersection(clip)
            if not crop_overlaps(render_region):
                continue  # all of it outside the crop: Textual renders it for nothing
            if not (render_region.width and render_region.height) and not clip.contains_region(
                region
            ):
                continue  # as Textual: a widget clipped away entirely is not rendered
            first_cut, last_cut = render_region.column_span
            wanted = _wanted_lines(free, render_region, is_rendered_line)
            if not wanted:
                continue  # behind what is drawn already, on every line to draw
            # Only the lines from the first to the last one wanted (a widget's lines
            # not drawn now stay due in its own cache).
            top, bottom = wanted[0], wanted[-1] + 1
            strips = widget.render_lines(
                Region(
                    render_region.x - region.x, top - region.y, render_region.width, bottom - top
                )
            )
            render_x = render_region.x
            cut_strips: Iterable[Strip]
            for y in wanted:
                strip = strips[y - top] if y - top < len(strips) else None
                if strip is None:
                    continue
                line_cuts = cuts[y]
                final_cuts = line_cuts[
                    bisect_left(line_cuts, first_cut) : bisect_right(line_cuts, last_cut)
                ]
                chops_line = chops[y]
                cut_strips = strip.divide([cut - render_x for cut in final_cuts[1:]])
                # Front to back: the first piece for a place wins.
                for cut, piece in zip(final_cuts, cut_strips, strict=False):
                    if chops_line.get(cut) is None:
                        chops_line[cut] = piece
                _take(free, y, first_cut, last_cut)
        return cast("Sequence[Mapping[int, Strip]]", chops)

    def _free_spans(
        self, crop: Region, is_rendered_line: Callable[[int], bool]
    ) -> dict[int, list[tuple[int, int]]]:
        """Line -> the columns on it still to draw: those sent to the terminal (in a
        partial update the line's spans, else the crop), less what widgets drawn so far
        took.  A widget's edges are cuts, so what it takes is whole places: a place is
        still to draw exactly when it meets a free span."""
        crop_x, crop_end = crop.column_span
        spans = self._spans
        free: dict[int, list[tuple[int, int]]] = {}
        for y in crop.line_range:
            if not is_rendered_line(y):
                continue
            sent = [(crop_x, crop_end)] if spans is None else spans.get(y, ())
            line = [(max(a, crop_x), min(b, crop_end)) for a, b in sent]
            line = [(a, b) for a, b in line if a < b]
            if line:
                free[y] = line
        return free


def _wanted_lines(
    free: Mapping[int, list[tuple[int, int]]],
    render_region: Region,
    is_rendered_line: Callable[[int], bool],
) -> list[int]:
    """The lines of `render_region` it must be drawn on: those where a free span
    meets it (a zero-width widget, as Textual: every line drawn)."""
    first_cut, last_cut = render_region.column_span
    if first_cut == last_cut:
        return [y for y in render_region.line_range if is_rendered_line(y)]
    top, bottom = render_region.line_span
    lines = range(top, bottom) if bottom - top <= len(free) else sorted(free)
    return [
        y
        for y in lines
        if top <= y < bottom
        and (line := free.get(y))
        and any(a < last_cut and b > first_cut for a, b in line)
    ]


def _take(free: dict[int, list[tuple[int, int]]], y: int, start: int, end: int) -> None:
    """Columns `start` to `end` of line `y` are drawn: no longer free."""
    line = free.get(y)
    if line is None or start >= end:
        return
    rest: list[tuple[int, int]] = []
    for a, b in line:
        if b <= start or a >= end:
            rest.append((a, b))
            continue
        if a < start:
            rest.append((a, start))
        if b > end:
            rest.append((end, b))
    if rest:
        free[y] = rest
    else:
        del free[y]
