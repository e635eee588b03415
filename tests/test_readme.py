"""The README's examples run as shown (issue 13, finding 6).

A `console` block the README marks with `<!-- readme: runs -->` on the line before it needs
no token: this test serves the demo with `make run PORT=… HOST=…` (its database in a
temporary folder), then runs every `$ ` command of those blocks in order, in one folder
(`.venv` linked into it, so `.venv/bin/opengate` resolves), against that server. Each must
exit 0 — or non-zero when it ends in `# fails` — and print what the README shows: the same
status line for `HTTP/1.1 …`, otherwise the same first line up to its first digit, comma or
ellipsis (ids, counts and times differ from run to run)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- readme: runs -->"
BLOCK = re.compile(re.escape(MARK) + r"\n```console\n(.*?)```", re.S)


@dataclass
class Example:
    command: str
    output: list[str]

    @property
    def fails(self) -> bool:
        return self.command.rstrip().endswith("# fails")


def examples(readme: str) -> list[Example]:
    found: list[Example] = []
    for block in BLOCK.findall(readme):
        continued = False
        for line in block.splitlines():
            if continued:
                found[-1].command += "\n" + line
            elif line.startswith("$ "):
                found.append(Example(line[2:], []))
            elif line.strip() and found:
                found[-1].output.append(line)
            continued = line.endswith("\\")
    return found


def expected_start(line: str) -> str:
    return re.split(r"[0-9,…]", line, maxsplit=1)[0]


README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLES = examples(README)


def test_the_readme_marks_enough_examples():
    assert len(BLOCK.findall(README)) >= 6
    commands = " ".join(e.command for e in EXAMPLES)
    for needed in ("/auth/login", ".venv/bin/opengate audit verify", "format=csv"):
        assert needed in commands
    # Marked blocks need no token (those that do are shown, not run).
    assert not re.search(r"\$[A-Z_]+", commands)
    # The CLI is shown where `make install` puts it, not bare.
    assert not re.search(r"^\$ opengate ", README, re.M)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], int]]:
    folder = tmp_path_factory.mktemp("readme")
    (folder / ".venv").symlink_to(ROOT / ".venv")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPENGATE_")},
        "OPENGATE_DATABASE_URL": f"sqlite:///{folder}/var/opengate.db",
        "OPENGATE_DATA_DIR": str(folder / "var"),
    }
    log = (folder / "make-run.log").open("wb")
    server = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}", "HOST=127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: make and the gateway it started stop together
    )
    try:
        deadline = time.monotonic() + 300  # `make run` imports the whole demo catalog first
        while True:
            assert server.poll() is None, (folder / "make-run.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "make run did not serve"
            time.sleep(0.5)
        yield folder, env, port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


@pytest.mark.slow
def test_make_run_serves_on_the_port_given(demo: tuple[Path, dict[str, str], int]):
    folder, _, port = demo
    printed = (folder / "make-run.log").read_text()
    assert f"--port {port}" in printed
    assert f"opengate demo is ready at http://127.0.0.1:{port}" in printed
    assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200


@pytest.mark.slow
def test_every_marked_example_runs_as_shown(demo: tuple[Path, dict[str, str], int]):
    folder, env, port = demo
    problems = []
    for example in EXAMPLES:
        command = example.command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        first = (result.stdout + result.stderr).lstrip("\ufeff").splitlines()
        actual = first[0] if first else ""
        if (result.returncode != 0) != example.fails:
            problems.append(f"{example.command}: exit {result.returncode}\n{result.stderr}")
        if not example.output:
            continue
        shown = example.output[0]
        if shown.startswith("HTTP/1.1 "):
            if actual.split()[:2] != shown.split()[:2]:
                problems.append(f"{example.command}: {actual!r}, README shows {shown!r}")
        elif not actual.startswith(expected_start(shown)):
            problems.append(f"{example.command}: {actual!r}, README shows {shown!r}")
    assert not problems, "\n".join(problems)
