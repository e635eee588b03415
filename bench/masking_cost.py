"""What masking costs on the records endpoint: 1000 rows with five transformed fields against
the same request with every field clear.

    python -m bench.masking_cost [--rows 20000] [--seconds 8] [--rounds 3] [--only postgres]

One gateway (1 worker; SQLite, or PostgreSQL with `--only postgres`) serves two conditional
datasets holding the same rows in the same columns, each read by its own app through a direct
grant:

- `bench-masked`: person_name (level 3, name), phone (3, phone) and address (3, address)
  keep their level-3 defaults mask_name, mask_phone and mask_address; id_number (4,
  id_number) and email (4, email) their level-4 default pseudonym (an HMAC per value). Five
  transformed fields beside six clear level 1–2 fields.
- `bench-clear`: the same columns with id_number and email at level 3 instead of 4, and the
  grant sets all five personal fields to `clear`. A level-4 field can never be granted
  clear (就高从严), so the "every field clear" baseline needs this second dataset; both go
  through the same grant lookup, plan and serialisation, and only the masking differs.

wrk (-t1 -c16) loads `/records?limit=1000` of each in alternating rounds; medians are
compared. Bar: masked ≥ 0.85 × clear requests/s, measured in one run. A run with any non-2xx
answer is reported INVALID: an error answer is cheaper than 1000 rows, so errors inflate
whichever side has more of them.

The package generator and the gateway setup (users, apps, grants, tokens) live here and are
shared with bench.masked_export and bench.aggregate_cost.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import DISTRICTS, OUT, PYTHON, SURNAMES, free_port, postgres_database, server
from bench.wrk import WrkResult, median, require_wrk, run_wrk

CLI = [PYTHON, "-m", "gateway.cli"]
BAR = 0.85

# The five personal fields and their classification in the masked dataset.
PERSONAL = {
    "person_name": (3, "name"),
    "id_number": (4, "id_number"),
    "phone": (3, "phone"),
    "email": (4, "email"),
    "address": (3, "address"),
}
COLUMNS = [
    ("record_id", "integer"),
    ("person_name", "string"),
    ("id_number", "string"),
    ("phone", "string"),
    ("email", "string"),
    ("address", "string"),
    ("district", "string"),
    ("employer", "string"),
    ("monthly_base", "integer"),
    ("months_paid", "integer"),
    ("last_paid_month", "date"),
]
LEVEL = {"employer": 2, "monthly_base": 2}  # every other non-personal field is level 1
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"
ROADS = ["香港中路", "山东路", "辽阳西路", "黑龙江中路", "长江中路", "正阳路", "烟台前路"]
MAIL_DOMAINS = ["example.com", "qq.com", "163.com", "126.com", "sina.com"]


def _data_file(rows: int) -> Path:
    """One CSV of `rows` people, shared (hard-linked) by every package made from it."""
    path = OUT / f"bench-classified-data-{rows}.csv"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([name for name, _ in COLUMNS])
        for i in range(1, rows + 1):
            given = GIVEN[i % len(GIVEN)] + (GIVEN[(i * 7) % len(GIVEN)] if i % 3 else "")
            district = DISTRICTS[i % 8]
            writer.writerow(
                [
                    i,
                    SURNAMES[i % 20] + given,
                    f"3702{i % 90 + 10:02d}{1950 + i % 50}{i % 12 + 1:02d}{i % 28 + 1:02d}"
                    f"{i % 1000:03d}{'X' if i % 11 == 0 else i % 10}",
                    f"1{3 + i % 7}{(i * 7919) % 10**9:09d}",
                    f"user{i}@{MAIL_DOMAINS[i % 5]}",
                    f"青岛市{district}{ROADS[i % 7]}{i % 200 + 1}号",
                    district,
                    f"青岛第{i % 500}制造有限公司",
                    4000 + (i * 37) % 26000,
                    i % 240,
                    f"2024-{i % 12 + 1:02d}-01",
                ]
            )
    partial.rename(path)
    return path


def classified_package(rows: int, name: str, *, all_clearable: bool = False) -> Path:
    """A conditional package of `rows` social-insurance rows with five personal fields.

    With `all_clearable` the level-4 personal fields are level 3 instead, so a grant may set
    every field to clear (the baseline of the masking benchmarks)."""
    folder = OUT / f"{name}-{rows}"
    if (folder / "datapackage.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.csv"
    if not data.exists():
        os.link(_data_file(rows), data)  # a symlink would leave the package folder
    fields: list[dict[str, Any]] = []
    for column, ftype in COLUMNS:
        spec: dict[str, Any] = {"name": column, "type": ftype, "level": LEVEL.get(column, 1)}
        if column in PERSONAL:
            level, pii = PERSONAL[column]
            spec.update(level=min(level, 3) if all_clearable else level, pii=pii)
        if column == "id_number":
            spec["subject_key"] = True
        fields.append(spec)
    descriptor = {
        "name": name,
        "title": "基准测试参保人员（分级）",
        "open_type": "conditional",
        "resources": [
            {
                "name": "records",
                "path": "data.csv",
                "format": "csv",
                "schema": {"primaryKey": "record_id", "fields": fields},
            }
        ],
    }
    (folder / "datapackage.json").write_text(json.dumps(descriptor, ensure_ascii=False))
    return folder


@dataclass
class Gateway:
    """A running gateway with a data_admin signed in and a developer owning the apps."""

    base: str
    env: dict[str, str]
    admin_token: str
    apps: dict[str, tuple[str, str]] = field(default_factory=dict)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        return _cli(self.env, *args, stdin=stdin)

    def app(self, name: str) -> str:
        """A new app of the developer; its client_id."""
        created = json.loads(
            self.cli("apps", "create", "--owner", "bench-dev", "--name", name, "--json")
        )
        self.apps[created["client_id"]] = (created["client_id"], created["client_secret"])
        return created["client_id"]

    def grant(self, client_id: str, dataset_id: str, **terms: Any) -> dict[str, Any]:
        body = {"client_id": client_id, "dataset_id": dataset_id, "purpose": "基准测试", **terms}
        answer = httpx.post(
            f"{self.base}/api/v1/admin/grants",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"grant refused: {answer.status_code} {answer.text}")
        return answer.json()

    def token(self, client_id: str) -> str:
        answer = httpx.post(
            f"{self.base}/oauth/token",
            auth=self.apps[client_id],
            data={"grant_type": "client_credentials"},
        )
        answer.raise_for_status()
        return answer.json()["access_token"]


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*CLI, *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"opengate {' '.join(args)}: {done.stderr.strip() or done.stdout}")
    return done.stdout


@contextlib.contextmanager
def classified_gateway(
    database_url: str, data_dir: str, packages: list[Path], *, workers: int = 1
) -> Iterator[Gateway]:
    """Migrate, import `packages` through the CLI, create the accounts, serve, sign in."""
    port = free_port()
    env = {
        "OPENGATE_DATABASE_URL": database_url,
        "OPENGATE_DATA_DIR": data_dir,
        "OPENGATE_ISSUER": f"http://127.0.0.1:{port}",
        # The benchmarks measure throughput, not the limiter: keep every limit out of reach.
        "OPENGATE_RATE_APP": "100000000/minute",
        "OPENGATE_RATE_ANON": "100000000/minute",
        "OPENGATE_ACCESS_TOKEN_TTL": "3600",
    }
    _cli(env, "migrate")
    for package in packages:
        _cli(env, "datasets", "import", str(package))
    password = "bench-admin-password"  # a throw-away database
    _cli(
        env,
        "users",
        "create",
        "bench-admin",
        "--role",
        "data_admin",
        "--password-stdin",
        stdin=password + "\n",
    )
    _cli(env, "users", "create", "bench-dev", "--role", "developer")
    serve = [*CLI, "serve", "--port", str(port), "--workers", str(workers)]
    with server(serve, port, env, "/readyz") as base:
        login = httpx.post(
            f"{base}/auth/login", json={"username": "bench-admin", "password": password}
        )
        login.raise_for_status()
        yield Gateway(base, env, login.json()["access_token"])


def transforms_of(url: str, headers: dict[str, str]) -> dict[str, str]:
    """The transform of each field, as the records endpoint reports it."""
    answer = httpx.get(url, headers=headers, timeout=60)
    answer.raise_for_status()
    return {f["name"]: f["transform"] for f in answer.json()["fields"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    require_wrk()
    packages = [
        classified_package(args.rows, "bench-masked"),
        classified_package(args.rows, "bench-clear", all_clearable=True),
    ]
    print(
        f"method: {args.rows:,}-row conditional datasets, 1 worker, records?limit=1000 json; "
        f"wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s "
        "after a 2s warm-up each; medians"
    )
    if args.only == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            compare("SQLite", f"sqlite:///{tmp}/bench.db", packages, args)
    else:
        with postgres_database() as url:
            compare("PostgreSQL", url, packages, args)


def compare(label: str, database_url: str, packages: list[Path], args: argparse.Namespace) -> None:
    """One gateway on `database_url`; masked against all-clear requests/s, printed."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        classified_gateway(database_url, tmp, packages) as gateway,
    ):
        masked_app, clear_app = gateway.app("bench-masked"), gateway.app("bench-clear")
        gateway.grant(masked_app, "bench-masked", modes=["records"])  # the defaults
        gateway.grant(
            clear_app,
            "bench-clear",
            modes=["records"],
            transforms=dict.fromkeys(PERSONAL, "clear"),
        )
        masked_url = f"{gateway.base}/api/v1/datasets/bench-masked/records?limit=1000"
        clear_url = f"{gateway.base}/api/v1/datasets/bench-clear/records?limit=1000"
        masked_auth = {"Authorization": f"Bearer {gateway.token(masked_app)}"}
        clear_auth = {"Authorization": f"Bearer {gateway.token(clear_app)}"}
        masked_fields = transforms_of(masked_url, masked_auth)
        clear_fields = transforms_of(clear_url, clear_auth)
        transformed = {n: t for n, t in masked_fields.items() if t != "clear"}
        assert len(transformed) == 5, masked_fields
        assert set(clear_fields.values()) == {"clear"}, clear_fields
        for url, auth in ((masked_url, masked_auth), (clear_url, clear_auth)):
            run_wrk(url, seconds=2, connections=args.connections, headers=auth)  # warm up
        masked_runs: list[WrkResult] = []
        clear_runs: list[WrkResult] = []
        for _ in range(args.rounds):
            for runs, url, auth in (
                (masked_runs, masked_url, masked_auth),
                (clear_runs, clear_url, clear_auth),
            ):
                runs.append(
                    run_wrk(url, seconds=args.seconds, connections=args.connections, headers=auth)
                )
    masked, clear = median(masked_runs), median(clear_runs)
    ratio = masked.requests_per_second / clear.requests_per_second
    print(f"{label}: transformed " + ", ".join(f"{n} {t}" for n, t in transformed.items()))
    for name, result in (("masked", masked), ("all clear", clear)):
        print(
            f"  {name:<10} {result.requests_per_second:7.1f} req/s "
            f"({result.requests_per_second * 1000:9,.0f} rows/s)  p99 {result.p99_ms:7.1f} ms"
            + (f"  non-2xx: {result.non_2xx}" if result.non_2xx else "")
        )
    # An error answer costs less than 1000 masked rows: with any, the ratio means nothing.
    errors = masked.non_2xx + clear.non_2xx
    verdict = "INVALID (non-2xx answers)" if errors else "ok" if ratio >= BAR else "BELOW"
    print(f"  ratio {ratio:.2f} (bar ≥ {BAR:.2f}) {verdict}")


if __name__ == "__main__":
    main()
