"""The one enforcement door: every channel that hands out data (the REST routes and the
dataset page's preview today; CKAN `datastore_search` and upstream interface services
next) passes here.

    enforcer.enforce(principal, dataset_id, mode, notes=…) -> Access      (raises Problem)
    access.fetch(params, format=…)        -> RecordsPage   records, one page
    access.fetch_window(params, offset=…) -> RecordsWindow records by offset (CKAN), a total
    access.fetch_one(key, fields, …)      -> OneRecord     one record by primary key
    access.export(params, format=…)       -> Export        every permitted row, in chunks
    access.aggregate(params)              -> dict          grouped counts/sums (k, ε)
    access.verify(match, request_id=…)    -> bool          yes/no
    enforcer.records(principal, id, params, …) = enforce(…, "records").fetch(…)
    enforcer.policy(principal, id, …)     -> dict          what the caller may do, and why

`enforce` takes the caller's `Principal` (or None), not a web request, so a channel that is
not a route can call it. It finds the published version, checks the token's scope and a
person's consent, reads the app's grant (on every request: a revocation, suspension or
expiry acts on the very next one, on every worker) and decides the `Plan`. The `Access`
then carries everything the request needs — the field check for filters and order, the
row filter, the compiled column masker, the quota reservation and its refund, the aggregate
rules — and writes the audit event's fields through its one `AuditNotes`: no channel writes
into the event by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.models import Consent, User
from auth.principal import Principal
from auth.scopes import covers, insufficient_scope
from catalog.aggregate import parse_aggregate_query, run_aggregate
from catalog.cursors import BoundCursors, CursorBox
from catalog.hosted import HostedCatalog, HostedDataset
from catalog.models import FieldType
from catalog.query import (
    MAX_VALUE_LENGTH,
    FieldAccess,
    RecordQuery,
    parse_key,
    parse_record_query,
)
from catalog.statements import (
    StatementCache,
    count_rows,
    fetch_one,
    fetch_page,
    stream_rows,
)
from catalog.values import parse_value, to_storage
from kernel.clock import aware, utcnow
from kernel.problems import Problem, invalid_parameter, not_found
from policies import aggregates, quotas
from policies.audit_notes import AuditNotes
from policies.compiled import compile_transform, map_columns
from policies.decide import Caller, GrantTerms, Plan, decide
from policies.grant_reads import GrantReader
from policies.grants import suspend as suspend_grant
from policies.models import GrantUsage
from policies.policy_document import policy_modes
from policies.pseudonyms import derive_app_key

Rows = Sequence[Sequence[Any]]
Masker = Callable[[Rows], Rows]
# Verify values that single out a person: calls naming one are limited per day.
IDENTIFYING = frozenset({"id_number", "phone", "bank_card", "email"})
SORTED = orjson.OPT_SORT_KEYS


def sees_closed(principal: Principal | None) -> bool:
    """Whether the caller sees closed datasets in the catalog (a data_admin's account)."""
    return principal is not None and principal.kind == "user" and principal.role == "data_admin"


def cursor_binding(principal: Principal | None, plan: Plan) -> str:
    """Whom a cursor belongs to: the caller (app, account or consent, anonymous) and the
    grant version that shaped the page, so it serves nobody else and no other terms."""
    if principal is None:
        caller = "anonymous"
    else:
        caller = (
            f"{principal.kind}:{principal.client_id or ''}:{principal.user_id or ''}:"
            f"{principal.consent_id or ''}"
        )
    if plan.grant is not None:
        caller += f"|grant:{plan.grant.id}.{plan.grant.version}"
    return caller


def key_not_permitted(hosted: HostedDataset) -> Problem:
    """`/records/{pk}` when the key is not clear to the caller: a 200/404 there would be
    an oracle for the hidden key, so it is refused like filtering on the key."""
    return Problem(
        403,
        "field_not_permitted",
        f"主键 {hosted.primary_key} 未以明文提供给调用方，不能按主键读取单条记录，"
        "请使用 records 查询",
        parameter="key",
    )


@dataclass(frozen=True, slots=True)
class RecordsPage:
    """One records page, masked; plain attributes, so rendering it calls nothing here."""

    hosted: HostedDataset
    names: tuple[str, ...]
    transforms: tuple[str, ...]
    rows: Rows
    next_cursor: str | None
    trimmed: bool  # cut to the day's remaining rows quota


@dataclass(frozen=True, slots=True)
class RecordsWindow:
    """Records by offset and limit (CKAN's `datastore_search`), masked, and how many rows
    the caller may see in all when asked."""

    hosted: HostedDataset
    names: tuple[str, ...]
    transforms: tuple[str, ...]
    rows: Rows
    total: int | None
    trimmed: bool


@dataclass(frozen=True, slots=True)
class OneRecord:
    hosted: HostedDataset
    names: tuple[str, ...]
    transforms: tuple[str, ...]
    row: Sequence[Any]


class StreamCount:
    """What a streamed export sent, for its completion event."""

    __slots__ = ("complete", "rows", "stopped")

    def __init__(self) -> None:
        self.rows = 0
        self.complete = False
        self.stopped: str | None = None  # why it ended early: the client stopped reading, left


class Enforcer:
    """Built once per process with the installation's keys; `enforce` per request."""

    def __init__(
        self,
        engine: Engine,
        catalog: HostedCatalog,
        *,
        pseudonym_master: bytes,
        digest_key: bytes,
        cursor_box: CursorBox,
        brake: Callable[[], quotas.VerifyBrake],
        export_chunk_rows: int = 2000,
        append_events: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.catalog = catalog
        self.digest_key = digest_key
        self.cursor_box = cursor_box
        self.brake = brake  # read per call: the installation's settings may change
        self.export_chunk_rows = export_chunk_rows
        self.statements = StatementCache(engine)
        self.append_events = append_events  # where a grant's automatic suspension is logged
        self._master = pseudonym_master
        self._app_keys: dict[str, bytes] = {}
        self.grants = GrantReader(engine)
        self._plans: dict[tuple[Any, ...], tuple[HostedDataset, Plan]] = {}
        self._maskers: dict[tuple[int, tuple[str, ...]], tuple[Plan, Masker | None]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """At shutdown: write the counts gathered in this process."""
        quotas.flush(self.engine)

    # -- the door ---------------------------------------------------------------------

    def enforce(
        self,
        principal: Principal | None,
        dataset_id: str,
        mode: str,
        *,
        notes: dict[str, Any] | None = None,
    ) -> Access:
        """The decision for this caller on this dataset in this mode, or its refusal
        raised as a Problem (404 for an unknown or closed dataset)."""
        hosted = self.catalog.get(dataset_id)
        if hosted is None:
            raise not_found(f"数据集 {dataset_id} 不存在")
        plan = self.plan(principal, hosted, mode)
        return Access(self, principal, hosted, plan, AuditNotes(self.digest_key, notes))

    def records(
        self,
        principal: Principal | None,
        dataset_id: str,
        params: Sequence[tuple[str, str]],
        *,
        format: str,
        notes: dict[str, Any] | None = None,
    ) -> RecordsPage:
        """A records page in one call (what a route and a page preview do)."""
        return self.enforce(principal, dataset_id, "records", notes=notes).fetch(
            params, format=format
        )

    def plan(self, principal: Principal | None, hosted: HostedDataset, mode: str) -> Plan:
        if hosted.open_type == "unconditional" and principal is None:
            return self._decided(Caller("anonymous"), hosted, mode, None, None)
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
        caller = self.caller(principal)
        read = None
        if hosted.open_type == "conditional" and caller.kind == "app" and caller.client_id:
            read = self.grants.read(caller.client_id, hosted.id)
        if read is None:
            return self._decided(caller, hosted, mode, None, None)
        return self._decided(caller, hosted, mode, *read)

    def _decided(
        self,
        caller: Caller,
        hosted: HostedDataset,
        mode: str,
        grant: GrantTerms | None,
        grant_row: tuple[Any, ...] | None,
    ) -> Plan:
        """`decide()`, kept for the same inputs: the same published version (the very
        object the catalog cache hands out), caller, mode and grant row read this
        request. A refusal is not kept; it is decided again."""
        key = (hosted.id, mode, caller, grant_row)
        kept = self._plans.get(key)
        if kept is not None and kept[0] is hosted:
            return kept[1]
        plan = decide(caller=caller, hosted=hosted, mode=mode, grant=grant, dialect=self.dialect)
        with self._lock:
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = (hosted, plan)
        return plan

    def caller(self, principal: Principal | None) -> Caller:
        """Who asks, for the decision; a person's consent must still be valid."""
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

    # -- masking ----------------------------------------------------------------------

    def app_key(self, client_id: str) -> bytes:
        key = self._app_keys.get(client_id)
        if key is None:
            key = derive_app_key(self._master, client_id)
            with self._lock:
                self._app_keys[client_id] = key
        return key

    def masker(self, plan: Plan, hosted: HostedDataset, names: Sequence[str]) -> Masker | None:
        """A function masking a batch of rows of `names` (a column at a time, see
        `map_columns`), or None when all are clear; compiled once per plan and names."""
        key = (id(plan), tuple(names))
        kept = self._maskers.get(key)
        if kept is not None and kept[0] is plan:
            return kept[1]
        masker = self._compile_masker(plan, hosted, names)
        with self._lock:
            if len(self._maskers) > 4096:
                self._maskers.clear()
            self._maskers[key] = (plan, masker)
        return masker

    def _compile_masker(
        self, plan: Plan, hosted: HostedDataset, names: Sequence[str]
    ) -> Masker | None:
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

    # -- what the caller may do -------------------------------------------------------

    def policy(
        self, principal: Principal | None, dataset_id: str, *, notes: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The caller's fields, transforms and reasons per mode, quotas and budget."""
        hosted = self.catalog.get(dataset_id)
        if hosted is None:
            raise not_found(f"数据集 {dataset_id} 不存在")
        plans: dict[str, Plan] = {}
        grant = None
        for mode in ("records", "aggregate", "verify"):
            plan = self._plan_or_none(principal, hosted, mode)
            if plan is None:
                continue
            grant = grant or plan.grant
            plans[mode] = plan
        # The same document the administrator's confirm step shows (policies/policy_document.py).
        modes = policy_modes(hosted, plans)
        if not modes:
            self.plan(principal, hosted, "records")  # raises the denial
        answer: dict[str, Any] = {"dataset": hosted.id, "open_type": hosted.open_type}
        answer["modes"] = modes
        if grant is not None:
            answer.update(self._grant_state(grant))
        return answer

    def _grant_state(self, grant: GrantTerms) -> dict[str, Any]:
        quotas.flush(self.engine, grant.id)  # this process's gathered counts first
        with Session(self.engine) as session:
            usage = session.get(GrantUsage, (grant.id, quotas.business_day()))
        used = {
            "requests_per_day": usage.requests if usage else 0,
            "rows_per_day": usage.rows if usage else 0,
            "verifies_per_day": usage.verifies if usage else 0,
        }
        answer: dict[str, Any] = {
            "grant": {"id": grant.id, "version": grant.version, "purpose": grant.purpose}
        }
        limits = dict(grant.quotas)
        if "verify" in grant.modes:  # the brake holds whether or not the reviewer set it
            limits = {**self.brake().limits(grant.quotas), **limits}
        answer["quotas"] = {
            key: (
                {"limit": limit, "used": used[key], "remaining": max(0, limit - used[key])}
                if key in used
                else {"limit": limit, "per": "subject value"}
            )
            for key, limit in limits.items()
        }
        if grant.epsilon is not None and grant.epsilon_bounds is not None:
            floor, ceiling = grant.epsilon_bounds
            answer["privacy"] = {
                "epsilon": grant.epsilon,
                "epsilon_spent": grant.epsilon_spent,
                "epsilon_remaining": max(0.0, grant.epsilon - grant.epsilon_spent),
                "epsilon_floor": floor,
                "epsilon_ceiling": ceiling,
            }
        return answer

    def _plan_or_none(
        self, principal: Principal | None, hosted: HostedDataset, mode: str
    ) -> Plan | None:
        """The plan for `mode`, or None when only that mode is refused (no grant at all,
        or no such dataset, is the answer itself)."""
        try:
            return self.plan(principal, hosted, mode)
        except Problem as problem:
            if problem.code in ("grant_required", "not_found"):
                raise
            return None


class Access:
    """One request's enforcement: the plan and everything that acts on it."""

    __slots__ = ("enforcer", "hosted", "notes", "plan", "principal")

    def __init__(
        self,
        enforcer: Enforcer,
        principal: Principal | None,
        hosted: HostedDataset,
        plan: Plan,
        notes: AuditNotes,
    ) -> None:
        self.enforcer = enforcer
        self.principal = principal
        self.hosted = hosted
        self.plan = plan
        self.notes = notes

    @property
    def field_access(self) -> FieldAccess:
        """The field check for filters and order (only clear fields)."""
        return FieldAccess(self.plan.visible, self.plan.clear)

    @property
    def row_filter(self) -> Mapping[str, Any]:
        return self.plan.row_filter

    @property
    def engine(self) -> Engine:
        return self.enforcer.engine

    def transforms(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.plan.transform_of(n) for n in names)

    def masker(self, names: Sequence[str]) -> Masker | None:
        return self.enforcer.masker(self.plan, self.hosted, names)

    def cursors(self) -> BoundCursors:
        hosted = self.hosted
        binding = cursor_binding(self.principal, self.plan)
        return self.enforcer.cursor_box.bind(hosted.id, hosted.version, binding)

    def parse(self, params: Sequence[tuple[str, str]], **options: Any) -> RecordQuery:
        return parse_record_query(
            params, self.hosted, self.field_access, dialect=self.enforcer.dialect, **options
        )

    # -- quotas -----------------------------------------------------------------------

    def admit(self, rows: int | None) -> int:
        """Count the request and reserve up to `rows` rows (see `quotas.admit`)."""
        return quotas.admit(self.engine, self.plan, rows=rows)

    def refund(self, unused: int) -> None:
        quotas.refund_rows(self.engine, self.plan, unused)

    # -- channels' operations -----------------------------------------------------------

    def fetch(self, params: Sequence[tuple[str, str]], *, format: str) -> RecordsPage:
        """One records page: parse against the plan, reserve the rows quota (trimming the
        page to what is left), read, give back what was not used, note, mask."""
        hosted, plan = self.hosted, self.plan
        cursors = self.cursors()
        query = self.parse(params, cursors=cursors)
        allowed = self.admit(query.limit)
        trimmed = allowed < query.limit
        if trimmed:
            query = replace(query, limit=allowed)
        page = fetch_page(
            self.engine,
            self.enforcer.statements,
            hosted,
            query,
            row_filter=plan.row_filter,
            cursors=cursors,
        )
        self.refund(allowed - len(page.rows))
        names = query.fields
        self.notes.plan(plan, hosted, names, filters=query.filters, format=format)
        self.notes.add(row_count=len(page.rows))
        mask = self.masker(names)
        rows = mask(page.rows) if mask else page.rows
        return RecordsPage(hosted, names, self.transforms(names), rows, page.next_cursor, trimmed)

    def fetch_window(
        self,
        params: Sequence[tuple[str, str]],
        *,
        offset: int,
        limit: int,
        search: str | None = None,
        total: bool = False,
        format: str,
        channel: str = "ckan",
    ) -> RecordsWindow:
        """`limit` rows after skipping `offset` in the query's order (which ends with the
        key, so windows neither skip nor repeat a row of a published version): the same
        parse, field check, quota, row filter, masking and audit notes as `fetch`. `search`
        is a substring of any string field the caller receives in clear (never a hidden
        one: it would be an oracle). `total`: the rows the caller may see, row filter
        applied. The caller bounds `limit` and `offset`."""
        hosted, plan = self.hosted, self.plan
        query = self.parse(params, paged=False)
        if search and len(search) > MAX_VALUE_LENGTH:
            raise invalid_parameter("q", f"参数 q 过长：最多 {MAX_VALUE_LENGTH} 个字符")
        if search:
            searched = tuple(
                n
                for n in plan.visible
                if n in plan.clear and hosted.by_name[n].type is FieldType.string
            )
            query = replace(query, search=(searched, search) if searched else None)
            if not searched:  # nothing the caller may search in: nothing matches
                limit, total = 0, False
        names = query.fields
        self.notes.plan(plan, hosted, names, filters=query.filters, format=format)
        # The search text is not noted (it may be a level-3 value the grant shows in
        # clear); that there was one is.
        self.notes.add(detail={"channel": channel, "offset": offset, "search": bool(search)})
        allowed = self.admit(limit) if limit else self.admit(None)
        trimmed = allowed < limit
        rows: Rows = []
        if allowed:
            window = replace(query, limit=allowed, offset=offset)
            page = fetch_page(
                self.engine,
                self.enforcer.statements,
                hosted,
                window,
                row_filter=plan.row_filter,
            )
            rows = page.rows
            self.refund(allowed - len(rows))
        self.notes.add(row_count=len(rows))
        counted = None
        if total:
            counted = count_rows(self.engine, hosted, query, plan.row_filter)
        elif search and query.search is None:
            counted = 0
        mask = self.masker(names)
        if mask and rows:
            rows = mask(rows)
        return RecordsWindow(hosted, names, self.transforms(names), rows, counted, trimmed)

    def fetch_one(self, key: str, fields: str | None, *, format: str) -> OneRecord:
        """The record whose primary key is `key` — only when the key is clear to the
        caller, refused before the key is even parsed otherwise (no oracle)."""
        hosted, plan = self.hosted, self.plan
        query = self.parse([("fields", fields)] if fields else [])
        self.notes.plan(plan, hosted, query.fields, key=self.notes.digest(key), format=format)
        if hosted.primary_key not in plan.clear:
            raise key_not_permitted(hosted)
        self.admit(1)
        value = parse_key(hosted, key, self.enforcer.dialect)
        row = None
        if value is not None:
            row = fetch_one(
                self.engine,
                self.enforcer.statements,
                hosted,
                query,
                value,
                row_filter=plan.row_filter,
            )
        if row is None:
            self.refund(1)
        self.notes.add(row_count=0 if row is None else 1)
        if row is None:
            raise not_found(f"数据集 {hosted.id} 中没有主键为该值的记录")
        mask = self.masker(query.fields)
        if mask:
            row = mask([row])[0]
        return OneRecord(hosted, query.fields, self.transforms(query.fields), row)

    def export(self, params: Sequence[tuple[str, str]], *, format: str) -> Export:
        query = self.parse(params, paged=False)
        self.notes.plan(self.plan, self.hosted, query.fields, filters=query.filters, format=format)
        return Export(self, query)

    def aggregate(self, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """Grouped counts and sums under the plan's rules: k-suppression, or under a
        differential-privacy grant ε checked, spent and noise added. The answer's body."""
        hosted, plan = self.hosted, self.plan
        enforcer = self.enforcer
        dp = aggregates.under_privacy(plan)
        rules = aggregates.aggregate_rules(plan, hosted)
        query = parse_aggregate_query(params, hosted, rules, dialect=enforcer.dialect)
        self.notes.plan(
            plan,
            hosted,
            (),
            filters=query.filters,
            fields=[{"name": n, "transform": "group_by"} for n in query.group_by]
            + [{"name": m.field or "*", "transform": m.kind} for m in query.metrics],
        )
        self.admit(None)
        report = None
        if dp:
            assert plan.grant is not None
            report = aggregates.spend(self.engine, plan.grant, query)
        groups = run_aggregate(
            self.engine,
            hosted,
            query,
            row_filter=plan.row_filter,
            clamp=query.bounds if dp else None,
        )
        k = plan.k
        if report is not None:
            kept, suppressed = aggregates.private_groups(groups, query, report, k)
        else:
            kept, suppressed = aggregates.k_groups(groups, query, k)
        body: dict[str, Any] = {
            "dataset": hosted.id,
            "version": hosted.version,
            "groups": kept,
            "suppressed_groups": suppressed,
            "k": k,
        }
        if report:
            body["privacy"] = report
        self.notes.add(
            row_count=len(kept),
            detail={
                "suppressed_groups": suppressed,
                "k": k,
                **({"epsilon": str(report["epsilon"])} if report else {}),
            },
        )
        return body

    def verify(self, match: Mapping[str, Any], *, request_id: str | None = None) -> bool:
        """Whether a row matches every `name = value` (granted fields, the row filter),
        under the verify brake; a sweep suspends the grant."""
        hosted, plan, notes = self.hosted, self.plan, self.notes
        dialect = self.enforcer.dialect
        brake = self.enforcer.brake()
        # Names only; the values as one keyed digest, so a sweep over many people shows.
        notes.plan(
            plan,
            hosted,
            (),
            fields=[{"name": n, "transform": "verify"} for n in sorted(match)],
            values=notes.digest(orjson.dumps(dict(match), option=SORTED).decode()),
        )
        allowed = set(plan.visible)
        table = hosted.table
        conditions = []
        subjects = []
        for name, value in match.items():
            field = hosted.by_name.get(name)
            if field is None or name not in allowed:
                raise invalid_parameter("match", f"字段 {name} 不在核验授权范围内")
            try:
                typed = to_storage(field.type, parse_value(field.type, str(value)), dialect)
            except ValueError:
                # The value is not echoed: it is usually an identity number.
                raise invalid_parameter("match", f"字段 {name} 的取值类型不符") from None
            conditions.append(table.c[name] == typed)
            if field.subject_key or field.pii in IDENTIFYING:
                # The stored form: any two values that can match the same row count as one.
                subjects.append(notes.digest(f"verify-subject:{name}:{typed}"))
        conditions += [table.c[n] == v for n, v in plan.row_filter.items()]
        self.admit(None)
        before, distinct = quotas.count_verify(self.engine, plan, brake, subjects)
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(sa.literal(1)).where(*conditions).limit(1)).first()
        matched = found is not None
        notes.add(row_count=0, detail={"match": matched})
        if not matched and plan.grant is not None:
            misses = quotas.record_miss(self.engine, plan)
            if misses >= brake.sweep_misses:
                self._suspend_for_sweep("misses", misses, brake.sweep_misses, request_id)
                return matched
        # On crossing the threshold: a grant a data_admin reinstated keeps its day's count
        # and is not suspended again by the next new value.
        if plan.grant is not None and before < brake.sweep_subjects <= distinct:
            self._suspend_for_sweep("distinct_values", distinct, brake.sweep_subjects, request_id)
        return matched

    def _suspend_for_sweep(
        self, counted: str, count: int, threshold: int, request_id: str | None
    ) -> None:
        """A sweep — many misses, or many people's values (the audit log's `verify_sweep`
        flag): suspend the grant at once (every worker: the grant is read on every
        request), leave the data_admins a notice and audit the suspension."""
        plan = self.plan
        grant = plan.grant
        assert grant is not None
        what = "核验不匹配" if counted == "misses" else "核验的不同对象"
        message = (
            f"应用 {plan.client_id} 对数据集 {plan.dataset_id} 今日{what}已达 {count} 个"
            f"（阈值 {threshold}），疑似逐一试探，授权 {grant.id} 已自动暂停，请核查后恢复或撤销"
        )
        with Session(self.engine) as session:
            suspended = suspend_grant(
                session, grant_id=grant.id, reason="verify_sweep", notice=message
            )
        if suspended is None:
            return  # another worker got there first
        self.notes.add(detail={"grant_suspended": "verify_sweep"})
        if self.enforcer.append_events is None:
            return
        self.enforcer.append_events(
            [
                {
                    "request_id": request_id,
                    "actor": "gateway",
                    "client_id": plan.client_id,
                    "ip": None,
                    "action": "grant.suspend",
                    "resource": f"datasets/{plan.dataset_id}",
                    "fields": None,
                    "row_count": None,
                    "purpose": grant.purpose,
                    "grant_id": grant.id,
                    "grant_version": grant.version,
                    "outcome": "allowed",
                    "status": None,
                    "detail": {
                        "decision": "suspend",
                        "grant_status": "suspended",
                        "reason": "verify_sweep",
                        counted: count,
                        "threshold": threshold,
                    },
                }
            ]
        )


class Export:
    """An export under way: `start()` once the channel has its slot (counts the request
    and reserves the day's rows), then `batches()`, then `close()` however it ended."""

    def __init__(self, access: Access, query: RecordQuery) -> None:
        self.access = access
        self.query = query
        self.names = query.fields
        self.transforms = access.transforms(query.fields)
        self.hosted = access.hosted
        self.count = StreamCount()
        self.budget: int | None = None
        self._mask = access.masker(query.fields)

    def start(self) -> None:
        access = self.access
        access.notes.add(stream=self.count)
        grant = access.plan.grant
        if grant is not None:
            quotas.count_request(access.engine, access.plan)
            if "rows_per_day" in grant.quotas:
                self.budget = quotas.reserve_rows(
                    access.engine, access.plan, grant.quotas["rows_per_day"]
                )

    def batches(self) -> Iterator[Rows]:
        """Masked chunks; the day's rows quota trims the export (the count says so)."""
        access, budget, count, mask = self.access, self.budget, self.count, self._mask
        for batch in stream_rows(
            access.engine,
            access.enforcer.statements,
            self.hosted,
            self.query,
            row_filter=access.plan.row_filter,
            batch=access.enforcer.export_chunk_rows,
        ):
            if budget is not None:
                batch = batch[: budget - count.rows]
            count.rows += len(batch)
            yield mask(batch) if mask else batch
            if budget is not None and count.rows >= budget:
                break

    def close(self) -> None:
        if self.budget is not None:
            self.access.refund(self.budget - self.count.rows)
