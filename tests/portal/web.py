"""Helpers of the portal tests: a form's csrf_token, a web sign-in, and the URLs of a page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.auth.helpers import PASSWORD
from tests.conftest import TestClient

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: TestClient, url: str) -> str:
    """The csrf_token of the form on that page, read as a browser gets it."""
    page = client.get(url)
    assert page.status_code == 200, page.text
    found = TOKEN.search(page.text)
    assert found, f"no csrf_token on {url}"
    return found.group(1)


def web_login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    token = csrf_of(client, "/login")
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert "og_session" in client.cookies


class Links(HTMLParser):
    """Every src and href of a page, and the inline style attributes (for url())."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action") and value is not None:
                self.urls.append(value)
            if name == "style" and value:
                self.styles.append(value)


def links_of(html: str) -> Links:
    parser = Links()
    parser.feed(html)
    return parser


CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")


def foreign(url: str) -> bool:
    """A URL that names another host (or a scheme that loads from elsewhere)."""
    url = url.strip()
    if url.startswith(("#", "data:")):
        return False
    return url.startswith("//") or bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url))
