"""The routers of the administrator console (/admin, data_admin) and of the system
administrator's page (/admin/system, sysadmin), in the order the gateway includes them."""

from __future__ import annotations

from fastapi import APIRouter

from portal import (
    admin_catalog,
    admin_grants,
    admin_operation,
    admin_participation,
    admin_review,
    admin_statements,
    admin_upload,
    admin_usage,
    system_pages,
)

# /admin/system, /admin/grants/new and /admin/datasets/upload come before the routes
# with an id in their path.
admin_routers: list[APIRouter] = [
    system_pages.router,
    admin_grants.router,
    admin_review.router,
    admin_upload.router,
    admin_catalog.router,
    admin_participation.router,
    admin_usage.router,
    admin_operation.router,
    admin_statements.router,
]
