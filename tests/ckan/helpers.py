"""What both CKAN test worlds do: sign in, an app token, a direct grant."""

from __future__ import annotations

from typing import Any

from tests.auth.helpers import PASSWORD


def tokens(http: Any, admin: str, reg: Any) -> dict[str, Any]:
    """The data_admin's headers and the app's bare token (`http`: httpx or TestClient)."""
    signed_in = http.post("/auth/login", json={"username": admin, "password": PASSWORD})
    token = http.post(
        "/oauth/token",
        auth=(reg.client_id, reg.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    return {
        "admin": {"Authorization": f"Bearer {signed_in.json()['access_token']}"},
        "token": token,
        "client_id": reg.client_id,
    }


def grant(http: Any, world: dict[str, Any], **terms: Any) -> None:
    """A direct grant of social-insurance records to the world's app."""
    body = {
        "client_id": world["client_id"],
        "dataset_id": "social-insurance",
        "purpose": "个人贷款授信评估",
        "modes": ["records"],
        **terms,
    }
    answer = http.post("/api/v1/admin/grants", json=body, headers=world["admin"])
    assert answer.status_code == 201, answer.text
