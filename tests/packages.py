"""Dataset packages written on the fly for tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

STATION_FIELDS = [
    {"name": "reading_id", "type": "integer", "title": "读数编号", "level": 1},
    {"name": "station", "type": "string", "title": "站点", "level": 1},
    {"name": "district", "type": "string", "title": "区市", "level": 1},
    {"name": "aqi", "type": "integer", "title": "AQI", "level": 2},
    {"name": "pm25", "type": "number", "title": "PM2.5", "level": 1},
    {"name": "calibrated", "type": "boolean", "title": "已校准", "level": 1},
    {"name": "day", "type": "date", "title": "日期", "level": 1},
    {"name": "observed_at", "type": "datetime", "title": "观测时间", "level": 1},
]
DISTRICTS = ["市南区", "市北区", "李沧区", "崂山区", "黄岛区", "城阳区"]


def station_rows(count: int) -> list[list[Any]]:
    """Deterministic rows; every 7th aqi and every 11th pm25 are empty (null)."""
    rows = []
    for i in range(1, count + 1):
        rows.append(
            [
                i,
                f"{DISTRICTS[i % 6][:2]}站{i % 4}",
                DISTRICTS[i % 6],
                "" if i % 7 == 0 else (i * 37) % 300,
                "" if i % 11 == 0 else round((i * 13) % 150 + 0.5, 1),
                "true" if i % 2 else "false",
                f"2024-01-{(i % 28) + 1:02d}",
                f"2024-01-{(i % 28) + 1:02d}T{i % 24:02d}:00:00",
            ]
        )
    return rows


def write_package(
    folder: Path,
    *,
    name: str = "air-readings",
    title: str = "空气质量读数",
    open_type: str = "unconditional",
    fields: Sequence[dict[str, Any]] = STATION_FIELDS,
    rows: Iterable[Sequence[Any]] | None = None,
    header: Sequence[str] | None = None,
    primary_key: str | None = None,
    keywords: Sequence[str] = ("空气", "监测"),
    publisher: str = "市生态环境局",
    theme: str = "生态环境",
    data_text: str | None = None,
    **extra: Any,
) -> Path:
    package = folder / name
    package.mkdir(parents=True, exist_ok=True)
    descriptor = {
        "name": name,
        "title": title,
        "description": f"{title}（测试数据）",
        "publisher": publisher,
        "theme": theme,
        "keywords": list(keywords),
        "open_type": open_type,
        "update_frequency": "daily",
        "license": "CC-BY-4.0",
        "zone": "public",
        "resources": [
            {
                "name": "records",
                "path": "data.csv",
                "format": "csv",
                "schema": {
                    "primaryKey": primary_key or fields[0]["name"],
                    "fields": list(fields),
                },
            }
        ],
        **extra,
    }
    (package / "datapackage.json").write_text(
        json.dumps(descriptor, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    if data_text is not None:
        (package / "data.csv").write_text(data_text, encoding="utf-8")
        return package
    with (package / "data.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header or [f["name"] for f in fields])
        writer.writerows(station_rows(250) if rows is None else rows)
    return package


def import_conditional(
    engine: Any,
    folder: Path,
    *,
    fields: Sequence[dict[str, Any]],
    rows: Iterable[Sequence[Any]],
    name: str = "social-insurance",
    title: str = "社会保险参保缴费信息",
    subject_hmac: Any = None,
    **extra: Any,
) -> Any:
    """Import a conditional (有条件开放) dataset written on the fly."""
    from catalog.importer import import_package

    package = write_package(
        folder,
        name=name,
        title=title,
        open_type="conditional",
        fields=fields,
        rows=rows,
        **extra,
    )
    return import_package(engine, package, subject_hmac=subject_hmac)
