"""The portal's public catalog pages: home, search with facets, and a dataset's page (its
metadata, field dictionary, a preview read through the enforcement door (portal/preview.py),
downloads, API examples, version history and the 纠错 form).

Pages read only the catalog's own tables (`datasets.row_count`, never a count of a hosted
table) and the hosted catalog's cached description of each published version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from catalog import service
from catalog.hosted import HostedDataset
from catalog.models import Dataset, DatasetVersion, OpenType
from kernel.problems import Problem
from participation import feedback
from participation.overview import LEVEL_LABELS, OPEN_TYPE_LABELS
from participation.views import reporter_of
from portal import examples, preview
from portal.dictionary import AUDIENCES, dictionary
from portal.forms import CheckedForm, see_other, text
from portal.templating import render
from services.catalog import HostedService

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
NEWEST = 6
FACETS = (
    ("theme", "主题", Dataset.theme),
    ("publisher", "数据提供部门", Dataset.publisher),
    ("open_type", "开放属性", Dataset.open_type),
    ("level", "分级", Dataset.level),
    ("zone", "专区", Dataset.zone),
)


def sees_closed(request: Request) -> bool:
    principal = preview.session_principal(request)
    return principal is not None and principal.kind == "user" and principal.role == "data_admin"


def facet_label(facet: str, value: Any) -> str:
    if facet == "open_type":
        return OPEN_TYPE_LABELS.get(str(value), str(value))
    if facet == "level":
        return LEVEL_LABELS.get(int(value), str(value))
    return str(value) if value else "（未填写）"


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    overview = request.app.state.overview.get()
    engine: Engine = request.app.state.engine
    with Session(engine) as session:
        _total, newest = service.search_datasets(
            session,
            where=service.CatalogFilter(),
            page=1,
            per_page=NEWEST,
            include_closed=False,
        )
    return render(
        request,
        "home.html",
        {
            "overview": overview,
            "newest": newest,
            "open_type_labels": OPEN_TYPE_LABELS,
            "level_labels": LEVEL_LABELS,
        },
        section="home",
    )


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    label: str
    count: int
    href: str
    selected: bool


def _facets(
    session: Session, where: service.CatalogFilter, chosen: dict[str, str], include_closed: bool
) -> list[tuple[str, str, list[FacetValue]]]:
    """Counts per value of each facet within the current search (CKAN's way)."""
    terms = service.conditions(where, include_closed=include_closed)
    out = []
    for name, label, column in FACETS:
        rows = session.exec(
            select(column, func.count())
            .where(*terms)
            .group_by(column)
            .order_by(func.count().desc(), column)
        ).all()
        values = []
        for value, count in rows:
            text_value = str(value)
            selected = chosen.get(name) == text_value
            params = {k: v for k, v in chosen.items() if v and k != name}
            if not selected:
                params[name] = text_value
            values.append(
                FacetValue(
                    text_value,
                    facet_label(name, value),
                    count,
                    "/datasets" + (f"?{urlencode(params)}" if params else ""),
                    selected,
                )
            )
        out.append((name, label, values))
    return out


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(
    request: Request,
    q: Annotated[str | None, Query(max_length=100)] = None,
    theme: str | None = None,
    publisher: str | None = None,
    open_type: OpenType | None = None,
    level: Annotated[int | None, Query(ge=1, le=4)] = None,
    zone: str | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    q = (q or "").strip() or None
    where = service.CatalogFilter(
        q, theme or None, publisher or None, open_type, level, zone or None
    )
    include_closed = sees_closed(request)
    chosen = {
        "q": q or "",
        "theme": theme or "",
        "publisher": publisher or "",
        "open_type": open_type.value if open_type else "",
        "level": str(level) if level else "",
        "zone": zone or "",
    }
    with Session(request.app.state.engine) as session:
        total, rows = service.search_datasets(
            session, where=where, page=page, per_page=PER_PAGE, include_closed=include_closed
        )
        facets = _facets(session, where, chosen, include_closed)
    kept = {k: v for k, v in chosen.items() if v}
    pages = max(1, -(-total // PER_PAGE))

    def page_href(n: int) -> str:
        return "/datasets?" + urlencode({**kept, "page": n})

    return render(
        request,
        "datasets.html",
        {
            "q": q or "",
            "total": total,
            "rows": rows,
            "facets": facets,
            "page": page,
            "pages": pages,
            "previous_href": page_href(page - 1) if page > 1 else None,
            "next_href": page_href(page + 1) if page < pages else None,
            "open_type_labels": OPEN_TYPE_LABELS,
            "level_labels": LEVEL_LABELS,
            "filtered": bool(kept),
        },
        section="datasets",
    )


def _metadata(engine: Engine, dataset_id: str) -> tuple[Dataset | None, list[DatasetVersion]]:
    with Session(engine) as session:
        dataset = session.get(Dataset, dataset_id)
        versions = list(
            session.exec(
                select(DatasetVersion)
                .where(col(DatasetVersion.dataset_id) == dataset_id)
                .order_by(col(DatasetVersion.version).desc())
                .limit(20)
            )
        )
        return dataset, versions


async def dataset_page(
    request: Request,
    dataset_id: str,
    *,
    form_error: str | None = None,
    form_values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    engine: Engine = request.app.state.engine
    dataset, versions = await run_in_threadpool(_metadata, engine, dataset_id)
    hosted: HostedDataset | None = request.app.state.hosted_catalog.get(dataset_id)
    if (
        dataset is None
        or hosted is None
        or (dataset.open_type == OpenType.closed and not sees_closed(request))
    ):
        return render(
            request,
            "not_found.html",
            {"message": f"数据集 {dataset_id} 不存在或未开放"},
            status_code=404,
            section="datasets",
        )
    base = request.app.state.settings.issuer.rstrip("/")
    service = hosted if isinstance(hosted, HostedService) else None
    # A service has no rows to preview: its page shows its parameters and how to call it.
    sample = None if service else await preview.fetch(request, dataset_id)
    return render(
        request,
        "dataset.html",
        {
            "dataset": dataset,
            "hosted": hosted,
            "versions": versions,
            "entries": dictionary(hosted),
            "audiences": AUDIENCES,
            "preview": sample,
            "service": service,
            "examples": examples.for_service(base, service)
            if service
            else examples.for_dataset(base, hosted),
            "open_type_labels": OPEN_TYPE_LABELS,
            "level_labels": LEVEL_LABELS,
            "form_error": form_error,
            "form": form_values or {},
            "submitted": request.query_params.get("feedback"),
        },
        status_code=status_code,
        section="datasets",
    )


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
async def dataset_view(request: Request, dataset_id: str) -> Response:
    return await dataset_page(request, dataset_id)


@router.post("/datasets/{dataset_id}/feedback", response_class=HTMLResponse)
async def feedback_submit(request: Request, dataset_id: str, form: CheckedForm) -> Response:
    """The 纠错 form: the same checks and limits as the API; a refusal shows the page again
    with the reason and what was typed, and stores nothing."""
    hosted: HostedDataset | None = request.app.state.hosted_catalog.get(dataset_id)
    if hosted is None or (hosted.open_type == OpenType.closed and not sees_closed(request)):
        return await dataset_page(request, dataset_id)
    values = {name: text(form, name, limit=20_000) for name in ("field", "record", "message")}
    principal = preview.session_principal(request)
    username = principal.subject if principal is not None and principal.kind == "user" else None
    try:
        row = await run_in_threadpool(
            lambda: feedback.submit(
                request.app.state.engine,
                hosted,
                field=values["field"],
                record=values["record"],
                message=values["message"],
                reporter=reporter_of(request, username),
                digest=request.app.state.quote_digest,
            )
        )
    except Problem as problem:
        return await dataset_page(
            request,
            dataset_id,
            form_error=problem.detail,
            form_values=values,
            status_code=problem.status,
        )
    return see_other(f"/datasets/{dataset_id}?feedback={row.id}#feedback")
