"""The baseline: a bare FastAPI endpoint serving the same 100 rows from the same database
with the same driver, pool and thread settings, and nothing else (no validation, no policy,
no cursor, no request id).

    BENCH_DATABASE_URL=... BENCH_TABLE=data_bench_records_v1 uvicorn bench.bare_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from starlette.responses import Response

from gateway.app import limit_sync_threads
from gateway.database import create_engine
from gateway.settings import Settings

settings = Settings(database_url=os.environ["BENCH_DATABASE_URL"])
engine = create_engine(settings.sqlalchemy_url)
SQL = f'SELECT * FROM "{os.environ["BENCH_TABLE"]}" ORDER BY record_id LIMIT 100'


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    limit_sync_threads(settings, engine)  # as the gateway does (docs/decisions/0010)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/bare")
def bare() -> Response:
    # The driver's own cursor from the same pool: the cheapest way to serve these rows.
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(SQL)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        connection.close()
    body = {"data": [dict(zip(names, row, strict=True)) for row in rows]}
    return Response(orjson.dumps(body), media_type="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response(b"ok")
