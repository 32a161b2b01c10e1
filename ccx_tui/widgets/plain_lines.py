"""A widget's lines as Textual's styles pipeline draws them, for a widget with nothing
around its content (no border, padding, outline, tint or transparency).

Textual keeps each widget's styled lines by row on screen, and a view that scrolls
(a followed session scrolls at every frame) finds none of them kept: every line goes
through the whole pipeline again, and comes out as a new Strip each frame, so nothing
cached on the strips (the colour filter, the compositor's cuts) is found either.  For
such a widget the pipeline only pads the line to the content's width and applies the
app's filters; done here on the line itself, a line drawn before (the view keeps its
rendered lines) keeps its strips, and their caches, from frame to frame.  The result
is the same as Textual's (a test compares them in every mode of the view); Textual is
pinned exactly, so the pipeline followed here cannot change under us.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget


def plain_lines(widget: Widget, crop: Region, line: Callable[[int], Strip]) -> list[Strip] | None:
    """The lines of `crop` (widget coordinates), each made by `line(y)`, styled as
    Textual's `Widget.render_lines` would; None if the widget's styles need Textual's
    whole pipeline (see the module)."""
    styles = widget.styles
    width = widget.region.width
    if (
        widget.BLANK
        or any(edge for edge, _ in styles.border)
        or any(edge for edge, _ in styles.outline)
        or any(styles.padding)
        or widget.content_region.width != width
        or styles.tint.a
        or widget.opacity != 1.0
        or styles.text_opacity != 1.0
        or (styles.has_rule("hatch") and styles.hatch != "none")
        or widget._border_title is not None
        or widget._border_subtitle is not None
    ):
        return None
    if widget.auto_links:  # Textual restyles a hovered `@click` link: not here
        hover = widget.hover_style
        if hover._link_id and hover._meta and "@click" in hover.meta:
            return None
    base_background, background = widget.background_colors
    inner, _ = widget._styles_cache.get_inner_outer(base_background, background)
    pad = inner.rich_style
    filters = widget.get_line_filters()
    strips: list[Strip] = []
    for y in crop.line_range:
        strip = line(y).adjust_cell_length(width, pad)
        for line_filter in filters:
            strip = strip.apply_filter(line_filter, background)
        strips.append(strip)
    if crop.column_span != (0, width):
        x1, x2 = crop.column_span
        strips = [strip.crop(x1, x2) for strip in strips]
    return strips
