"""Textual's compositor, without drawing or cutting up what is hidden behind other
widgets, nor laying the screen out twice.

To draw a frame, Textual's compositor takes every widget that overlaps the area to
update, front to back, renders its lines and divides each line at every widget edge
on that line; the first piece for a place wins, the rest are thrown away.  The
containers behind a session's output (the screen, the body, the tabs, the pane, the
panel: seven of them) were each rendered, then cut up line by line, only to be thrown
away: with a tab switch, over half of the frame's time.  Here a widget is rendered
only if some place on one of its lines to draw is still free inside the area to
update (what is outside it is not sent to the terminal: the sidebar was drawn with
every frame of the followed output beside it), and a line of it is divided only if
a place on that line is.  The result is the same frame (tests compare
the two); Textual is pinned exactly, so the method replaced here cannot change under
us.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from textual._compositor import Compositor, ReflowResult
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget


class SparseCompositor(Compositor):
    """A Compositor whose chops skip what is covered."""

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
        # and the two `covered` tests added.
        cuts = self.cuts
        fromkeys = cast("Callable[[list[int]], dict[int, Strip | None]]", dict.fromkeys)
        chops: list[dict[int, Strip | None]] = [fromkeys(cut_set[:-1]) for cut_set in cuts]

        crop_x, crop_end = crop.column_span

        def covered(y: int, first_cut: int, last_cut: int) -> list[int] | None:
            """The cuts of line `y` between the two, or None if a widget drawn
            before took every place between them inside the crop already (what is
            outside it is not sent to the terminal)."""
            line_cuts = [cut for cut in cuts[y] if last_cut >= cut >= first_cut]
            if len(line_cuts) > 1:
                get = chops[y].get
                if all(
                    get(cut) is not None or cut >= crop_end or end <= crop_x
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
            strips = widget.render_lines(
                Region(
                    render_region.x - region.x,
                    render_region.y - region.y,
                    render_region.width,
                    render_region.height,
                )
            )
            render_x = render_region.x
            cut_strips: Iterable[Strip]
            for y, strip in zip(render_region.line_range, strips, strict=False):
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
