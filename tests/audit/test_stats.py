"""The auditor's dashboard: counts, top consumers, denials and anomaly flags, each flag
seeded just above and just below its threshold."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from tests.audit.helpers import auditor, seed
from tests.conftest import TestClient

DAY = datetime(2026, 11, 20)


def _at(day: datetime, minutes: float) -> str:
    return (day + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plan() -> list[tuple[str, dict[str, Any]]]:
    """(ts, event fields) for everything the tests need, oldest first."""
    planned: list[tuple[str, dict[str, Any]]] = []

    def data(app: str, rows: int, day: datetime, minutes: float = 9 * 60, **extra: Any) -> None:
        fields = {"client_id": app, "actor": f"client:{app}", "row_count": rows}
        planned.append((_at(day, minutes), fields | {"resource": "datasets/air"} | extra))

    # (a) daily rows against the median of the 7 days before
    for back in range(1, 8):
        day = DAY - timedelta(days=back)
        data("app-a", 100, day)  # threshold today: max(10 × 100, 1000) = 1000
        data("app-b", 200, day)  # 2000
        data("app-c", 200, day)  # 2000
    data("app-a", 1001, DAY)  # above
    data("app-b", 2000, DAY)  # at, not above
    data("app-c", 2001, DAY)  # above
    data("app-d", 1000, DAY)  # no history: the floor of 1000 holds

    # (b) denials within an hour
    def denied(minutes: float, actor: str, ip: str | None, code: str) -> None:
        fields = {"action": "access.denied", "actor": actor, "ip": ip, "outcome": "denied"}
        planned.append((_at(DAY, minutes), fields | {"detail": {"error": code}}))

    for i in range(20):  # 10:31 … 11:28, across the clock hour
        denied(10 * 60 + 31 + 3 * i, "user:mallory", None, "forbidden")
    for i in range(19):
        denied(13 * 60 + i / 2, "user:bob", None, "forbidden")
    for i in range(20):  # 20 in 133 minutes: never 20 within one hour
        denied(14 * 60 + 7 * i, "anonymous", "10.9.9.9", "unauthorized")
    for i in range(25):
        denied(20 * 60 + i / 5, "anonymous", "10.6.6.6", "unauthorized")

    # (c) verify calls over distinct values in a day
    for i in range(50):
        data("app-v", 0, DAY, 8 * 60 + i / 10, action="data.verify", detail={"values": f"hmac:{i}"})
    for i in range(60):
        values = {"values": f"hmac:{i % 49}"}
        data("app-w", 0, DAY, 8 * 60 + i / 10, action="data.verify", detail=values)
    return sorted(planned, key=lambda p: p[0])


def _stats(client: TestClient, engine: Engine, **params: Any) -> dict[str, Any]:
    """The dashboard over the seeded events."""
    for ts, fields in _plan():
        seed(engine, ts, **fields)
    answer = client.get("/api/v1/audit/stats", headers=auditor(client, engine), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_flags_fire_above_their_thresholds_only(client: TestClient, engine: Engine) -> None:
    flags = _stats(client, engine, since="2026-11-20", until="2026-11-20")["anomalies"]

    spikes = {f["client_id"]: f for f in flags if f["kind"] == "row_spike"}
    assert set(spikes) == {"app-a", "app-c"}
    assert spikes["app-a"]["rows"] == 1001 and spikes["app-a"]["threshold"] == 1000
    assert spikes["app-c"]["median_rows"] == 200 and spikes["app-c"]["threshold"] == 2000

    bursts = [f for f in flags if f["kind"] == "denial_burst"]
    assert {(f.get("actor"), f.get("ip"), f["count"]) for f in bursts} == {
        ("user:mallory", None, 20),
        (None, "10.6.6.6", 25),
    }
    mallory = next(f for f in bursts if f.get("actor"))
    assert mallory["from"].startswith("2026-11-20T10:31") and mallory["to"] < "2026-11-20T11:31"

    sweeps = [f for f in flags if f["kind"] == "verify_sweep"]
    assert sweeps == [
        {"kind": "verify_sweep", "client_id": "app-v", "day": "2026-11-20", "distinct_values": 50}
    ]


def test_counts_top_consumers_and_denials(client: TestClient, engine: Engine) -> None:
    stats = _stats(client, engine, since="2026-11-13", until="2026-11-20", top=3)
    counts = {
        (c["day"], c["action"], c["dataset"], c["client_id"], c["outcome"]): (
            c["events"],
            c["rows"],
        )
        for c in stats["counts"]
    }
    assert counts[("2026-11-20", "data.records", "air", "app-c", "allowed")] == (1, 2001)
    assert counts[("2026-11-19", "data.records", "air", "app-b", "allowed")] == (1, 200)
    assert counts[("2026-11-20", "data.verify", "air", "app-w", "allowed")] == (60, 0)
    assert counts[("2026-11-20", "access.denied", None, None, "denied")] == (84, 0)

    top = stats["top_consumers"]
    assert [c["client_id"] for c in top["by_rows"]] == ["app-c", "app-b", "app-a"]
    assert top["by_rows"][0] == {"client_id": "app-c", "requests": 8, "rows": 7 * 200 + 2001}
    assert [c["client_id"] for c in top["by_requests"]] == ["app-w", "app-v", "app-a"]

    denials = stats["denials"]
    assert len(denials) == 3
    assert denials[0] == {
        "client_id": None,
        "actor": "anonymous",
        "ip": "10.6.6.6",
        "count": 25,
        "codes": {"unauthorized": 25},
    }
    assert {d["actor"]: d["codes"] for d in denials[1:]} == {
        "user:mallory": {"forbidden": 20},
        "anonymous": {"unauthorized": 20},
    }

    # the history before `since` is not counted, but the spike check still reads it
    assert all(c["day"] >= "2026-11-13" for c in stats["counts"])


def test_defaults_and_the_read_is_audited(client: TestClient, engine: Engine) -> None:
    headers = auditor(client, engine)
    answer = client.get("/api/v1/audit/stats", headers=headers)
    assert answer.status_code == 200
    stats = answer.json()
    assert stats["since"] < stats["until"] and stats["since"].endswith("T00:00:00.000000Z")
    assert any(c["action"] == "user.login" for c in stats["counts"])
    bad = client.get(
        "/api/v1/audit/stats",
        headers=headers,
        params={"since": "2026-12-01", "until": "2026-11-01"},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_parameter"
    reads = client.get("/api/v1/audit/events", headers=headers, params={"action": "audit.stats"})
    assert len(reads.json()["data"]) == 2
