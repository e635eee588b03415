"""The bare page a web form gets when it is refused before any route runs (CSRF, a sign-in
limit): no template, no session lookup, so it cannot fail in its turn."""

from __future__ import annotations

from html import escape


def refusal_page(message: str, *, title: str = "请求被拒绝") -> str:
    return (
        '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/static/portal/portal.css"></head>'
        f'<body><main class="wrap"><h1>{escape(title)}</h1>'
        f'<p class="notice error" role="alert">{escape(message)}</p>'
        '<p><a href="/">返回首页</a></p></main></body></html>'
    )
