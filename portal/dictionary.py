"""The field dictionary of a dataset page: each field's level and pii kind, and the
transform three callers would get — anyone without a token, an app with a grant on the
default terms, and the person a row is about (个人授权) — each computed by the one access
decision (`policies.decide`) for a caller of that kind, never written down twice."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.hosted import HostedDataset
from catalog.problems import Problem
from policies.decide import Caller, GrantTerms, Plan, decide
from portal.field_preview import LEVEL_LABELS, PII_LABELS, TRANSFORM_LABELS

# An app with a grant that names no fields, transforms or filters: the default terms.
_DEFAULT_GRANT = GrantTerms(
    id=0,
    version=0,
    purpose="",
    modes=("records",),
    fields=None,
    transforms={},
    row_filter={},
    quotas={},
    k=5,
    epsilon=None,
    epsilon_spent=0.0,
)
AUDIENCES = (
    ("anonymous", "匿名访问"),
    ("granted", "获授权应用（默认条件）"),
    ("subject", "数据主体本人（个人授权）"),
)


@dataclass(frozen=True, slots=True)
class Cell:
    transform: str | None  # None: this caller receives no data of the dataset
    label: str


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    title: str
    type: str
    level: int
    level_label: str
    pii: str
    pii_label: str
    primary_key: bool
    subject_key: bool
    cells: tuple[Cell, ...]


def _plan(hosted: HostedDataset, audience: str) -> Plan | None:
    if audience == "anonymous":
        caller, grant = Caller("anonymous"), None
    elif audience == "granted":
        caller, grant = Caller("app", client_id="portal-dictionary"), _DEFAULT_GRANT
    else:
        caller = Caller(
            "person", client_id="portal-dictionary", subject_hmac="-", consent_dataset=hosted.id
        )
        grant = None
    try:
        return decide(caller=caller, hosted=hosted, mode="records", grant=grant)
    except Problem:
        return None  # refused: grant required, closed, no personal rows


def _cell(plan: Plan | None, name: str, refused: str) -> Cell:
    if plan is None:
        return Cell(None, refused)
    spec = plan.transform_of(name)
    return Cell(spec, TRANSFORM_LABELS.get(spec.split(":")[0], spec))


REFUSED = {
    "anonymous": "不提供（需授权）",
    "granted": "不提供",
    "subject": "不适用",
}


def dictionary(hosted: HostedDataset) -> list[Entry]:
    plans = {audience: _plan(hosted, audience) for audience, _ in AUDIENCES}
    return [
        Entry(
            name=f.name,
            title=f.title or f.name,
            type=str(f.type),
            level=f.level,
            level_label=LEVEL_LABELS.get(f.level, str(f.level)),
            pii=f.pii,
            pii_label=PII_LABELS.get(f.pii, f.pii),
            primary_key=f.primary_key,
            subject_key=f.subject_key,
            cells=tuple(_cell(plans[a], f.name, REFUSED[a]) for a, _ in AUDIENCES),
        )
        for f in hosted.fields
    ]
