"""The one switch between the C and the Python implementation in `audit`.

`chain` is the extension (audit/_chain.c, compiled by setup.py where a C compiler is found;
docs/decisions/0008) or None. The writer's chain link and the verifier's walk read it per
call, so setting it to None (tests, benches) gives their pure-Python paths; the per-value
helpers `in_domain` and `copy_line` are bound from it once at import, since they run for
every event, and their Python twins stay callable as `canonical._in_domain` and
`store._copy_line`.
"""

from __future__ import annotations

try:
    from audit import _chain as chain
except ImportError:  # pragma: no cover - depends on the install
    chain = None
