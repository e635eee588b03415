"""What the consent page of personal authorization (个人授权) shows, and the renderer auth's
routes call to show it.

auth is a domain library: it decides what the person is asked, the web layer draws it. The
app factory gives `OAuthServices` and `IdentityServices` a `ConsentPages` (the portal's, on
its shared templates: the site layout, its stylesheet, no inline style or script, nothing
loaded from another host), so nothing here imports the portal or the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request

# The consent page must never be framed (clickjacking a person's approval); the security
# headers middleware says so for every page, and these routes say it themselves too.
NO_FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
INVALID_REQUEST = "授权请求无效"


@dataclass(frozen=True)
class ConsentView:
    """The consent form. `datasets`: (id, title) of every requested scope, shown by title;
    `personal`: the one whose own rows the person is asked to share (purpose, term and the
    fields the app will see, `fields` as (name, title), shown only then); `organization`:
    the app owner's, so the person knows who asks; `hidden`: the authorization request
    posted back and the form's csrf_token; `error`: why the last attempt was refused."""

    app_name: str
    organization: str
    datasets: list[tuple[str, str]]
    personal: str | None
    fields: list[tuple[str, str]]
    purpose: str
    duration_days: int
    hidden: list[tuple[str, str]]
    error: str | None = None
    can_verify: bool = False


class ConsentPages(Protocol):
    """The HTML of the consent flow's pages, in Chinese."""

    def consent(self, request: Request, view: ConsentView) -> str:
        """The consent form."""
        ...

    def message(self, request: Request, title: str, message: str, *, ok: bool = False) -> str:
        """A page that only says something: a refusal, an invalid request (`ok=False`), or
        the identity proofing's result."""
        ...
