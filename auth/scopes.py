"""OAuth scopes: what a client may ask for, and what a token's scope lets it read.

    data:read                  every dataset, every mode (within the app's grants)
    dataset:<id>               one dataset, every mode
    dataset:<id>:<mode>        one dataset, one mode (records, aggregate, verify)
    dataset:<id>:self          a person's own rows of one dataset (authorization_code only)

`user` is the scope of sign-in tokens (`/auth/login`, `opengate users token`); it is never
issued at `/oauth/token`. Anything else is `invalid_scope`, and nothing is issued.
docs/contract-oauth.md is the contract; the catalog tells which datasets exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from authlib.oauth2.rfc6749.errors import InvalidScopeError

from kernel.problems import Problem

APP_SCOPE = "data:read"
SELF = "self"
MODES = ("records", "aggregate", "verify", "call")  # call: an interface service
# The width of the stored scope columns (codes, refresh tokens, consents).
MAX_SCOPE_CHARS = 200
MAX_SCOPES = 16
SUPPORTED = "data:read, dataset:<id>, dataset:<id>:<records|aggregate|verify>, dataset:<id>:self"


@dataclass(frozen=True, slots=True)
class ScopeTarget:
    """What the catalog says about the dataset a scope names."""

    title: str
    open_type: str  # "unconditional" | "conditional" (closed datasets are not targets)
    personal: bool  # has a subject key: a person may authorize reading their own rows
    # (name, title) of every field, for the consent page's list of what the app will see
    fields: tuple[tuple[str, str], ...] = ()


DatasetLookup = Callable[[str], ScopeTarget | None]


@dataclass(frozen=True, slots=True)
class Scope:
    dataset: str | None  # None: every dataset
    mode: str | None  # None: every mode; "self": a person's own rows

    @property
    def personal(self) -> bool:
        return self.mode == SELF


class ScopeError(InvalidScopeError):
    """`invalid_scope` (RFC 6749 §5.2) with an ASCII `error_description` (the RFC allows
    nothing else) and the Chinese `detail` the gateway's answers carry."""

    def __init__(self, description: str, detail: str) -> None:
        super().__init__(description=description)
        self.detail = detail

    def get_body(self) -> list[tuple[str, str]]:
        body = super().get_body()
        # A redirect carries the RFC's members only; a JSON answer the Chinese detail too.
        return body if self.redirect_uri else [*body, ("detail", self.detail)]


def parse(text: str) -> Scope | None:
    if text == APP_SCOPE:
        return Scope(None, None)
    parts = text.split(":")
    if parts[0] != "dataset" or len(parts) not in (2, 3) or not parts[1]:
        return None
    mode = parts[2] if len(parts) == 3 else None
    if mode is not None and mode not in (*MODES, SELF):
        return None
    return Scope(parts[1], mode)


def _shown(text: str) -> str:
    # Echo at most a short, printable ASCII prefix of what the client sent.
    cut = "".join(ch if 32 < ord(ch) < 127 and ch not in '"\\' else "?" for ch in text[:64])
    return cut + ("..." if len(text) > 64 else "")


def _split(requested: str | None) -> list[str]:
    text = requested or ""
    if len(text) > MAX_SCOPE_CHARS:
        raise ScopeError(
            f"scope is longer than {MAX_SCOPE_CHARS} characters",
            f"scope 过长（超过 {MAX_SCOPE_CHARS} 个字符），未签发任何令牌",
        )
    items = list(dict.fromkeys(text.split()))
    if len(items) > MAX_SCOPES:
        raise ScopeError(
            f"at most {MAX_SCOPES} scopes", f"scope 最多 {MAX_SCOPES} 项，未签发任何令牌"
        )
    return items


def _known(item: str, lookup: DatasetLookup) -> tuple[Scope, ScopeTarget | None]:
    scope = parse(item)
    if scope is None:
        raise ScopeError(
            f"unknown scope '{_shown(item)}'; supported: {SUPPORTED}",
            f"不支持的 scope：{_shown(item)}（支持 {SUPPORTED}）",
        )
    if scope.dataset is None:
        return scope, None
    target = lookup(scope.dataset)
    if target is None:
        raise ScopeError(
            f"scope '{_shown(item)}' names no published dataset",
            f"scope {_shown(item)} 指向的数据集不存在",
        )
    return scope, target


def app_scope(requested: str | None, lookup: DatasetLookup) -> str:
    """The scope a client-credentials token gets: what was asked, checked, or `data:read`."""
    items = _split(requested)
    if not items:
        return APP_SCOPE
    for item in items:
        scope, _target = _known(item, lookup)
        if scope.personal:
            raise ScopeError(
                "dataset:<id>:self needs a person's consent (authorization_code)",
                "scope dataset:<id>:self 须由本人通过授权码流程同意，不能以客户端凭证获取",
            )
    return " ".join(items)


@dataclass(frozen=True, slots=True)
class PersonRequest:
    """An authorization request's scopes, checked: at most one personal dataset (the
    consent's), and any number of unconditional datasets."""

    scope: str
    personal: str | None  # the dataset of the `:self` scope
    titles: dict[str, str]  # dataset id → title, in request order

    @property
    def needs_purpose(self) -> bool:
        return self.personal is not None


def person_scope(requested: str | None, lookup: DatasetLookup) -> PersonRequest:
    items = _split(requested)
    if not items:
        raise ScopeError(
            "scope is required: dataset:<id>:self or dataset:<id> of an open dataset",
            "缺少 scope：个人授权须为 dataset:<数据集>:self，或无条件开放数据集的 dataset:<数据集>",
        )
    personal: str | None = None
    titles: dict[str, str] = {}
    for item in items:
        scope, target = _known(item, lookup)
        if scope.dataset is None or target is None:
            raise ScopeError(
                "data:read is for client credentials, not for a person's authorization",
                "scope data:read 仅用于客户端凭证，个人授权请指定数据集",
            )
        if scope.personal:
            if not (target.personal and target.open_type == "conditional"):
                raise ScopeError(
                    f"dataset '{scope.dataset}' does not support personal authorization",
                    f"数据集 {scope.dataset} 不支持个人授权",
                )
            if personal is not None and personal != scope.dataset:
                raise ScopeError(
                    "one personal dataset per authorization",
                    "一次个人授权的 scope 只能包含一个 dataset:<数据集>:self",
                )
            personal = scope.dataset
        elif target.open_type != "unconditional":
            raise ScopeError(
                f"dataset '{scope.dataset}' is conditional: ask for dataset:<id>:self, "
                "or apply for a grant for the app",
                f"数据集 {scope.dataset} 为有条件开放数据：请申请 dataset:{scope.dataset}:self"
                "（本人数据），或为应用申请授权",
            )
        titles[scope.dataset] = target.title
    return PersonRequest(" ".join(items), personal, titles)


def covers(scopes: Iterable[str], dataset_id: str, mode: str) -> bool:
    """Whether a token's scope lets it read `dataset_id` in `mode` (records also serves
    /records/{pk} and /export; a policy answer lists the modes that are covered)."""
    wanted = {APP_SCOPE, f"dataset:{dataset_id}", f"dataset:{dataset_id}:{mode}"}
    if mode == "records":
        wanted.add(f"dataset:{dataset_id}:{SELF}")
    return not wanted.isdisjoint(scopes)


def insufficient_scope(dataset_id: str, mode: str) -> Problem:
    """RFC 6750 §3.1: 403 with the scope that would do in the challenge."""
    needed = f"dataset:{dataset_id}:{mode}"
    return Problem(
        403,
        "insufficient_scope",
        f"访问令牌的 scope 不包含数据集 {dataset_id} 的 {mode} 访问（需要 data:read、"
        f"dataset:{dataset_id} 或 {needed}）",
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="opengate", error="insufficient_scope", scope="{needed}"'
            )
        },
    )
