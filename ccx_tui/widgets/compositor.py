"""Textual's compositor, without cutting up what is hidden behind other widgets.

To draw a frame, Textual's compositor takes every widget that overlaps the area to
update, front to back, and divides each line of it at every widget edge on that
line; the first piece for a place wins, the rest are thrown away.  The containers
behind a session's output (the screen, the body, the tabs, the pane, the panel:
seven of them) are each cut up line by line only to be thrown away: with a tab
switch, about half of the frame's time.  Here a widget's line is divided only if
some place on it is still free.  The result is the same frame (tests compare the
two); Textual is pinned exactly, so the method replaced here cannot change under us.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip


class SparseCompositor(Compositor):
    """A Compositor whose chops skip the lines of a widget that is covered there."""

    def _render_chops(
        self,
        crop: Region,
        is_rendered_line: Callable[[int], bool],
    ) -> Sequence[Mapping[int, Strip]]:
        # Textual 8.2.8's `Compositor._render_chops`, with the `covered` test added.
        cuts = self.cuts
        fromkeys = cast("Callable[[list[int]], dict[int, Strip | None]]", dict.fromkeys)
        chops: list[dict[int, Strip | None]] = [fromkeys(cut_set[:-1]) for cut_set in cuts]
        cut_strips: Iterable[Strip]
        renders = self._get_renders(crop)
        intersection = Region.intersection
        for region, clip, strips in renders:
            render_region = intersection(region, clip)
            render_x = render_region.x
            first_cut, last_cut = render_region.column_span
            for y, strip in zip(render_region.line_range, strips, strict=False):
                if not is_rendered_line(y):
                    continue
                chops_line = chops[y]
                final_cuts = [cut for cut in cuts[y] if last_cut >= cut >= first_cut]
                get_chops_line = chops_line.get
                # Every place this line of the widget would fill is taken already
                # (it is behind the widgets drawn before it): nothing to cut up.
                if len(final_cuts) > 1 and all(
                    get_chops_line(cut) is not None for cut in final_cuts[:-1]
                ):
                    continue
                cut_strips = strip.divide([cut - render_x for cut in final_cuts[1:]])
                # Front to back: the first piece for a place wins.
                for cut, piece in zip(final_cuts, cut_strips, strict=False):
                    if get_chops_line(cut) is None:
                        chops_line[cut] = piece
        return cast("Sequence[Mapping[int, Strip]]", chops)
