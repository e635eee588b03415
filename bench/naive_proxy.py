"""The baseline the issue names: the obvious FastAPI proxy of one upstream, nothing else
(no grant, no masking, no limits, no audit) — what a developer writes first.

    BENCH_UPSTREAM=http://127.0.0.1:PORT/path uvicorn bench.naive_proxy:app

`BENCH_CLIENT=aiohttp` swaps httpx.AsyncClient for one aiohttp.ClientSession in the same
app: the client library's own share of a proxied call (decision 0019).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

UPSTREAM = os.environ["BENCH_UPSTREAM"]
CLIENT = os.environ.get("BENCH_CLIENT", "httpx")
clients: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if CLIENT == "aiohttp":
        import aiohttp

        clients["aiohttp"] = aiohttp.ClientSession()
        yield
        await clients["aiohttp"].close()
    else:
        import httpx

        async with httpx.AsyncClient() as client:
            clients["httpx"] = client
            yield


app = FastAPI(lifespan=lifespan)


@app.post("/proxy")
async def proxy(request: Request) -> Response:
    body = await request.body()
    headers = {"Content-Type": "application/json"}
    if CLIENT == "aiohttp":
        async with clients["aiohttp"].post(UPSTREAM, data=body, headers=headers) as answer:
            return Response(await answer.read(), answer.status, media_type="application/json")
    answer = await clients["httpx"].post(UPSTREAM, content=body, headers=headers)
    return Response(answer.content, answer.status_code, media_type="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response(b"ok")
