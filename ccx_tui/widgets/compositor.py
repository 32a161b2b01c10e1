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
divided only if a place on it is.  The result is the same frame (tests compare what
reaches the terminal); Textual is pinned exactly, so the methods replaced here cannot
change under us.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from textual._compositor import ChopsUpdate, Compositor, ReflowResult
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget


class SparseCompositor(Compositor):
    """A Compositor whose chops skip what is covered or not updated."""

    # While a partial update is drawn: line -> the (start, end) columns to update on it.
    _spans: dict[int, list[tuple[int, int]]] | None = None

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

    def _render_chops(
        self,
        crop: Region,
        is_rendered_line: Callable[[int], bool],
    ) -> Sequence[Mapping[int, Strip]]:
        # Textual 8.2.8's `Compositor._render_chops` with its `_get_renders` inlined,
        # the `covered` tests added, and only the lines wanted rendered.
        cuts = self.cuts
        fromkeys = cast("Callable[[list[int]], dict[int, Strip | None]]", dict.fromkeys)
        chops: list[dict[int, Strip | None]] = [fromkeys(cut_set[:-1]) for cut_set in cuts]

        crop_x, crop_end = crop.column_span
        spans = self._spans
        crop_spans = [(crop_x, crop_end)]

        def covered(y: int, first_cut: int, last_cut: int) -> list[int] | None:
            """The cuts of line `y` between the two, or None if every place between
            them is taken by a widget drawn before, or is not sent to the terminal
            (outside the crop; in a partial update, outside the line's spans: a
            place is sent if it meets one)."""
            line_cuts = [cut for cut in cuts[y] if last_cut >= cut >= first_cut]
            if len(line_cuts) > 1:
                get = chops[y].get
                sent = crop_spans if spans is None else spans.get(y, ())
                if all(
                    get(cut) is not None or not any(cut < x2 and end > x1 for x1, x2 in sent)
                    for cut, end in zip(line_cuts, line_cuts[1:], strict=False)
                ):
                    return None
            return line_cuts

        crop_overlaps = crop.overlaps
        for widget, (region, clip) in self.visible_widgets.items():
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
            lines = [y for y in render_region.line_range if is_rendered_line(y)]
            wanted = {y: c for y in lines if (c := covered(y, first_cut, last_cut)) is not None}
            if not wanted:
                continue  # behind what is drawn already, on every line to draw
            # Only the lines from the first to the last one wanted (a widget's lines
            # not drawn now stay due in its own cache).
            top = next(iter(wanted))
            bottom = max(wanted) + 1
            strips = widget.render_lines(
                Region(
                    render_region.x - region.x, top - region.y, render_region.width, bottom - top
                )
            )
            render_x = render_region.x
            cut_strips: Iterable[Strip]
            for y, strip in zip(range(top, bottom), strips, strict=False):
                final_cuts = wanted.get(y)
                if final_cuts is None:
                    continue
                chops_line = chops[y]
                cut_strips = strip.divide([cut - render_x for cut in final_cuts[1:]])
                # Front to back: the first piece for a place wins.
                for cut, piece in zip(final_cuts, cut_strips, strict=False):
                    if chops_line.get(cut) is None:
                        chops_line[cut] = piece
        return cast("Sequence[Mapping[int, Strip]]", chops)
