"""The auditor console over HTTP (issue 16 point 2): every page for a signed-in auditor
only (a stranger is sent to /login, every other role gets 403 and changes nothing), the
search with the API's filters and its timeline, an event's hash and place in the chain,
its inclusion proof checked with nothing but the public key, a checkpoint signed from the
browser (CSRF), the chain check, the charts' figures and anomaly flags, the signed bundle
and the CSV export; every page is itself an audit event."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from audit.bundle import verify_bundle
from audit.proofs import check_proof
from audit.signing import load_public_key
from tests.audit.helpers import opengate, seed, tamper
from tests.auth.helpers import PASSWORD, user
from tests.portal.web import csrf_of, web_login

PAGES = [
    "/audit",
    "/audit/events/1",
    "/audit/events/1/proof",
    "/audit/verify",
    "/audit/verify?run=1",
    "/audit/charts",
    "/audit/export",
    "/audit/export/bundle",
    "/audit/export/csv",
    "/audit/reconciliation",
]
CHART_DATA = re.compile(r'<script type="application/json" id="chart-data">(.*?)</script>', re.S)
EVENT_LINK = re.compile(r'href="/audit/events/(\d+)" class="event-link"')


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar() or 0)


def rows_of(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def world(engine: Engine) -> dict[str, list[int]]:
    """Accesses of two apps to two datasets over three months, a burst of denials and an
    unrelated sign-in, seeded oldest first (the writer keeps time in chain order)."""
    seqs: dict[str, list[int]] = {"target": [], "other": []}
    for day in ("2026-09-10", "2026-10-05", "2026-10-20", "2026-10-21", "2026-10-22", "2026-11-02"):
        ts = f"{day}T08:00:00.000000Z"
        if day == "2026-10-21":
            seed(
                engine,
                ts,
                25,
                client_id="og_probe",
                actor="client:og_probe",
                resource="datasets/enterprise-credit",
                outcome="denied",
                status=403,
                detail={"error": "grant_required"},
            )
            continue
        if day == "2026-10-22":
            seed(
                engine,
                ts,
                1,
                action="auth.login",
                actor="user:someone",
                purpose='=HYPERLINK("http://evil")',
            )
            continue
        found = seed(
            engine,
            ts,
            2,
            client_id="og_bank",
            actor="client:og_bank",
            resource="datasets/enterprise-credit",
            row_count=40,
        )
        seqs["target" if day.startswith("2026-10") else "other"].extend(found)
        seed(
            engine,
            ts,
            1,
            client_id="og_other",
            actor="client:og_other",
            resource="datasets/enterprise-credit",
            row_count=5,
        )
        seed(
            engine,
            ts,
            1,
            client_id="og_bank",
            actor="client:og_bank",
            resource="datasets/bus-lines",
            row_count=7,
        )
    return seqs


@pytest.fixture
def seqs(engine: Engine) -> dict[str, list[int]]:
    # before anyone signs in: the writer keeps time in chain order
    return world(engine)


@pytest.fixture
def auditor(client: TestClient, engine: Engine, seqs: dict[str, list[int]]) -> TestClient:
    user(engine, "auditor-web", "auditor")
    web_login(client, "auditor-web", PASSWORD)
    return client


def test_a_stranger_is_sent_to_login_and_nothing_is_signed(client: TestClient, engine: Engine):
    seed(engine, "2026-10-05T08:00:00.000000Z", 3)
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=/audit"), path
    before = count(engine, "SELECT count(*) FROM audit_checkpoints")
    answer = client.post("/audit/checkpoint", data={"seq": "1"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert count(engine, "SELECT count(*) FROM audit_checkpoints") == before
    denied = count(
        engine,
        "SELECT count(*) FROM audit_events WHERE action = 'audit.search' "
        "AND actor = 'anonymous' AND outcome = 'denied'",
    )
    assert denied == 1


@pytest.mark.parametrize("role", ["developer", "data_admin", "sysadmin"])
def test_every_other_role_gets_403_on_every_page_and_form(
    client: TestClient, engine: Engine, role: str
):
    seed(engine, "2026-10-05T08:00:00.000000Z", 3)
    user(engine, f"other-{role}", role)
    web_login(client, f"other-{role}", PASSWORD)
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 403, (role, path)
        assert "审计台仅供审计员账号使用" in answer.text
        assert "sha256" not in answer.text and "prev_hash" not in answer.text
    # their own session's valid token does not open the form either
    token = csrf_of(client, "/")
    before = count(engine, "SELECT count(*) FROM audit_checkpoints")
    answer = client.post("/audit/checkpoint", data={"seq": "1", "csrf_token": token})
    assert answer.status_code == 403
    assert count(engine, "SELECT count(*) FROM audit_checkpoints") == before
    refused = count(
        engine,
        f"SELECT count(*) FROM audit_events WHERE actor = 'user:other-{role}' "
        "AND action LIKE 'audit.%' AND outcome = 'denied'",
    )
    assert refused == len(PAGES) + 1


def test_pages_are_chinese_with_the_web_headers_and_audited(auditor: TestClient, engine: Engine):
    for path in ("/audit", "/audit/events/1", "/audit/verify", "/audit/charts", "/audit/export"):
        page = auditor.get(path)
        assert page.status_code == 200, path
        assert '<html lang="zh-CN">' in page.text
        assert page.headers["cache-control"] == "no-store"
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script>" not in page.text  # no inline script anywhere
        for url in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert url.startswith(("/", "#")), (path, url)
    rows = rows_of(
        engine,
        "SELECT action, outcome, CAST(detail AS TEXT) FROM audit_events "
        "WHERE actor = 'user:auditor-web' AND action LIKE 'audit.%' ORDER BY seq",
    )
    assert [r[0] for r in rows] == [
        "audit.search",
        "audit.read",
        "audit.checkpoints",
        "audit.stats",
        "audit.view",
    ]
    assert all(r[1] == "allowed" and json.loads(r[2])["via"] == "web" for r in rows)


def test_search_finds_every_access_of_one_app_to_one_dataset_in_a_month(
    auditor: TestClient, seqs: dict[str, list[int]]
):
    page = auditor.get(
        "/audit",
        params={
            "dataset": "enterprise-credit",
            "client_id": "og_bank",
            "since": "2026-10-01",
            "until": "2026-10-31",
        },
    )
    assert page.status_code == 200
    assert sorted(int(s) for s in EVENT_LINK.findall(page.text)) == sorted(seqs["target"])
    assert "符合条件的事件共 <strong>4</strong> 条，分布在 2 天" in page.text
    assert ">2026-10-05</a>" in page.text and ">2026-10-20</a>" in page.text
    # every other filter of the API narrows the same way
    denied = auditor.get("/audit", params={"outcome": "denied", "client_id": "og_probe"})
    assert len(EVENT_LINK.findall(denied.text)) == 25
    login = auditor.get("/audit", params={"action": "auth"})
    assert len(EVENT_LINK.findall(login.text)) == 1
    by_actor = auditor.get("/audit", params={"actor": "client:og_other", "limit": "2"})
    assert len(EVENT_LINK.findall(by_actor.text)) == 2
    older = re.search(r'href="/audit\?([^"]+)" id="next-page"', by_actor.text).group(1)
    second = auditor.get("/audit?" + older.replace("&amp;", "&"))
    assert len(EVENT_LINK.findall(second.text)) == 2
    assert set(EVENT_LINK.findall(second.text)).isdisjoint(EVENT_LINK.findall(by_actor.text))


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"since": "十月"}, "起始时间（since）"),
        ({"until": "2026-13-01"}, "截止时间（until）"),
        ({"since": "2026-11-01", "until": "2026-10-01"}, "不能晚于"),
        ({"outcome": "maybe"}, "结果（outcome）"),
        ({"grant_id": "x1"}, "授权编号（grant_id）"),
        ({"limit": "5000"}, "每页条数（limit）"),
        ({"cursor": "-3"}, "翻页位置（cursor）"),
    ],
)
def test_a_bad_filter_is_refused_in_chinese_naming_it(
    auditor: TestClient, params: dict, named: str
):
    answer = auditor.get("/audit", params=params)
    assert answer.status_code == 400
    assert named in answer.text
    assert 'class="event-link"' not in answer.text


def test_event_page_proof_and_checkpoint_from_the_browser(
    auditor: TestClient, engine: Engine, seqs: dict[str, list[int]]
):
    seq = seqs["target"][0]
    page = auditor.get(f"/audit/events/{seq}")
    [stored] = rows_of(engine, f"SELECT hash, prev_hash FROM audit_events WHERE seq = {seq}")
    assert stored[0] in page.text and stored[1] in page.text
    assert "一致" in page.text and "enterprise-credit" in page.text
    assert 'id="not-covered"' in page.text
    # not signed yet: the proof is refused in Chinese
    refused = auditor.get(f"/audit/events/{seq}/proof")
    assert refused.status_code == 400 and "尚未被签名检查点覆盖" in refused.text
    # the sign-now form without its token changes nothing
    before = count(engine, "SELECT count(*) FROM audit_checkpoints")
    forged = auditor.post("/audit/checkpoint", data={"seq": str(seq), "csrf_token": "forged"})
    assert forged.status_code == 403 and "csrf_token" in forged.text
    other_site = auditor.post(
        "/audit/checkpoint",
        data={"seq": str(seq), "csrf_token": csrf_of(auditor, f"/audit/events/{seq}")},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert count(engine, "SELECT count(*) FROM audit_checkpoints") == before
    signed = auditor.post(
        "/audit/checkpoint",
        data={"seq": str(seq), "csrf_token": csrf_of(auditor, f"/audit/events/{seq}")},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == f"/audit/events/{seq}?signed=1"
    assert count(engine, "SELECT count(*) FROM audit_checkpoints") == before + 1
    page = auditor.get(signed.headers["location"])
    assert 'id="proof-download"' in page.text and 'id="signed-notice"' in page.text
    proof = auditor.get(f"/audit/events/{seq}/proof")
    assert proof.status_code == 200
    assert proof.headers["content-disposition"] == f'attachment; filename="audit-proof-{seq}.json"'
    document = proof.json()
    key = load_public_key(document["public_key"].encode())
    assert check_proof(document, key) is None
    assert document["event"]["resource"] == "datasets/enterprise-credit"
    # the proof is checked against the key the verify page publishes
    verify_page = auditor.get("/audit/verify")
    assert document["checkpoint"]["key_id"] in verify_page.text
    unknown = auditor.get("/audit/events/999999")
    assert unknown.status_code == 404 and "不存在" in unknown.text
    assert auditor.get("/audit/events/abc").status_code == 404


def test_verify_from_the_browser_names_the_first_bad_event(auditor: TestClient, engine: Engine):
    auditor.post("/audit/checkpoint", data={"csrf_token": csrf_of(auditor, "/audit/verify")})
    page = auditor.get("/audit/verify", params={"run": "1"})
    assert "校验通过" in page.text and 'id="key-fingerprint"' in page.text
    tamper(engine, 5, row_count=4000)
    page = auditor.get("/audit/verify", params={"run": "1"})
    assert "校验失败" in page.text and "第一个有问题的事件是第 5 个" in page.text
    actions = [
        r[0]
        for r in rows_of(engine, "SELECT action FROM audit_events WHERE actor = 'user:auditor-web'")
    ]
    assert actions.count("audit.verify") == 2 and "audit.checkpoint" in actions


def test_charts_carry_the_stats_figures_and_the_events_behind_each_flag(
    auditor: TestClient, engine: Engine
):
    page = auditor.get("/audit/charts", params={"since": "2026-10-01", "until": "2026-10-31"})
    assert page.status_code == 200
    assert '<script src="/static/portal/vendor/echarts/echarts.min.js"></script>' in page.text
    data = json.loads(CHART_DATA.search(page.text).group(1))
    assert len(data["days"]) == 31
    day = data["days"].index("2026-10-05")
    assert data["per_day"]["allowed"][day] == 4
    assert data["per_day"]["denied"][data["days"].index("2026-10-21")] == 25
    assert data["top_datasets"][0] == {"name": "enterprise-credit", "value": 31}
    assert {"name": "og_bank", "value": 2 * (2 * 40 + 7)} in data["rows_per_app"]
    assert data["denials"] == [{"name": "grant_required", "value": 25}]
    flag = next(a for a in data["anomalies"] if a["kind"] == "denial_burst")
    assert "client:og_probe" in flag["text"]
    behind = auditor.get(flag["events"])
    assert len(EVENT_LINK.findall(behind.text)) == 25
    bad = auditor.get("/audit/charts", params={"since": "2024-01-01", "until": "2026-10-31"})
    assert bad.status_code == 400 and "最长 366 天" in bad.text


def test_export_as_signed_bundle_and_as_csv(auditor: TestClient, engine: Engine):
    bundle = auditor.get(
        "/audit/export/bundle", params={"since": "2026-10-01", "until": "2026-10-31"}
    )
    assert bundle.status_code == 200
    lines = bundle.content.splitlines(keepends=True)
    manifest = orjson.loads(lines[-1])["manifest"]
    assert manifest["count"] == 8 + 25 + 1
    key = load_public_key(auditor.get("/api/v1/audit/public-key").content)
    assert verify_bundle(lines, key).ok
    answer = auditor.get("/audit/export/csv", params={"since": "2026-10-01", "until": "2026-10-31"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][0] == "序号（seq）" and rows[0][-1] == "事件哈希（hash）"
    assert len(rows) == 1 + 34
    purpose = rows[0].index("用途（purpose）")
    assert any(r[purpose] == '\'=HYPERLINK("http://evil")' for r in rows[1:])
    completed = rows_of(
        engine,
        "SELECT row_count FROM audit_events WHERE action = 'audit.export.completed' "
        "AND actor = 'user:auditor-web' ORDER BY seq",
    )
    assert [r[0] for r in completed] == [34, 34]
    bad = auditor.get("/audit/export/csv", params={"since": "昨天"})
    assert bad.status_code == 400 and "起始时间（since）" in bad.text


def test_what_the_console_downloads_checks_offline(
    auditor: TestClient, settings, seqs: dict[str, list[int]], tmp_path: Path
):
    """The proof and the bundle, checked by `opengate audit verify-proof` / `verify-bundle`
    with the published key only (no database: the commands run from an empty folder)."""
    seq = seqs["target"][1]
    auditor.post("/audit/checkpoint", data={"csrf_token": csrf_of(auditor, "/audit/verify")})
    (tmp_path / "key.pem").write_bytes(auditor.get("/api/v1/audit/public-key").content)
    (tmp_path / "proof.json").write_bytes(auditor.get(f"/audit/events/{seq}/proof").content)
    bundle = auditor.get(
        "/audit/export/bundle", params={"since": "2026-10-01", "until": "2026-10-31"}
    )
    (tmp_path / "bundle.jsonl").write_bytes(bundle.content)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    offline = settings.model_copy(update={"database_url": "sqlite:///nowhere/none.db"})
    checked = opengate(
        "audit",
        "verify-proof",
        str(tmp_path / "proof.json"),
        "--public-key",
        str(tmp_path / "key.pem"),
        settings=offline,
        cwd=empty,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"ok: event {seq} is in the tree of")
    bundle_check = opengate(
        "audit",
        "verify-bundle",
        str(tmp_path / "bundle.jsonl"),
        "--public-key",
        str(tmp_path / "key.pem"),
        settings=offline,
        cwd=empty,
    )
    assert bundle_check.returncode == 0 and bundle_check.stdout.startswith("ok: 34 events")
    # a proof changed on its way (more rows than were served) is refused
    document = json.loads((tmp_path / "proof.json").read_text())
    document["event"]["row_count"] = 4000
    (tmp_path / "proof.json").write_text(json.dumps(document))
    refused = opengate(
        "audit",
        "verify-proof",
        str(tmp_path / "proof.json"),
        "--public-key",
        str(tmp_path / "key.pem"),
        settings=offline,
        cwd=empty,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"FAILED: event {seq} does not match its hash"
    assert list(empty.iterdir()) == []
