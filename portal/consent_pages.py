"""The OAuth consent page (个人授权) and the pages of its flow (an invalid request, a refused
form, the identity proofing's result) on the portal's shared templates. auth's routes call
them through `auth.consent_page.ConsentPages`; the app factory hands them this one."""

from __future__ import annotations

from starlette.requests import Request

from auth.consent_page import ConsentView
from portal.templating import page_text


class TemplateConsentPages:
    """`ConsentPages` on `portal/templates/oauth/`. Rendering looks the web session up (the
    site header names a signed-in account): call it from a worker thread."""

    def consent(self, request: Request, view: ConsentView) -> str:
        return page_text(request, "oauth/consent.html", {"view": view})

    def message(self, request: Request, title: str, message: str, *, ok: bool = False) -> str:
        return page_text(
            request, "oauth/message.html", {"title": title, "message": message, "ok": ok}
        )
