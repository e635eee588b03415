"""Each role's own console: where sign-in lands without `next`, and the console link the
site navigation shows a signed-in account (三员分立: each role has its own)."""

from __future__ import annotations

from auth.models import Role

# role → (navigation key, path, link text)
CONSOLES: dict[str, tuple[str, str, str]] = {
    Role.developer: ("console", "/console", "开发者中心"),
    Role.data_admin: ("admin", "/admin", "管理后台"),
    Role.auditor: ("audit", "/audit", "审计"),
    Role.sysadmin: ("admin", "/admin/system", "系统管理"),
}


def console_of(role: str) -> tuple[str, str, str]:
    """An unknown role falls back to the developer center, which refuses it in Chinese."""
    return CONSOLES.get(role, CONSOLES[Role.developer])


def home_of(role: str) -> str:
    return console_of(role)[1]
