"""The one error of the key ring: its message is the single line a host prints when it
refuses to start (it names the variable or command that fixes it)."""

from __future__ import annotations


class KeyRingError(Exception):
    """The master key or the ring cannot be used; nothing was written."""
