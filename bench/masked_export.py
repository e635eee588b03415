"""Streamed CSV export of a 1,000,000-row conditional dataset from PostgreSQL, masked.

    python -m bench.masked_export [--rows 1000000] [--rounds 2]

One gateway (1 worker) on a fresh PostgreSQL database serves the two datasets of
bench.masking_cost: `bench-masked` to an app whose grant masks five fields (mask_name,
mask_phone, mask_address; pseudonym on the level-4 id_number and email), and, for context,
`bench-clear` (the same rows) to an app granted every field clear. Each round streams
`/export?format=csv` of both with httpx, counting bytes and lines as they arrive; the
median of the rounds is reported. Bar: masked export ≥ 50,000 rows/s per worker.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import httpx

from bench.common import postgres_database
from bench.masking_cost import PERSONAL, classified_gateway, classified_package

BAR = 50_000
MASKS = {
    "person_name": "mask_name",
    "id_number": "pseudonym",  # level 4: nothing looser is grantable
    "phone": "mask_phone",
    "email": "pseudonym",  # level 4
    "address": "mask_address",
}


def export(url: str, token: str) -> tuple[int, int, float, float]:
    """Stream one export: data rows, bytes, seconds to the first byte and in all."""
    lines = size = 0
    first = None
    started = time.perf_counter()
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 16):
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")
    return lines - 1, size, first or 0.0, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    packages = [
        classified_package(args.rows, "bench-masked"),
        classified_package(args.rows, "bench-clear", all_clearable=True),
    ]
    results: dict[str, list[tuple[int, int, float, float]]] = {"masked": [], "all clear": []}
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_database() as url,
        classified_gateway(url, tmp, packages) as gateway,
    ):
        setup = time.perf_counter() - started
        masked_app, clear_app = gateway.app("bench-masked"), gateway.app("bench-clear")
        gateway.grant(
            masked_app,
            "bench-masked",
            modes=["records"],
            transforms=MASKS,
        )
        gateway.grant(
            clear_app, "bench-clear", modes=["records"], transforms=dict.fromkeys(PERSONAL, "clear")
        )
        targets = {
            "masked": (
                f"{gateway.base}/api/v1/datasets/bench-masked/export?format=csv",
                gateway.token(masked_app),
            ),
            "all clear": (
                f"{gateway.base}/api/v1/datasets/bench-clear/export?format=csv",
                gateway.token(clear_app),
            ),
        }
        for url_, token in targets.values():  # warm up the pool and the plan
            httpx.get(
                url_.replace("/export?format=csv", "/records?limit=10"),
                headers={"Authorization": f"Bearer {token}"},
            ).raise_for_status()
        for _ in range(args.rounds):
            for label, (url_, token) in targets.items():
                results[label].append(export(url_, token))
    for label, runs in results.items():
        assert all(rows == args.rows for rows, *_ in runs), (label, runs)
    rates = {label: [rows / s for rows, _, _, s in runs] for label, runs in results.items()}
    print(f"rows: {args.rows:,} (setup: import of both datasets and accounts {setup:.0f} s)")
    for label, runs in results.items():
        rate = statistics.median(rates[label])
        seconds = statistics.median(s for *_, s in runs)
        megabytes = statistics.median(b for _, b, _, _ in runs) / 1e6
        first = statistics.median(f for _, _, f, _ in runs)
        print(
            f"{label:<10} {rate:9,.0f} rows/s  {seconds:6.1f} s  {megabytes:6.0f} MB "
            f"({megabytes / seconds:5.1f} MB/s)  first byte {first * 1000:5.0f} ms"
        )
    masked = statistics.median(rates["masked"])
    verdict = "ok" if masked >= BAR else "BELOW"
    print(f"masked export {masked:,.0f} rows/s (bar ≥ {BAR:,} per worker) {verdict}")
    print(
        f"method: PostgreSQL, 1 worker, /export?format=csv streamed with httpx (bytes and lines "
        f"counted), {args.rounds} alternating rounds of masked (5 fields) and all-clear, medians"
    )


if __name__ == "__main__":
    main()
