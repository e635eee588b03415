"""The demo catalog: deterministic packages that meet the contract, with valid identifiers."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from catalog.identifiers import (
    QINGDAO_DISTRICTS,
    is_valid_id_number,
    is_valid_mobile,
    is_valid_uscc,
)
from catalog.package import read_package
from gateway.demo_catalog import DEMO_PERSON, write_demo_packages

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_ROWS = {
    "enterprise-registry": 5000,
    "air-quality-hourly": 12 * 366 * 24,
    "bus-stops": 2500,
    "social-insurance": 20000,
    "household-registry": 1000,
}


@dataclass
class Table:
    descriptor: dict[str, Any]
    header: list[str]
    columns: dict[str, list[str]]

    @property
    def fields(self) -> list[dict[str, Any]]:
        return self.descriptor["resources"][0]["schema"]["fields"]

    @property
    def row_count(self) -> int:
        return len(self.columns[self.header[0]])

    def column(self, name: str) -> list[str]:
        return self.columns[name]

    def row(self, index: int) -> dict[str, str]:
        return {name: values[index] for name, values in self.columns.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """The demo written twice: here, and meanwhile by a fresh interpreter with another hash
    seed, so "deterministic" means the same files on every run of `opengate demo`."""
    elsewhere = tmp_path_factory.mktemp("demo-subprocess")
    script = (
        "import pathlib, sys\n"
        "from gateway.demo_catalog import write_demo_packages\n"
        "write_demo_packages(pathlib.Path(sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    other = subprocess.Popen([sys.executable, "-c", script, str(elsewhere)], cwd=ROOT, env=env)
    try:
        here = write_demo_packages(tmp_path_factory.mktemp("demo"))
    finally:
        assert other.wait(timeout=120) == 0
    return here, elsewhere


@pytest.fixture(scope="module")
def folders(runs: tuple[list[Path], Path]) -> list[Path]:
    return runs[0]


@pytest.fixture(scope="module")
def tables(folders: list[Path]) -> dict[str, Table]:
    result = {}
    for folder in folders:
        descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
        with (folder / "data.csv").open(encoding="utf-8", newline="") as f:
            header, *rows = csv.reader(f)
        assert {len(row) for row in rows} == {len(header)}, folder.name
        # Column-wise: every check below reads a few columns of every row.
        columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
        result[folder.name] = Table(descriptor, header, columns)
    return result


def test_packages_come_in_import_order(folders: list[Path]) -> None:
    assert [f.name for f in folders] == list(EXPECTED_ROWS)
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["data.csv", "datapackage.json"]


def test_two_runs_are_byte_identical(runs: tuple[list[Path], Path]) -> None:
    here, elsewhere = runs
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(f.name for f in here)
    for folder in here:
        for name in ("datapackage.json", "data.csv"):
            again = (elsewhere / folder.name / name).read_bytes()
            assert (folder / name).read_bytes() == again, f"{folder.name}/{name}"


def test_row_counts(tables: dict[str, Table]) -> None:
    assert {name: t.row_count for name, t in tables.items()} == EXPECTED_ROWS
    assert tables["air-quality-hourly"].row_count >= 100_000


def test_packages_pass_the_package_reader(folders: list[Path]) -> None:
    specs = {spec.name: spec for spec in map(read_package, folders)}
    assert {name: spec.level for name, spec in specs.items()} == {
        "enterprise-registry": 2,
        "air-quality-hourly": 1,
        "bus-stops": 1,
        "social-insurance": 4,
        "household-registry": 4,
    }


def test_csv_is_utf8_without_bom_and_with_lf(folders: list[Path]) -> None:
    for folder in folders:
        data = (folder / "data.csv").read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf")
        assert b"\r" not in data
        data.decode("utf-8", errors="strict")


def test_unconditional_datasets_have_no_field_above_level_2(tables: dict[str, Table]) -> None:
    unconditional = [t for t in tables.values() if t.descriptor["open_type"] == "unconditional"]
    assert len(unconditional) == 3
    for table in unconditional:
        assert max(f["level"] for f in table.fields) <= 2, table.descriptor["name"]
        assert all(f.get("pii", "none") == "none" for f in table.fields)


def test_metadata(tables: dict[str, Table]) -> None:
    for name, table in tables.items():
        d = table.descriptor
        assert d["name"] == name
        for key in ("title", "description", "publisher", "theme", "update_frequency", "zone"):
            assert isinstance(d[key], str) and d[key], (name, key)
        assert d["keywords"] and all(isinstance(k, str) for k in d["keywords"])
        resource = d["resources"][0]
        assert (resource["name"], resource["path"], resource["format"]) == (
            "records",
            "data.csv",
            "csv",
        )
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", f["name"]) for f in table.fields)
    social = tables["social-insurance"].descriptor
    assert {"社保", "参保"} <= set(social["keywords"])
    assert (social["open_type"], social["zone"]) == ("conditional", "finance")
    household = tables["household-registry"].descriptor
    assert (household["open_type"], household["zone"]) == ("closed", "restricted")


def _parse_datetime(text: str) -> datetime:
    assert len(text) == 19 and text[10] == "T", text  # YYYY-MM-DDTHH:MM:SS, no offset
    return datetime.fromisoformat(text)


def _parse_date(text: str) -> date:
    assert len(text) == 10, text
    return date.fromisoformat(text)


def _parse_boolean(text: str) -> bool:
    assert text in ("true", "false"), text
    return text == "true"


PARSERS: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "number": float,
    "boolean": _parse_boolean,
    "date": _parse_date,
    "datetime": _parse_datetime,
}
NULLABLE = {("air-quality-hourly", "primary_pollutant"), ("household-registry", "moved_in_date")}


def test_header_matches_schema_and_every_value_parses(tables: dict[str, Table]) -> None:
    for name, table in tables.items():
        assert table.header == [f["name"] for f in table.fields], name
        for field in table.fields:
            values = table.column(field["name"])
            if (name, field["name"]) in NULLABLE:
                values = [v for v in values if v]
            else:
                assert "" not in values, (name, field["name"])
            if field["type"] != "string":
                list(map(PARSERS[field["type"]], values))


def test_primary_keys_are_unique(tables: dict[str, Table]) -> None:
    for name, table in tables.items():
        keys = table.column(table.descriptor["resources"][0]["schema"]["primaryKey"])
        assert len(set(keys)) == len(keys), name


def test_every_credit_code_is_a_valid_qingdao_code(tables: dict[str, Table]) -> None:
    table = tables["enterprise-registry"]
    codes = table.column("credit_code")
    assert all(is_valid_uscc(c) for c in codes)
    for code, district in zip(codes, table.column("district"), strict=True):
        assert code.startswith("913702")
        assert QINGDAO_DISTRICTS[code[2:8]] == district
    names = table.column("enterprise_name")
    assert len(set(names)) == len(names)


def test_every_insured_identity_is_valid_and_from_qingdao(tables: dict[str, Table]) -> None:
    table = tables["social-insurance"]
    for id_number, gender in zip(table.column("id_number"), table.column("gender"), strict=True):
        assert is_valid_id_number(id_number), id_number
        assert id_number[:6] in QINGDAO_DISTRICTS
        assert "1960" <= id_number[6:10] <= "2003"
        assert gender == ("男" if int(id_number[16]) % 2 else "女")
    assert all(is_valid_mobile(p) for p in table.column("phone"))
    assert all(2 <= len(n) <= 3 for n in table.column("person_name"))
    assert all(4000 <= int(b) <= 30000 for b in table.column("monthly_base"))


def test_the_demo_person_comes_first(tables: dict[str, Table]) -> None:
    table = tables["social-insurance"]
    first = table.row(0)
    assert first["record_id"] == "1"
    assert (first["person_name"], first["id_number"], first["phone"]) == (
        "张三丰",
        "370202199001011237",
        "13812345678",
    )
    assert DEMO_PERSON.id_number == first["id_number"]
    subject = next(f for f in table.fields if f.get("subject_key"))
    assert (subject["name"], subject["level"], subject["pii"]) == ("id_number", 4, "id_number")


def test_household_identities_are_valid(tables: dict[str, Table]) -> None:
    table = tables["household-registry"]
    assert all(is_valid_id_number(v) for v in table.column("id_number"))
    for id_number, born in zip(
        table.column("id_number"), table.column("date_of_birth"), strict=True
    ):
        assert id_number[6:14] == born.replace("-", "")
    levels = {f["name"]: f["level"] for f in table.fields}
    assert levels["id_number"] == levels["address"] == 4


def test_air_quality_covers_every_hour_of_2024(tables: dict[str, Table]) -> None:
    table = tables["air-quality-hourly"]
    times = table.column("observed_at")
    assert len(set(times)) == 366 * 24
    assert (min(times), max(times)) == ("2024-01-01T00:00:00", "2024-12-31T23:00:00")
    assert len(set(table.column("station"))) == 12
    bands = [(50, "优"), (100, "良"), (150, "轻度污染"), (200, "中度污染"), (300, "重度污染")]
    columns = [
        table.column(n) for n in ("aqi", "pm25", "pm10", "primary_pollutant", "quality_level")
    ]
    for aqi, pm25, pm10, primary, level in zip(*columns, strict=True):
        assert int(pm25) < int(pm10)
        assert (primary == "") == (int(aqi) <= 50)
        assert level == next((label for top, label in bands if int(aqi) <= top), "严重污染")


def test_bus_stops_lie_in_qingdao(tables: dict[str, Table]) -> None:
    table = tables["bus-stops"]
    assert all(re.fullmatch(r"QD\d{6}", s) for s in table.column("stop_id"))
    for lon, lat in zip(table.column("longitude"), table.column("latitude"), strict=True):
        assert 119.5 <= float(lon) <= 121.0 and 35.5 <= float(lat) <= 37.1
        assert len(lon.split(".")[1]) == 6 and len(lat.split(".")[1]) == 6
    assert all(re.fullmatch(r"[^;]+路(;[^;]+路)*", v) for v in table.column("lines"))
