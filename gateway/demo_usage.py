"""The demo's metered use this month: real calls through the gateway by the two demo apps
(credit assessment, priced; relief eligibility, free), so the usage ledger, the statement
preview, the developer's 用量与费用 and the auditor's reconciliation have figures from the
first start. Idempotent: nothing is called once the month has use."""

from __future__ import annotations

import warnings

from gateway.app import create_app
from gateway.settings import Settings
from operation.statements import current_month, ledger_units, month_of

# (path and query, times): a credit system pages through insured people, groups them by
# district; the relief check reads a few pages.
CREDIT_CALLS = (
    ("/api/v1/datasets/social-insurance/records?limit=100", 24),
    ("/api/v1/datasets/social-insurance/records?limit=20&district=黄岛区", 12),
    ("/api/v1/datasets/social-insurance/aggregate?group_by=district&metrics=count", 4),
)
WELFARE_CALLS = (("/api/v1/datasets/social-insurance/records?limit=50", 9),)


def ensure_demo_usage(settings: Settings, credit: dict[str, str], welfare: dict[str, str]) -> int:
    """Make the calls unless this month already has use by the demo apps; how many."""
    app = create_app(settings)
    engine = app.state.engine
    first, after = month_of(current_month())
    with engine.connect() as conn:
        used = {u.client_id for u in ledger_units(conn, first, after)}
    if {credit["client_id"], welfare["client_id"]} & used:
        return 0
    made = 0
    with warnings.catch_warnings():  # starlette's notice about httpx2, not the demo's news
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    # In process, through every middleware and the enforcement door, as a served call.
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for credentials, calls in ((credit, CREDIT_CALLS), (welfare, WELFARE_CALLS)):
            token = client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(credentials["client_id"], credentials["client_secret"]),
            ).json()["access_token"]
            for path, times in calls:
                for _ in range(times):
                    answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
                    if answer.status_code != 200:
                        raise RuntimeError(f"demo call {path}: {answer.status_code} {answer.text}")
                    made += 1
    return made  # the audit writer flushed when the client shut the app down
