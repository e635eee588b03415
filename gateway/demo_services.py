"""The demo's interface services (idempotent): the two loopback upstreams'
`service.json` written under the data directory, imported (a new version only when they
change), and the demo app granted `call` on both with the default masking."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.users import get_user
from catalog.hosted import HostedCatalog
from gateway.demo_upstreams import service_packages
from policies.grants import active_grant, grant, validate_terms
from services.catalog import load_service
from services.registry import ServiceImport, import_service


def ensure_demo_services(
    engine: Engine, target: Path, upstream_url: str, client_id: str
) -> list[ServiceImport]:
    imported = []
    for name, doc in service_packages(upstream_url).items():
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "service.json").write_text(
            json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        imported.append(import_service(engine, folder, replace=True))
    catalog = HostedCatalog(engine, ttl=0)
    catalog.register_kind("service", load_service)
    with Session(engine) as session:
        admin = get_user(session, username="admin")
        for result in imported:
            if active_grant(session, client_id=client_id, dataset_id=result.service_id):
                continue
            hosted = catalog.get(result.service_id)
            terms = validate_terms(
                hosted,  # type: ignore[arg-type]
                modes=["call"],
                fields=None,
                quotas={"requests_per_day": 5000},
                duration_days=365,
            )
            grant(
                session,
                admin_id=admin.id,  # type: ignore[union-attr]
                client_id=client_id,
                dataset_id=result.service_id,
                purpose="授信前核验企业与个人参保信息（演示）",
                terms=terms,
                note="demo",
            )
    return imported
