"""What sealed cursors cost (issue 12: ≤ 5 % on the records bars of issue 2, side by side).

    python -m bench.cursor_cost [--requests 400] [--rounds 5]

1. Micro: sealing and opening one cursor (AES-SIV, catalog.cursors) against the unsealed
   base64url JSON it replaced, in µs per operation.
2. Side by side, in one process on SQLite: the records bench's request
   (`/records?limit=100`, unconditional data of 10,000 rows) following `next_cursor`, so
   every request opens one cursor and seals the next, once with sealed cursors and once
   with the old unsealed codec swapped in, in alternating rounds; medians compared.
   In process (the ASGI app through Starlette's TestClient, no sockets, no wrk) so it is
   safe on a shared machine; the HTTP stack a real server adds only dilutes the ratio.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
import timeit
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from bench.common import synthetic_package
from catalog import cursors as cursor_module
from catalog.cursors import CursorBox
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings

ROWS = 10_000
BAR = 1.05


class UnsealedCursors:
    """The codec before issue 12: base64url of the payload, the order signature beside it."""

    def seal(self, order_signature: str, payload: bytes) -> str:
        raw = orjson.dumps([order_signature, orjson.loads(payload)])
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def open(self, order_signature: str, cursor: str) -> bytes | None:
        try:
            signature, values = orjson.loads(
                base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            )
        except ValueError:
            return None
        return orjson.dumps(values) if signature == order_signature else None


@contextmanager
def unsealed() -> Iterator[None]:
    original = CursorBox.bind
    CursorBox.bind = lambda self, *args: UnsealedCursors()  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        CursorBox.bind = original  # type: ignore[method-assign]


def micro() -> dict[str, float]:
    box = cursor_module.CursorBox(b"k" * 32).bind("bench-records", 1, "app:og_x::|grant:1.1")
    plain = UnsealedCursors()
    payload = orjson.dumps([4711])
    sealed, opened = box.seal("record_id", payload), plain.seal("record_id", payload)
    n = 100_000
    return {
        "seal_us": timeit.timeit(lambda: box.seal("record_id", payload), number=n) / n * 1e6,
        "open_us": timeit.timeit(lambda: box.open("record_id", sealed), number=n) / n * 1e6,
        "unsealed_encode_us": timeit.timeit(lambda: plain.seal("record_id", payload), number=n)
        / n
        * 1e6,
        "unsealed_decode_us": timeit.timeit(lambda: plain.open("record_id", opened), number=n)
        / n
        * 1e6,
    }


def side_by_side(requests: int, rounds: int) -> tuple[float, float]:
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

    from gateway.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, data_dir=Path(tmp) / "var", rate_limits_enabled=False)
        engine = create_engine(settings.sqlalchemy_url)
        upgrade(engine)
        dataset = import_package(engine, synthetic_package(ROWS)).dataset_id
        path = f"/api/v1/datasets/{dataset}/records"

        def run(client: TestClient) -> float:
            cursor = None
            started = time.perf_counter()
            for _ in range(requests):
                params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
                answer = client.get(path, params=params)
                assert answer.status_code == 200, answer.text
                cursor = answer.json()["next_cursor"]
            return (time.perf_counter() - started) / requests * 1e6

        sealed_times, unsealed_times = [], []
        with TestClient(create_app(settings, engine=engine)) as client:
            run(client)  # warm-up: statement cache, keys, imports
            for _ in range(rounds):
                sealed_times.append(run(client))
                with unsealed():
                    unsealed_times.append(run(client))
        engine.dispose()
    return statistics.median(sealed_times), statistics.median(unsealed_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name, value in micro().items():
        print(f"{name:>20}: {value:6.2f} µs")
    sealed, plain = side_by_side(args.requests, args.rounds)
    ratio = sealed / plain
    verdict = "PASS" if ratio <= BAR else "FAIL"
    print(
        f"records ?limit=100 following next_cursor: sealed {sealed:.0f} µs, unsealed "
        f"{plain:.0f} µs per request → {ratio:.3f} × (bar ≤ {BAR}) {verdict}"
    )


if __name__ == "__main__":
    main()
