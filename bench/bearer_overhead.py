"""Requests with a bearer token against the same requests without one.

    python -m bench.bearer_overhead [--seconds 8] [--rounds 3]

One gateway (SQLite, 1 worker) serves the records endpoint (100 rows, json) of an open
dataset; wrk loads it with and without `Authorization: Bearer <app token>` in alternating
rounds. Bar (issue 3): with ≥ 0.9 × without.
"""

from __future__ import annotations

import argparse
import tempfile

import httpx

from bench.app_token import bearer_header, create_app_credentials
from bench.common import PYTHON, free_port, server, synthetic_package
from bench.wrk import median, require_wrk, run_wrk
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        engine = create_engine(Settings(database_url=url).sqlalchemy_url)
        upgrade(engine)
        import_package(engine, synthetic_package(10_000))
        engine.dispose()
        port = free_port()
        env = {
            "OPENGATE_DATABASE_URL": url,
            "OPENGATE_DATA_DIR": tmp,
            "OPENGATE_ISSUER": f"http://127.0.0.1:{port}",
        }
        credentials = create_app_credentials(env)
        cli = [PYTHON, "-m", "gateway.cli"]
        with server([*cli, "serve", "--port", str(port)], port, env, "/readyz") as base:
            auth = bearer_header(base, credentials)
            target = f"{base}/api/v1/datasets/bench-records/records?limit=100"
            assert httpx.get(target, headers=auth).status_code == 200
            run_wrk(target, seconds=2)
            run_wrk(target, seconds=2, headers=auth)
            plain, bearer = [], []
            for _ in range(args.rounds):
                plain.append(run_wrk(target, seconds=args.seconds))
                bearer.append(run_wrk(target, seconds=args.seconds, headers=auth))
    p, b = median(plain), median(bearer)
    ratio = b.requests_per_second / p.requests_per_second
    print(f"without token {p.requests_per_second:7.0f} req/s p99 {p.p99_ms:6.1f} ms")
    print(
        f"with token    {b.requests_per_second:7.0f} req/s p99 {b.p99_ms:6.1f} ms"
        + (f"  non-2xx: {b.non_2xx}" if b.non_2xx else "")
    )
    print(f"ratio {ratio:.2f} (bar ≥ 0.90) {'ok' if ratio >= 0.9 else 'BELOW'}")


if __name__ == "__main__":
    main()
