"""Every route says who may call it: no route is public by accident.

A route is either in PUBLIC (deliberately open: catalog, open data, OAuth endpoints that
authenticate their own callers, probes, docs) or depends on `require_role(...)`,
whose required roles the dependency carries.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from starlette.routing import Mount, Route

from gateway.app import create_app
from gateway.settings import Settings

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # Prometheus; behind OPENGATE_METRICS_TOKEN when set
    ("GET", "/openapi.json"),
    ("GET", "/api/v1/datasets"),
    ("GET", "/api/v1/datasets/{dataset_id}"),
    ("GET", "/api/v1/catalog.jsonld"),
    ("GET", "/api/v1/catalog"),  # DCAT-AP by content negotiation (docs/contract-dcat.md)
    ("GET", "/api/v1/themes"),  # the SKOS concept scheme dcat:theme points into
    # data routes decide per dataset: open data needs no token, the rest is refused by plan
    ("GET", "/api/v1/datasets/{dataset_id}/records"),
    ("GET", "/api/v1/datasets/{dataset_id}/records/{key}"),
    ("GET", "/api/v1/datasets/{dataset_id}/export"),
    ("GET", "/api/v1/datasets/{dataset_id}/aggregate"),
    ("POST", "/api/v1/datasets/{dataset_id}/verify"),
    ("GET", "/api/v1/datasets/{dataset_id}/policy"),
    ("POST", "/api/v1/services/{service_id}/call"),  # decided per service, as the above
    # the CKAN Action API (contract §11): catalog reads; datastore_search decided per
    # dataset by the same door as /records
    *(
        (method, f"{prefix}/{tail}")
        for method in ("GET", "POST")
        for prefix in ("/api/3/action", "/api/action")
        for tail in ("datastore_search", "{action}")
    ),
    ("GET", "/api/v1/services"),
    ("GET", "/api/v1/services/{service_id}"),
    # OAuth endpoints authenticate the client or the person themselves
    ("POST", "/oauth/token"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/authorize"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    # the identity provider sends the person back here; the state says whose sign-in it is
    ("GET", "/auth/identity/callback"),
    # anyone may check a checkpoint or an export against the published key
    ("GET", "/api/v1/audit/public-key"),
    # participation (issue 15): anyone may report an error (rate limited) and read
    # demands and the cockpit's totals
    ("POST", "/api/v1/datasets/{dataset_id}/feedback"),
    ("GET", "/api/v1/demands"),
    ("GET", "/api/v1/demands/{demand_id}"),
    ("GET", "/api/v1/stats/overview"),
    # authorized operation (issue 17): the public registry and the yearly disclosure;
    # usage answers an app token only (the route itself refuses anything else)
    ("GET", "/api/v1/zones"),
    ("GET", "/api/v1/scenarios"),
    ("GET", "/api/v1/products"),
    ("GET", "/api/v1/usage"),
}

# HTML pages (issue 15) read the web session (portal/session.py), never a bearer token:
# "public" pages answer everyone; "session" pages send the anonymous to /login. Every POST
# among them checks its csrf_token first (tests/portal/test_forms.py and the console's).
WEB_PAGES = {
    ("GET", "/docs"): "public",
    ("GET", "/docs/init.js"): "public",
    ("GET", "/redoc"): "public",
    ("GET", "/"): "public",
    ("GET", "/datasets"): "public",
    ("GET", "/datasets/{dataset_id}"): "public",
    ("POST", "/datasets/{dataset_id}/feedback"): "public",
    ("GET", "/cockpit"): "public",
    ("GET", "/zones"): "public",
    ("GET", "/zones/{zone_id}"): "public",
    ("GET", "/products"): "public",
    ("GET", "/demands"): "public",
    ("POST", "/demands"): "session",
    ("POST", "/demands/{demand_id}/second"): "session",
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("GET", "/register"): "public",
    ("POST", "/register"): "public",
    ("GET", "/logout"): "public",
    ("POST", "/logout"): "public",
    ("GET", "/console"): "session",
    ("GET", "/console/apps"): "session",
    ("POST", "/console/apps"): "session",
    ("POST", "/console/apps/{client_id}/rotate"): "session",
    ("POST", "/console/apps/{client_id}/keys"): "session",
    ("GET", "/console/apply"): "session",
    ("POST", "/console/applications"): "session",
    ("GET", "/console/applications"): "session",
    ("GET", "/console/grants"): "session",
    ("GET", "/console/usage"): "session",
    ("GET", "/console/feedback"): "session",
    ("GET", "/console/demands"): "session",
    ("GET", "/me/consents"): "session",
    ("POST", "/me/consents/{consent_id}/withdraw"): "session",
    # the auditor console (auditor accounts only; tests/portal/test_audit_console.py walks
    # the roles)
    ("GET", "/audit"): "session",
    ("GET", "/audit/events/{seq}"): "session",
    ("GET", "/audit/events/{seq}/proof"): "session",
    ("POST", "/audit/checkpoint"): "session",
    ("GET", "/audit/verify"): "session",
    ("GET", "/audit/charts"): "session",
    ("GET", "/audit/export"): "session",
    ("GET", "/audit/export/bundle"): "session",
    ("GET", "/audit/export/csv"): "session",
    ("GET", "/audit/reconciliation"): "session",
    # the administrator console and the system page (issue 16): session pages whose role
    # (data_admin, sysadmin) the page checks; tests/portal/test_admin_roles.py walks them
    ("GET", "/admin/system"): "session",
    ("POST", "/admin/system/users/{username}/role"): "session",
    ("POST", "/admin/system/users/{username}/disable"): "session",
    ("POST", "/admin/system/users/{username}/enable"): "session",
    ("GET", "/admin/grants"): "session",
    ("POST", "/admin/grants/{grant_id}/revoke"): "session",
    ("GET", "/admin/grants/new"): "session",
    ("POST", "/admin/grants/new/preview"): "session",
    ("POST", "/admin/grants/new"): "session",
    ("GET", "/admin"): "session",
    ("GET", "/admin/applications"): "session",
    ("GET", "/admin/applications/{application_id}"): "session",
    ("POST", "/admin/applications/{application_id}/preview"): "session",
    ("POST", "/admin/applications/{application_id}/approve"): "session",
    ("POST", "/admin/applications/{application_id}/reject"): "session",
    ("GET", "/admin/datasets"): "session",
    ("GET", "/admin/datasets/upload"): "session",
    ("POST", "/admin/datasets/upload"): "session",
    ("GET", "/admin/usage"): "session",
    ("GET", "/admin/datasets/{dataset_id}"): "session",
    ("GET", "/admin/feedback"): "session",
    ("GET", "/admin/demands"): "session",
    ("POST", "/admin/feedback/{feedback_id}/accept"): "session",
    ("POST", "/admin/feedback/{feedback_id}/reject"): "session",
    ("POST", "/admin/feedback/{feedback_id}/fixed"): "session",
    ("POST", "/admin/demands/{demand_id}/answer"): "session",
    ("POST", "/admin/demands/{demand_id}/satisfy"): "session",
    ("POST", "/admin/demands/{demand_id}/decline"): "session",
    # 授权运营 in the administrator console and 用量与费用 in the developer center (issue 17);
    # tests/portal/test_operation_console.py walks their roles
    ("GET", "/admin/operators"): "session",
    ("POST", "/admin/operators"): "session",
    ("POST", "/admin/operators/{operator_id}/apps"): "session",
    ("GET", "/admin/agreements"): "session",
    ("POST", "/admin/agreements"): "session",
    ("POST", "/admin/agreements/{agreement_id}/status"): "session",
    ("GET", "/admin/products"): "session",
    ("POST", "/admin/products"): "session",
    ("POST", "/admin/products/{product_id}/price"): "session",
    ("GET", "/admin/scenarios"): "session",
    ("POST", "/admin/scenarios/{scenario_id}/approve"): "session",
    ("GET", "/admin/statements"): "session",
    ("GET", "/admin/statements/{month}/csv"): "session",
    ("POST", "/admin/statements/{month}/issue"): "session",
    ("GET", "/admin/statements/{month}/print"): "session",
    ("GET", "/console/fees"): "session",
    ("GET", "/console/fees/csv"): "session",
}

EXPECTED_ROLES = {
    ("GET", "/api/v1/audit/events"): {"auditor"},
    ("GET", "/api/v1/audit/events/{seq}"): {"auditor"},
    ("GET", "/api/v1/audit/verify"): {"auditor"},
    ("GET", "/api/v1/audit/checkpoints"): {"auditor"},
    ("GET", "/api/v1/audit/events/{seq}/proof"): {"auditor"},
    ("GET", "/api/v1/audit/export"): {"auditor"},
    ("GET", "/api/v1/audit/stats"): {"auditor"},
    ("GET", "/api/v1/me"): {"developer", "data_admin", "auditor", "sysadmin"},
    ("POST", "/auth/identity/start"): {"developer"},
    ("POST", "/api/v1/admin/users/{username}/disable"): {"sysadmin"},
    ("POST", "/api/v1/admin/users/{username}/role"): {"sysadmin"},
    ("POST", "/api/v1/admin/apps/{client_id}/disable"): {"sysadmin"},
    ("GET", "/api/v1/me/consents"): {"developer"},
    ("POST", "/api/v1/me/consents/{consent_id}/withdraw"): {"developer"},
    ("POST", "/api/v1/apps"): {"developer"},
    ("GET", "/api/v1/apps"): {"developer"},
    ("POST", "/api/v1/apps/{client_id}/rotate-secret"): {"developer"},
    ("POST", "/api/v1/apps/{client_id}/signing-secret"): {"developer"},
    ("POST", "/api/v1/applications"): {"developer"},
    ("GET", "/api/v1/applications"): {"developer"},
    ("GET", "/api/v1/applications/{application_id}"): {"developer"},
    ("GET", "/api/v1/admin/applications"): {"data_admin"},
    ("POST", "/api/v1/admin/applications/{application_id}/approve"): {"data_admin"},
    ("POST", "/api/v1/admin/applications/{application_id}/reject"): {"data_admin"},
    ("POST", "/api/v1/admin/grants"): {"data_admin"},
    ("GET", "/api/v1/admin/grants"): {"data_admin"},
    ("POST", "/api/v1/admin/grants/{grant_id}/revoke"): {"data_admin"},
    ("POST", "/api/v1/admin/grants/{grant_id}/reinstate"): {"data_admin"},
    ("GET", "/api/v1/admin/notices"): {"data_admin"},
    ("POST", "/api/v1/admin/notices/{notice_id}/read"): {"data_admin"},
    ("GET", "/api/v1/me/feedback"): {"developer", "data_admin", "auditor", "sysadmin"},
    ("POST", "/api/v1/demands"): {"developer", "data_admin", "auditor", "sysadmin"},
    ("POST", "/api/v1/demands/{demand_id}/second"): {
        "developer",
        "data_admin",
        "auditor",
        "sysadmin",
    },
    ("GET", "/api/v1/me/demands"): {"developer", "data_admin", "auditor", "sysadmin"},
    ("GET", "/api/v1/admin/feedback"): {"data_admin"},
    ("POST", "/api/v1/admin/feedback/{feedback_id}/accept"): {"data_admin"},
    ("POST", "/api/v1/admin/feedback/{feedback_id}/reject"): {"data_admin"},
    ("POST", "/api/v1/admin/feedback/{feedback_id}/fixed"): {"data_admin"},
    ("POST", "/api/v1/admin/demands/{demand_id}/answer"): {"data_admin"},
    ("POST", "/api/v1/admin/demands/{demand_id}/satisfy"): {"data_admin"},
    ("POST", "/api/v1/admin/demands/{demand_id}/decline"): {"data_admin"},
    # authorized operation (issue 17)
    ("POST", "/api/v1/scenarios"): {"developer", "data_admin", "auditor", "sysadmin"},
    ("POST", "/api/v1/admin/zones"): {"data_admin"},
    ("POST", "/api/v1/admin/operators"): {"data_admin"},
    ("POST", "/api/v1/admin/operators/{operator_id}/apps"): {"data_admin"},
    ("POST", "/api/v1/admin/agreements"): {"data_admin"},
    ("GET", "/api/v1/admin/agreements"): {"data_admin"},
    ("POST", "/api/v1/admin/agreements/{agreement_id}/activate"): {"data_admin"},
    ("POST", "/api/v1/admin/agreements/{agreement_id}/suspend"): {"data_admin"},
    ("POST", "/api/v1/admin/agreements/{agreement_id}/terminate"): {"data_admin"},
    ("POST", "/api/v1/admin/scenarios/{scenario_id}/approve"): {"data_admin"},
    ("POST", "/api/v1/admin/products"): {"data_admin"},
    ("POST", "/api/v1/admin/products/{product_id}/price"): {"data_admin"},
    ("POST", "/api/v1/admin/grants/{grant_id}/operation"): {"data_admin"},
    ("GET", "/api/v1/admin/statements"): {"data_admin"},
    ("POST", "/api/v1/admin/statements/{month}/issue"): {"data_admin"},
    ("GET", "/api/v1/audit/reconciliation"): {"auditor"},
}


def walk(routes: list) -> Iterator[APIRoute | Route | Mount]:
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from walk(original.routes)
        else:
            yield route


def required_roles(dependant: Dependant) -> set[str]:
    roles: set[str] = set()
    for dep in dependant.dependencies:
        roles |= set(getattr(dep.call, "required_roles", ()))
        roles |= required_roles(dep)
    return roles


def test_every_route_names_its_required_role(engine: Engine, settings: Settings):
    app = create_app(settings, engine=engine)
    seen: set[tuple[str, str]] = set()
    for route in walk(app.router.routes):
        if isinstance(route, Mount):
            # static files of the offline docs and of the portal
            assert route.path in {"/docs-assets", "/redoc-assets", "/static/portal"}
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            key = (method, route.path)
            seen.add(key)
            roles = required_roles(route.dependant) if isinstance(route, APIRoute) else set()
            if key in WEB_PAGES:
                assert not roles, f"{key} is a web page: it reads the web session, not a token"
            elif key in PUBLIC:
                assert not roles, f"{key} is listed public but requires {roles}"
            else:
                assert roles, f"{key} is neither public nor guarded by a role"
                assert roles == EXPECTED_ROLES[key], f"{key}: {roles}"
    assert PUBLIC | set(EXPECTED_ROLES) | set(WEB_PAGES) == seen, "the lists must match the app"


def test_session_pages_send_the_anonymous_to_sign_in(client):
    for (method, path), guard in WEB_PAGES.items():
        if method != "GET" or "{" in path:
            continue
        answer = client.get(path, follow_redirects=False)
        if guard == "session":
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next="), path
        elif path != "/logout":  # nobody to sign out: sent home
            assert answer.status_code == 200, path


def test_guarded_routes_answer_401_then_403_then_let_the_right_role_in(client, engine):
    from tests.auth.helpers import PASSWORD, user

    tokens = {}
    for role in ("developer", "data_admin", "auditor", "sysadmin"):
        user(engine, f"role-{role}", role)
        tokens[role] = client.post(
            "/auth/login", json={"username": f"role-{role}", "password": PASSWORD}
        ).json()["access_token"]
    for (method, path), allowed in EXPECTED_ROLES.items():
        url = (
            path.replace("{consent_id}", "999")
            .replace("{client_id}", "og_none")
            .replace("{application_id}", "999")
            .replace("{grant_id}", "999")
            .replace("{username}", "nobody")
            .replace("{feedback_id}", "999")
            .replace("{demand_id}", "999")
        )
        anonymous = client.request(method, url, json={})
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        for role, token in tokens.items():
            answer = client.request(
                method, url, json={}, headers={"Authorization": f"Bearer {token}"}
            )
            if role in allowed:
                assert answer.status_code not in (401, 403), (method, path, role)
            else:
                assert answer.status_code == 403, (method, path, role)
