"""services/ is a domain package: it never imports `gateway` (nor the portal or operation),
so the lead's routes can be built on it and not the other way round."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("gateway", "portal", "operation")


def test_no_module_imports_the_gateway():
    found = []
    for path in sorted((ROOT / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert found == []
    assert len(list((ROOT / "services").glob("*.py"))) >= 6  # the scan saw the modules


def test_importing_every_module_loads_no_gateway():
    modules = sorted(p.stem for p in (ROOT / "services").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import services.{m}\n" for m in modules)
        + f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORBIDDEN)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
