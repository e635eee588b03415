"""Sign-in, registration and sign-out for people (`/login`, `/register`, `/logout`).

The web sign-in is the API's (auth/users.authenticate): the same per-(account, source)
slow-down, the same `login` window of the one sign-in limiter (`strict_limit("login")`),
the same `user.login` audit event. Registration takes the API's rules and its answer that
never says whether a name was taken (auth/views.register_developer).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth import users as user_service
from auth.strict_limits import strict_limit
from auth.views import REGISTERED, Registration, register_developer
from catalog.request_state import SessionDep
from kernel.problems import Problem
from portal.forms import CheckedForm, safe_next, see_other, text
from portal.homes import home_of
from portal.session import COOKIE, sessions_of, signed_in
from portal.templating import render

router = APIRouter(include_in_schema=False)

# Pydantic's messages are English; a person reads these instead, field by field.
REGISTRATION_ERRORS = {
    "username": "用户名需为 3–64 位字母、数字或 . _ -，以字母或数字开头",
    "password": f"密码至少 {user_service.MIN_PASSWORD} 位，最多 256 位",
    "email": "请填写有效的电子邮箱地址，例如 name@example.com",
    "organization": "所在单位不能超过 200 字",
}


def _client_ip(request: Request) -> str:
    # Worked out by the rate-limit middleware (trusted proxies only), else the socket peer.
    known = request.scope.get("state", {}).get("client_ip")
    return known or (request.client.host if request.client else "unknown")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    found = signed_in(request)
    if found is not None:
        return see_other(safe_next(next, home_of(found.user.role)))
    # No `next`: an empty one, so the sign-in lands on the account's own console.
    return render(request, "login.html", {"next": safe_next(next, "")}, section="login")


@router.post("/login", response_class=HTMLResponse)
@audited("user.login")
@strict_limit("login")
def login_submit(request: Request, form: CheckedForm, db: SessionDep) -> Response:
    username = text(form, "username", limit=64)
    password = form.get("password")
    target = safe_next(text(form, "next", limit=500), "")
    note(request, actor=f"user:{username}", detail={"via": "web"})
    if not username or not isinstance(password, str) or not password:
        return _login_again(request, username, target, "请填写用户名和密码", 400)
    try:
        user = user_service.authenticate(
            db, username=username, password=password[:256], ip=_client_ip(request)
        )
    except Problem as problem:
        page = _login_again(request, username, target, problem.detail, problem.status)
        page.headers.update(problem.headers)
        return page
    answer = see_other(target or home_of(user.role))
    sessions_of(request).start(db, user, answer)
    return answer


def _login_again(request: Request, username: str, target: str, error: str, status: int) -> Response:
    return render(
        request,
        "login.html",
        {"next": target, "username": username, "error": error},
        status_code=status,
        section="login",
    )


@router.get("/register", response_class=HTMLResponse)
def register_page(request: Request) -> Response:
    return render(request, "register.html", {"values": {}}, section="login")


@router.post("/register", response_class=HTMLResponse)
@audited("user.register")
def register_submit(request: Request, form: CheckedForm, db: SessionDep) -> Response:
    values = {name: text(form, name, limit=300) for name in ("username", "email", "organization")}

    def again(errors: list[str], status: int) -> Response:
        context = {"values": values, "errors": errors}
        return render(request, "register.html", context, status_code=status, section="login")

    if not request.app.state.settings.allow_registration:
        return again(["本平台未开放自助注册，请联系管理员"], 403)
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    if password != form.get("password2"):
        return again(["两次输入的密码不一致"], 400)
    try:
        body = Registration(password=password, **values)
    except ValidationError as exc:
        names = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
        return again([REGISTRATION_ERRORS.get(n, f"{n} 填写有误") for n in names], 400)
    try:
        register_developer(request, db, body)
    except Problem as problem:
        return again([problem.detail], problem.status)
    return render(request, "registered.html", {"username": body.username, "message": REGISTERED})


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request) -> Response:
    if signed_in(request) is None:
        return see_other("/")
    return render(request, "logout.html")


@router.post("/logout", response_class=HTMLResponse)
def logout_submit(request: Request, form: CheckedForm) -> Response:
    del form  # checked: a page of another site cannot sign a person out
    answer = see_other("/")
    sessions_of(request).end(request.cookies.get(COOKIE), answer)
    return answer
