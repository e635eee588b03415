"""The one switch between the C and the Python implementation in `policies`.

`pseudonyms` is the extension (policies/_pseudonym.c, compiled by setup.py where a C
compiler is found; docs/decisions/0007-native-pseudonyms.md) or None, and `masks` its string
masks. `policies.compiled` and `policies.pseudonyms` read both when a request is compiled, so
setting `pseudonyms` to None (tests, benches) gives the pure-Python path everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from policies.masks import MASKS

try:
    from policies import _pseudonym as pseudonyms
except ImportError:  # pragma: no cover - depends on the install
    pseudonyms = None


# The string masks have native twins in the same extension (`Mask`): a column of 1000 values
# costs ~0.03-0.09 ms instead of the Python functions' ~0.25-1.1 ms, which is mostly the call
# from Python per value and the slicing (bench.pseudonym_speed). Each twin computes the same
# slices as its Python mask for exact str and calls that mask for anything else (ints, dates,
# str subclasses), so the text rules stay in policies/masks.py. `year_only` and `bucket` stay
# Python: they are rare and not plain slicing. Built once at import and immutable, so safe to
# share between requests and threads.
def native_masks(module: ModuleType | Any | None) -> dict[str, Callable[[Any], Any]]:
    make = getattr(module, "mask", None)  # also None for a stale build from before the masks
    if make is None:
        return {}
    return {name: make(name, fn) for name, fn in MASKS.items() if name.startswith("mask_")}


masks = native_masks(pseudonyms)
