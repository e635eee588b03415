"""Routes that check a credential mark themselves here, once: each request to them also
counts in a strict window per client address (`login`: every sign-in, through the API or
the consent page; `token`: the token endpoint). The gateway's rate limiter reads the mark
from the route; the window is `OPENGATE_RATE_LOGIN` / `OPENGATE_RATE_TOKEN`, in Redis when
one is configured, so it holds across every worker and host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

RULES = frozenset({"login", "token"})


def strict_limit(rule: str) -> Callable[[F], F]:
    if rule not in RULES:
        raise ValueError(f"unknown strict limit {rule!r}")

    def mark(endpoint: F) -> F:
        endpoint.strict_limit = rule  # type: ignore[attr-defined]
        return endpoint

    return mark


def strict_limit_of(endpoint: Any) -> str | None:
    return getattr(endpoint, "strict_limit", None)
