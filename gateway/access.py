"""From a request to a decision: who is calling (Caller), which grant applies (read from
the database on every request, so a revocation or expiry acts on the very next one), and
the compiled transforms of a plan."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request

from auth.models import Consent, User
from auth.principal import principal_of
from auth.scopes import covers, insufficient_scope
from catalog.hosted import HostedDataset
from kernel.clock import aware, utcnow
from kernel.problems import Problem
from policies.compiled import compile_transform, map_columns
from policies.decide import Caller, GrantTerms, Plan, decide
from policies.grants import active_grant
from policies.pseudonyms import derive_app_key


class AccessResolver:
    def __init__(self, engine: Engine, master_key: bytes) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._master = master_key
        self._app_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def caller(self, request: Request, session: Session | None = None) -> Caller:
        principal = principal_of(request)
        if principal is None:
            return Caller("anonymous")
        if principal.kind != "person":
            return Caller(principal.kind, role=principal.role, client_id=principal.client_id)
        with Session(self.engine) as s:
            consent = s.get(Consent, principal.consent_id)
            user = s.get(User, principal.user_id)
        if (
            consent is None
            or user is None
            or consent.withdrawn_at is not None
            or aware(consent.expires_at) <= utcnow()
        ):
            raise Problem(403, "forbidden", "个人授权已撤回或已过期")
        return Caller(
            "person",
            client_id=principal.client_id,
            subject_hmac=user.identity_hmac,
            # "": a consent to open data only, which covers nobody's own rows
            consent_dataset=consent.dataset_id or None,
        )

    def grant_terms(self, caller: Caller, dataset_id: str) -> GrantTerms | None:
        if caller.kind != "app" or caller.client_id is None:
            return None
        with Session(self.engine) as session:
            row = active_grant(session, client_id=caller.client_id, dataset_id=dataset_id)
        if row is None:
            return None
        return GrantTerms(
            id=row.id,
            version=row.version,
            purpose=row.purpose,  # type: ignore[arg-type]
            modes=tuple(row.modes),
            fields=tuple(row.fields) if row.fields is not None else None,
            transforms=dict(row.transforms),
            row_filter=dict(row.row_filter),
            quotas=dict(row.quotas),
            k=row.k,
            epsilon=row.epsilon,
            epsilon_spent=row.epsilon_spent,
            epsilon_floor=row.epsilon_floor,
            epsilon_ceiling=row.epsilon_ceiling,
        )

    def plan(self, request: Request, hosted: HostedDataset, mode: str) -> Plan:
        """The decision for this request (raises the denial as a Problem)."""
        principal = principal_of(request)
        if hosted.open_type == "unconditional" and principal is None:
            return decide(
                caller=Caller("anonymous"), hosted=hosted, mode=mode, dialect=self.dialect
            )
        # An OAuth token reads only what its scope covers (docs/contract-oauth.md); a
        # sign-in token (scope `user`) is the account's own, governed by its role. A
        # closed dataset is not found whatever the scope says.
        if (
            principal is not None
            and principal.kind != "user"
            and hosted.open_type != "closed"
            and not covers(principal.scopes, hosted.id, mode)
        ):
            raise insufficient_scope(hosted.id, mode)
        caller = self.caller(request)
        grant = None
        if hosted.open_type == "conditional":
            grant = self.grant_terms(caller, hosted.id)
        return decide(caller=caller, hosted=hosted, mode=mode, grant=grant, dialect=self.dialect)

    def app_key(self, client_id: str) -> bytes:
        key = self._app_keys.get(client_id)
        if key is None:
            key = derive_app_key(self._master, client_id)
            with self._lock:
                self._app_keys[client_id] = key
        return key

    def row_transformer(
        self, plan: Plan, hosted: HostedDataset, names: Sequence[str]
    ) -> Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]] | None:
        """A function masking a batch of rows of `names` (a column at a time, see
        `map_columns`), or None when all are clear."""
        steps = []
        for i, name in enumerate(names):
            spec = plan.transform_of(name)
            if spec == "clear":
                continue
            key = self.app_key(plan.client_id) if spec == "pseudonym" and plan.client_id else None
            steps.append((i, compile_transform(spec, key=key, pii=hosted.by_name[name].pii)))
        if not steps:
            return None
        return partial(map_columns, functions=steps)
