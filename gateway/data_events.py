"""What a data request tells the audit log, from the one plan that served it.

Field names and transforms, never values; filter values on level 3–4 (or personal)
fields only as keyed digests, so an auditor can see two requests asked for the same
person without the log holding the identity number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request

from audit.events import keyed_digest, note
from catalog.hosted import HostedDataset
from catalog.query import Filter
from policies.decide import Plan


class DataEvents:
    def __init__(self, digest_key: bytes) -> None:
        self.digest_key = digest_key

    def note_plan(
        self,
        request: Request,
        plan: Plan,
        hosted: HostedDataset,
        names: Sequence[str],
        *,
        filters: Iterable[Filter] = (),
        **detail: Any,
    ) -> None:
        grant = plan.grant
        conditions = {
            f"{f.field}__{f.op}": self.loggable(hosted, f.field, f.value) for f in filters
        }
        if conditions:
            detail["filters"] = conditions
        note(
            request,
            resource=f"datasets/{hosted.id}",
            fields=[{"name": n, "transform": plan.transform_of(n)} for n in names],
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
