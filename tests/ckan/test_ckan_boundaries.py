"""ckan/ is a domain package: loading every module of it loads no `gateway` (nor the
portal), directly or through what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_ckan_modules_load_no_gateway():
    modules = sorted(p.stem for p in (ROOT / "ckan").glob("*.py") if p.stem != "__init__")
    assert modules == ["actions", "envelope", "views"]
    loads = "; ".join(f"import ckan.{m}" for m in modules)
    check = "print(sorted({m.split('.')[0] for m in sys.modules} & {'gateway', 'portal'}))"
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {loads}; {check}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
