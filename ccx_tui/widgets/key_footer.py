"""The footer of keys, redrawn only when the keys it shows change."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

Signature = tuple[tuple[str, str, str, bool, str], ...]


class KeyFooter(Footer):
    """Textual's Footer, recomposed only when the keys it would show change.

    Textual's rebuilds its keys on every focus change, and a tab switch moves the focus
    from one transcript view to another with exactly the same keys: with 100 sessions
    under load that rebuild took a fifth of the app's CPU while switching tabs.  Working
    out the keys shown (twice per switch, a tenth of the switch's CPU) is done after the
    switch's frame.
    """

    _shown: Signature | None = None
    _pending: Screen[object] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        # Checked once the frame is drawn (Textual recomposes then too), so a switch's
        # frame does not wait for it; the calls before that share one check.
        if self._pending is None:
            self.call_after_refresh(self._check)
        self._pending = screen

    def _check(self) -> None:
        screen, self._pending = self._pending, None
        if screen is None:
            return
        # Only when Textual's would recompose (else the keys shown are not these).
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            shown = _signature(screen)
            if shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)


def _signature(screen: Screen[object]) -> Signature:
    return tuple(
        (binding.key, binding.action, binding.description, enabled, tooltip)
        for _node, binding, enabled, tooltip in screen.active_bindings.values()
    )
