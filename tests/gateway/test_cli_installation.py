"""Every `opengate` command knows its installation (contract §1, §9): run as a real
subprocess from an empty folder, or with a database URL that is wrong, it answers with one
line and a non-zero exit — never a traceback, never a new database — unless it is one of
the commands that create an installation. The commands are read from the app itself, so a
new command is walked too."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import typer

from gateway.cli import app
from tests.packages import write_package

OPENGATE = [sys.executable, "-m", "gateway.cli"]
# The only commands that may create an installation where there is none.
CREATORS = {("migrate",), ("demo",)}
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("OPENGATE_")}


def leaf_commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[Any]:
    command = command or typer.main.get_command(app)
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in sorted(subcommands.items()):
        yield from leaf_commands(sub, (*path, name))


def arguments(path: tuple[str, ...], command: Any, inputs: Path) -> tuple[list[str], str]:
    """A plausible command line for every required parameter (so that the command gets as
    far as the installation), and its standard input."""
    args, stdin = list(path), ""
    for param in command.params:
        flag = next((o for o in param.opts if o.startswith("--")), "")
        if flag.endswith("-stdin"):  # e.g. --password-stdin: give it something to read
            args.append(flag)
            stdin = "some-input-1234\n"
        if not param.required:
            continue
        if param.name == "path":
            value = str(write_package(inputs / "pkg"))
        elif getattr(param, "bare_type", None) is Path:
            value = str(inputs / f"{param.name}.out")
        elif param.name == "before":
            value = "2020-01-01"
        elif param.name == "role":
            value = "developer"
        else:
            value = "someone"
        args += [flag, value] if param.param_type_name == "option" else [value]
    if path == ("demo",):
        args.append("--no-serve")
    return args, stdin


COMMANDS = list(leaf_commands())

SCENARIOS = {
    "empty folder": {},
    "unreachable postgresql": {"OPENGATE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/og"},
    "missing sqlite file": {"OPENGATE_DATABASE_URL": "sqlite:///{tmp}/nothing-here/og.db"},
    "garbage url": {"OPENGATE_DATABASE_URL": "not a database url"},
}


def run_in_empty_folder(
    path: tuple[str, ...], command: Any, tmp: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp / "-".join(path)
    folder.mkdir()
    inputs = tmp / "inputs" / "-".join(path)
    inputs.mkdir(parents=True)
    args, stdin = arguments(path, command, inputs)
    environment = {**CLEAN_ENV, **{k: v.format(tmp=folder) for k, v in env.items()}}
    result = subprocess.run(
        OPENGATE + args,
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=folder,
        timeout=120,
    )
    return result, folder


def test_the_walk_covers_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"migrate", "serve", "demo", "datasets import", "audit public-key"} <= names
    assert len(names) >= 18


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_command_answers_in_one_line(scenario: str, tmp_path: Path):
    env = SCENARIOS[scenario]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(
            pool.map(lambda pc: (pc[0], *run_in_empty_folder(*pc, tmp_path, env)), COMMANDS)
        )
    problems = []
    for path, result, folder in runs:
        name = " ".join(path)
        if "Traceback" in result.stderr + result.stdout:
            problems.append(f"{name}: traceback\n{result.stderr[-800:]}")
            continue
        creates = path in CREATORS and scenario in ("empty folder", "missing sqlite file")
        if creates:
            if result.returncode != 0:
                problems.append(f"{name}: should work, got {result.returncode}: {result.stderr}")
            continue
        lines = result.stderr.strip().splitlines()
        if result.returncode == 0 or len(lines) != 1 or not lines[0].startswith("opengate: "):
            problems.append(f"{name}: exit {result.returncode}, stderr {result.stderr!r}")
        if result.stdout.strip():
            problems.append(f"{name}: printed {result.stdout[:200]!r} while refusing")
        # Nothing was created: no ./var, no key, no SQLite file or its folder.
        if left := sorted(p.name for p in folder.iterdir()):
            problems.append(f"{name}: left {left} in the folder")
    assert not problems, "\n".join(problems)


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        OPENGATE + args,
        capture_output=True,
        text=True,
        env={**CLEAN_ENV, **env},
        cwd=cwd,
        timeout=120,
    )


def test_a_named_installation_is_announced_once_it_worked(tmp_path: Path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    url = f"sqlite:///{home}/og.db"
    made = cli(["migrate"], elsewhere, OPENGATE_DATABASE_URL=url, OPENGATE_DATA_DIR=str(home))
    assert made.returncode == 0, made.stderr
    # The data dir stays the default; the ring's master key is named (contract §9).
    checked = cli(
        ["audit", "verify"],
        elsewhere,
        OPENGATE_DATABASE_URL=url,
        OPENGATE_MASTER_KEY_FILE=str(home / "master.key"),
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: ")
    assert checked.stderr.splitlines() == [
        f"opengate: installation: database {url}, data dir {elsewhere}/var "
        "(OPENGATE_DATABASE_URL from the environment)"
    ]
    # The same from a `.env` of the folder the command runs in.
    (elsewhere / ".env").write_text(f"OPENGATE_DATABASE_URL={url}\nOPENGATE_DATA_DIR={home}\n")
    from_file = cli(["audit", "public-key"], elsewhere)
    assert from_file.returncode == 0, from_file.stderr
    assert "BEGIN PUBLIC KEY" in from_file.stdout
    assert f"database {url}, data dir {home} " in from_file.stderr
    assert "from the .env" in from_file.stderr
    # A refusal stays one line, naming the installation it could not use.
    refused = cli(["users", "token", "nobody"], elsewhere)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == ["opengate: no active user 'nobody'"]


def test_the_default_installation_is_silent_and_another_folder_has_none(tmp_path: Path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    assert cli(["migrate"], home).returncode == 0
    key = cli(["audit", "public-key"], home)
    assert key.returncode == 0 and key.stderr == ""
    # From another folder the default names a database that is not there: refused, and
    # no second installation (or key) appears.
    other = cli(["audit", "public-key"], elsewhere)
    assert other.returncode == 1
    assert other.stderr.startswith(f"opengate: no installation at {elsewhere}/var/opengate.db")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("OPENGATE_DB_POOL_SIZE", "0", "OPENGATE_DB_POOL_SIZE"),
        ("OPENGATE_AUDIT_SINK", "nowhere", "OPENGATE_AUDIT_SINK"),
        ("OPENGATE_DATABASE_URL", "mysql://a@b/c", "unsupported database 'mysql'"),
        ("OPENGATE_DATABASE_URL", "sqlite://", "in-memory"),
    ],
)
def test_a_bad_setting_is_one_line(tmp_path: Path, variable: str, value: str, needle: str):
    result = cli(["audit", "verify"], tmp_path, **{variable: value})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_every_command_refuses_a_mistyped_command_line_in_one_line(tmp_path: Path):
    def mistyped(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        return cli([*path, "--no-such-option"], tmp_path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(COMMANDS, pool.map(mistyped, (p for p, _ in COMMANDS)), strict=True))
    for (path, _), result in results.items():
        name = " ".join(path)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.splitlines() == [
            f"opengate: {name}: No such option: --no-such-option (see `opengate {name} --help`)"
        ], result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_empty_database_is_refused_and_left_empty(database_url: str, tmp_path: Path):
    """A database that exists but was never migrated (an empty SQLite file, a new
    PostgreSQL database): every command but the creators refuses and creates no table."""
    import sqlalchemy as sa

    from gateway.settings import Settings

    url = Settings(database_url=database_url).sqlalchemy_url
    if url.startswith("sqlite"):
        Path(sa.engine.make_url(url).database or "").touch()
    env = {"OPENGATE_DATABASE_URL": database_url, "OPENGATE_DATA_DIR": str(tmp_path / "var")}
    others = [(path, command) for path, command in COMMANDS if path not in CREATORS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda pc: (pc[0], *run_in_empty_folder(*pc, tmp_path, env)), others))
    for path, result, _ in runs:
        lines = result.stderr.splitlines()
        assert result.returncode == 1 and len(lines) == 1, (path, result.stderr)
        # these read no database: they refuse their missing file
        if path not in {("audit", "verify-bundle"), ("audit", "verify-proof")}:
            assert "run `opengate migrate` first" in lines[0], (path, lines)
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
