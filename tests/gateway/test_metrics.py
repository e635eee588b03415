"""/metrics over HTTP: Prometheus text with requests by route group and status, latency,
the audit writer's batches; never rate limited; behind its token when one is set; with
`serve --workers 2` every scrape sees both workers' figures. And the JSON log: one object a
request, never a value or a token."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from gateway.settings import Settings
from tests.conftest import GatewayProcess, TestClient
from tests.packages import write_package


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of `name` with exactly these labels (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            got = ",".join(sorted((match[2] or "").split(","))) if match[2] else ""
            if got == wanted:
                return float(match[3])
    return 0.0


def test_metrics_count_requests_by_group_and_status(client: TestClient, engine: Engine, packages):
    from catalog.importer import import_package

    import_package(engine, write_package(packages, name="air", title="空气质量"))
    for _ in range(3):
        assert client.get("/api/v1/datasets/air/records?limit=2").status_code == 200
    assert client.get("/api/v1/datasets/none/records").status_code == 404
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert sample(text, "opengate_requests_total", group="data", status="200") >= 3
    assert sample(text, "opengate_requests_total", group="data", status="404") >= 1
    assert sample(text, "opengate_request_duration_seconds_count", group="data") >= 4
    assert sample(text, "opengate_audit_events_total") >= 4  # each data request is audited
    assert "opengate_audit_commit_seconds_bucket" in text
    assert "air" not in re.sub(r"^#.*$", "", text, flags=re.M)  # no dataset, no value


def test_metrics_are_not_rate_limited_and_keep_their_token(engine: Engine, settings: Settings):
    from gateway.app import create_app

    limited = settings.model_copy(
        update={
            "rate_limits_enabled": True,
            "rate_anon": "2/minute",
            "rate_web": "2/minute",
            "metrics_token": SecretStr("scrape-me-0123456789"),
        }
    )
    with TestClient(create_app(limited, engine=engine)) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "scrape-me" not in wrong.text
        token = {"Authorization": "Bearer scrape-me-0123456789"}
        for _ in range(10):  # far past the caller's 2/minute
            assert client.get("/metrics", headers=token).status_code == 200
        for _ in range(3):
            client.get("/api/v1/datasets")
        text = client.get("/metrics", headers=token).text
        assert sample(text, "opengate_rate_limited_total", group="api") >= 1
        assert sample(text, "opengate_requests_total", group="api", status="429") >= 1


def test_two_workers_are_added_up_in_every_scrape(tmp_path: Path):
    gateway = GatewayProcess(tmp_path)
    gateway.cli("migrate")
    try:
        gateway.serve(workers=2)
        for _ in range(40):  # a fresh connection each: the kernel spreads them over both
            assert httpx.get(f"{gateway.url}/api/v1/datasets", timeout=30).status_code == 200
        # Both workers counted some (each writes its own file)…
        files = list((tmp_path / "var" / "metrics").glob("counter_*.db"))
        assert len(files) >= 2, files
        # …and whichever answers the scrape adds them all up.
        for _ in range(6):
            text = httpx.get(f"{gateway.url}/metrics", timeout=30).text
            assert sample(text, "opengate_requests_total", group="api", status="200") >= 40
    finally:
        gateway.stop()


def test_json_logs_name_the_route_and_the_client_never_a_value(
    engine: Engine, settings: Settings, packages, caplog: pytest.LogCaptureFixture
):
    from catalog.importer import import_package
    from gateway.app import create_app

    import_package(engine, write_package(packages, name="air", title="空气质量"))
    with (
        TestClient(
            create_app(settings.model_copy(update={"log_format": "json"}), engine=engine)
        ) as client,
        caplog.at_level(logging.INFO, logger="opengate.access"),
    ):
        client.get("/api/v1/datasets/air/records/13912345678?fields=record_id")
        client.get("/api/v1/datasets/air/records?station=崂山区子站&limit=1")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "opengate.access"]
    assert len(lines) == 2
    one, page = lines
    assert one["route"] == "/api/v1/datasets/{dataset_id}/records/{key}"
    assert page["route"] == "/api/v1/datasets/{dataset_id}/records"
    assert page["query"] == "limit,station" and page["status"] == 200
    assert {"request_id", "method", "duration_ms", "client_id", "ts"} <= set(page)
    text = json.dumps(lines, ensure_ascii=False)
    assert "13912345678" not in text and "崂山区子站" not in text
