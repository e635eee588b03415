"""The optional C extensions in tests: skip where they are not built, unless CI says they
must be (OPENGATE_REQUIRE_NATIVE=1, set by .ci/run), so a broken build cannot pass green
on the pure-Python fallback alone."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

REQUIRE_NATIVE = os.environ.get("OPENGATE_REQUIRE_NATIVE") == "1"


def native_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # say why: not built, or built for another Python
        reason = f"{name} is not built ({exc}); `make install` builds it"
        if REQUIRE_NATIVE:
            pytest.fail(f"OPENGATE_REQUIRE_NATIVE=1 but {reason}")
        pytest.skip(reason)
