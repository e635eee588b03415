"""FastAPI dependencies that read what the app factory put on `app.state`, so that routes
can live at module level: the engine (or a request-scoped session of it), the hosted
catalog, the installation's public address and who may see closed datasets.

The readers are `async def` so FastAPI calls them in the event loop: a plain `def`
dependency costs a trip through the thread pool, which on SQLite has one thread
(decision 0010)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog.hosted import HostedCatalog


async def engine(request: Request) -> Engine:
    return request.app.state.engine


def db_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


async def hosted_catalog(request: Request) -> HostedCatalog:
    return request.app.state.hosted_catalog


async def public_url(request: Request) -> str:
    """The configured address (the issuer) absolute URLs are built from — never the
    request's `Host` header, which the client chooses."""
    return request.app.state.public_url


async def sees_closed(request: Request) -> bool:
    # The rule is the gateway's (it knows the principal); catalog only asks it.
    return request.app.state.sees_closed(request)


EngineDep = Annotated[Engine, Depends(engine)]
# Closed before the response is sent, so the pool is not held while it streams.
SessionDep = Annotated[Session, Depends(db_session, scope="function")]
HostedCatalogDep = Annotated[HostedCatalog, Depends(hosted_catalog)]
PublicUrlDep = Annotated[str, Depends(public_url)]
SeesClosedDep = Annotated[bool, Depends(sees_closed)]
