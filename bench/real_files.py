"""Departments' real files (issue 19 bars): a generated `.xlsx` of N rows imported at
≥ 20k rows/s; the same rows as a GBK CSV within 1.2 × the UTF-8 CSV's time. SQLite, one
process; the files are written first (openpyxl's write-only mode), outside the timing.

    python -m bench.real_files [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path

from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings

FIELDS = [
    {"name": "record_id", "type": "integer", "title": "序号", "level": 1},
    {"name": "company", "type": "string", "title": "企业名称", "level": 1},
    {"name": "district", "type": "string", "title": "所属区市", "level": 1},
    {"name": "registered", "type": "date", "title": "成立日期", "level": 1},
    {"name": "capital", "type": "number", "title": "注册资本（万元）", "level": 1},
]
DISTRICTS = ("市南区", "市北区", "李沧区", "崂山区", "城阳区", "黄岛区", "即墨区", "胶州市")


def rows(n: int) -> list[list[object]]:
    rng = random.Random(19)
    return [
        [i, f"青岛{rng.choice('海港山城湾岛')}{i}号科技有限公司", rng.choice(DISTRICTS),
         f"20{rng.randrange(10, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
         round(rng.uniform(10, 5000), 2)]
        for i in range(1, n + 1)
    ]  # fmt: skip


def package(folder: Path, name: str, data: str, **resource: str) -> Path:
    folder.mkdir(parents=True)
    descriptor = {
        "name": name,
        "title": "市场主体",
        "open_type": "unconditional",
        "resources": [
            {"path": data, "schema": {"primaryKey": "record_id", "fields": FIELDS}, **resource}
        ],
    }
    (folder / "datapackage.json").write_text(json.dumps(descriptor, ensure_ascii=False))
    return folder


def timed(engine: object, folder: Path) -> tuple[float, int]:
    started = time.perf_counter()
    result = import_package(engine, folder)  # type: ignore[arg-type]
    return time.perf_counter() - started, result.row_count


def main() -> None:
    import openpyxl

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    data = rows(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        engine = create_engine(Settings(database_url=f"sqlite:///{root}/bench.db").sqlalchemy_url)
        upgrade(engine)
        xlsx = package(root / "x", "from-xlsx", "登记.xlsx")
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("登记信息")
        sheet.append([f["title"] for f in FIELDS])
        for r in data:
            sheet.append(r)
        book.save(xlsx / "登记.xlsx")
        for name, encoding in (("utf-8", "utf-8"), ("gbk", "gbk")):
            folder = package(root / name, f"from-{name}", "登记.csv", encoding=encoding)
            with (folder / "登记.csv").open("w", encoding=encoding, newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow([x["title"] for x in FIELDS])
                writer.writerows(data)
        figures = {name: timed(engine, root / key) for name, key in
                   (("xlsx", "x"), ("utf-8 csv", "utf-8"), ("gbk csv", "gbk"))}  # fmt: skip
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{args.rows:,} rows, SQLite | {load}")
    for name, (seconds, count) in figures.items():
        print(f"  {name:<10} {seconds:7.2f} s  {count / seconds:9,.0f} rows/s")
    xlsx_rate = args.rows / figures["xlsx"][0]
    gbk_ratio = figures["gbk csv"][0] / figures["utf-8 csv"][0]
    print(
        f"  xlsx {xlsx_rate:,.0f} rows/s (bar ≥ 20,000) {'ok' if xlsx_rate >= 20_000 else 'BELOW'}"
        f" | gbk ÷ utf-8 time {gbk_ratio:.2f} (bar ≤ 1.2) {'ok' if gbk_ratio <= 1.2 else 'ABOVE'}"
    )


if __name__ == "__main__":
    main()
