"""A report may quote the value it says is wrong. When that value is a level-3/4 value of
the record reported on, it is stored as its keyed digest — the way audit events keep filter
values (audit.events.keyed_digest): an administrator can still tell two reports quote the
same value and check a candidate value, but nobody reads it back from the table."""

from __future__ import annotations

from collections.abc import Callable, Iterable

# Shorter values would match everyday text ("男", "是"); such values are not identifying.
MIN_QUOTED = 2


def hide_quoted(
    message: str, values: Iterable[str], digest: Callable[[str], str]
) -> tuple[str, bool]:
    """`message` with every occurrence of any of `values` replaced by `[已隐去 <digest>]`;
    longest first, so a value that contains another is hidden whole."""
    hidden = False
    for value in sorted({v for v in values if len(v) >= MIN_QUOTED}, key=len, reverse=True):
        if value in message:
            message = message.replace(value, f"[已隐去 {digest(value)}]")
            hidden = True
    return message, hidden
