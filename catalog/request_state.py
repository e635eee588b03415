"""FastAPI dependencies that read what the app factory put on `app.state`, so that routes
can live at module level: the engine (or a request-scoped session of it) and the hosted
catalog."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog.hosted import HostedCatalog


def engine(request: Request) -> Engine:
    return request.app.state.engine


def db_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


def hosted_catalog(request: Request) -> HostedCatalog:
    return request.app.state.hosted_catalog


EngineDep = Annotated[Engine, Depends(engine)]
# Closed before the response is sent, so the pool is not held while it streams.
SessionDep = Annotated[Session, Depends(db_session, scope="function")]
HostedCatalogDep = Annotated[HostedCatalog, Depends(hosted_catalog)]
