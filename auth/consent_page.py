"""The consent page of personal authorization (个人授权), in Chinese, with no external
assets (no CDN: it must work on an offline government network)."""

from __future__ import annotations

from html import escape

# The consent page must never be framed (clickjacking a person's approval).
NO_FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}

STYLE = """
body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;background:#f4f6f9;
margin:0;padding:2rem;color:#1f2933}
main{max-width:32rem;margin:auto;background:#fff;border-radius:8px;padding:2rem;
box-shadow:0 1px 4px rgba(0,0,0,.1)}
h1{font-size:1.3rem;margin-top:0}dl{display:grid;grid-template-columns:6rem 1fr;gap:.4rem 1rem}
dt{color:#52606d}dd{margin:0;font-weight:600}label{display:block;margin-top:1rem}
input{width:100%;padding:.5rem;margin-top:.3rem;box-sizing:border-box}
.buttons{display:flex;gap:1rem;margin-top:1.5rem}button{flex:1;padding:.7rem;font-size:1rem;
border-radius:4px;border:1px solid #9aa5b1;background:#fff;cursor:pointer}
button[value=approve]{background:#1f6feb;color:#fff;border-color:#1f6feb}
.note{font-size:.85rem;color:#52606d}.error{color:#b42318}.ok{color:#067647}
"""


def consent_page(
    *,
    app_name: str,
    organization: str = "",
    datasets: list[tuple[str, str]],
    personal: str | None,
    fields: list[tuple[str, str]] | None = None,
    purpose: str,
    duration_days: int,
    hidden: list[tuple[str, str]],
    error: str | None = None,
    can_verify: bool = False,
) -> str:
    """`datasets`: (id, title) of every requested scope, shown by title; `personal`: the
    one whose own rows the person is asked to share (purpose, term and the fields the app
    will see, `fields` as (name, title), shown only then); `organization`: the app
    owner's, so the person knows who asks."""
    inputs = "\n".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in hidden
    )
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    rows = "\n".join(
        f"<dt>{'本人数据' if i == personal else '开放数据'}</dt><dd>{escape(title)}</dd>"
        for i, title in datasets
    )
    who = (
        f"<dt>申请单位</dt><dd>{escape(organization)}</dd>"
        if organization
        else "<dt>申请单位</dt><dd>（开发者未登记单位）</dd>"
    )
    if personal is not None:
        ask = "申请读取<strong>您本人</strong>在以下数据集中的记录："
        seen = "、".join(escape(title) for _name, title in fields or [])
        terms = (
            f"<dt>可见字段</dt><dd>{seen or '（无）'}</dd>\n"
            f"<dt>使用目的</dt><dd>{escape(purpose)}</dd>\n"
            f"<dt>授权期限</dt><dd>{duration_days} 天</dd>"
        )
        note = (
            "同意后，该应用只能看到与您本人身份证号对应的记录，看不到其他任何人的数据。"
            "您可随时在“我的授权”中撤回，撤回后立即失效。"
        )
    else:
        ask = "申请以您的名义读取以下无条件开放数据（不含任何个人数据）："
        terms = f"<dt>授权期限</dt><dd>{duration_days} 天</dd>"
        note = "您可随时在“我的授权”中撤回，撤回后立即失效。"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>个人数据授权</title><style>{STYLE}</style></head>
<body><main>
<h1>个人数据授权确认</h1>
<p>应用 <strong>{escape(app_name)}</strong>
{ask}</p>
<dl>
{who}
{rows}
{terms}
</dl>
<p class="note">{note}</p>
{problem}
<form method="post" action="/oauth/authorize">
{inputs}
<label>用户名<input name="username" autocomplete="username" required></label>
<label>密码<input name="password" type="password" autocomplete="current-password" required></label>
<div class="buttons">
<button type="submit" name="decision" value="deny">拒绝</button>
<button type="submit" name="decision" value="approve">同意授权</button>
</div>
{VERIFY_BUTTON if can_verify and personal is not None else ""}
</form>
</main></body></html>"""


# Shown when the installation trusts an identity provider: an account not yet verified signs
# in above, then proves who it is at the provider and comes back to this page.
VERIFY_BUTTON = """<p class="note">账号尚未实名核验？填写用户名和密码后可
<button type="submit" name="decision" value="verify">通过统一身份认证核验身份</button></p>"""


def message_page(title: str, message: str, *, ok: bool = False) -> str:
    css = "ok" if ok else "error"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head>
<body><main><h1>{escape(title)}</h1><p class="{css}">{escape(message)}</p></main></body></html>"""


def error_page(message: str) -> str:
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>授权请求无效</title>
<style>{STYLE}</style></head>
<body><main><h1>授权请求无效</h1><p class="error">{escape(message)}</p></main></body></html>"""
