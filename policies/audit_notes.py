"""What a data request tells the audit log, from the one plan that served it.

Field names and transforms, never values; filter values on level 3–4 (or personal)
fields only as keyed digests, so an auditor can see two requests asked for the same
person without the log holding the identity number.

`AuditNotes` is the only writer of a data request's event fields: the `Access` of the
request owns one and every fact goes through it, in the order the request learns them.
A channel hands in the dict its audit reads (an HTTP route: `audit.events.notes(scope)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from audit.events import keyed_digest, note_into
from catalog.hosted import HostedDataset
from catalog.query import Filter
from policies.decide import Plan


class AuditNotes:
    __slots__ = ("digest_key", "store")

    def __init__(self, digest_key: bytes, store: dict[str, Any] | None = None) -> None:
        self.digest_key = digest_key
        self.store: dict[str, Any] = {} if store is None else store

    def add(self, **fields: Any) -> None:
        """Facts for the event; `detail` entries are merged, the rest set."""
        note_into(self.store, **fields)

    def plan(
        self,
        plan: Plan,
        hosted: HostedDataset,
        names: Sequence[str],
        *,
        filters: Iterable[Filter] = (),
        fields: list[dict[str, str]] | None = None,
        resource: str | None = None,
        **detail: Any,
    ) -> None:
        """The plan's facts: resource, the fields sent (`fields` for a mode that sends
        none, named by what it did with them), grant, purpose, filters as digests. An
        interface service's `resource` is `services/<id>`, its fields the paths returned."""
        grant = plan.grant
        conditions = {
            f"{f.field}__{f.op}": self.loggable(hosted, f.field, f.value) for f in filters
        }
        if conditions:
            detail["filters"] = conditions
        self.add(
            resource=resource or f"datasets/{hosted.id}",
            fields=fields
            if fields is not None
            else [{"name": n, "transform": plan.transform_of(n)} for n in names],
            purpose=grant.purpose if grant else None,
            grant_id=grant.id if grant else None,
            grant_version=grant.version if grant else None,
            detail={"dataset_version": hosted.version, "mode": plan.mode, **detail},
        )

    def loggable(self, hosted: HostedDataset, name: str, value: Any) -> Any:
        field = hosted.by_name.get(name)
        sensitive = field is None or field.level >= 3 or field.pii != "none"
        if isinstance(value, tuple | list):
            return [self.loggable(hosted, name, v) for v in value]
        if isinstance(value, bool) or value is None:
            return value
        return keyed_digest(self.digest_key, str(value)) if sensitive else str(value)

    def digest(self, value: str) -> str:
        return keyed_digest(self.digest_key, value)
