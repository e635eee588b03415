"""An interface service call against two proxies of the same upstream, side by side in one
run (issue 18): nginx reverse-proxying it, and the naive FastAPI + httpx proxy
(bench/naive_proxy.py); and the latency the gateway adds over calling the upstream directly.

    python -m bench.service_proxy [--workers 1 2] [--seconds 10] [--rounds 3]
                                  [--connections 16] [--only sqlite|postgres]

The upstream is nginx serving one static ~2 kB JSON document (an enterprise-credit answer
with names, phones and id numbers: the fastest faithful upstream, so the proxies are what
is measured). Every proxy gets the same `POST` with a JSON body (a wrk Lua script) and
sends it on as a `POST` over a kept-alive pool:

- nginx: `proxy_pass` to an `upstream` block with `keepalive`, N worker processes;
- naive: uvicorn with N workers, httpx.AsyncClient with its defaults (and, for decision
  0019, the same app with one aiohttp.ClientSession);
- gateway: `opengate serve --workers N` with the service imported by `opengate services
  import`, a data_admin's grant of mode `call` to an app (default transforms: the level-3
  name and phone paths masked; id numbers are not declared, so dropped), rate limits
  counted (never refusing), the audit log on, the app's bearer token on every call.

wrk `-t1 --latency` loads each in alternating rounds; medians of req/s, p50 and p99. Bars:
gateway ≥ 0.35 × nginx and ≥ 3 × naive httpx req/s; p50 at one connection of the gateway
call minus p50 of the upstream called directly ≤ 2 ms. Any non-2xx answer or socket error
marks the run INVALID. Each server's CPU a request (its processes' user + system time over
the requests it answered) is printed too: other load on the shared machine moves it least.

    python -m bench.service_proxy --profile [--seconds 10] [--sort cumulative]

serves the gateway in this process under cProfile (CPU time of the loop's thread and of each
worker thread) while wrk loads it, and sums the own time by package: where a call's time
goes. `--baseline PATH` instead runs the gateway against the same installation served from
another checkout's code (an A/B of a change), at 16 connections and at one.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import PYTHON, free_port, postgres_database, server
from bench.masking_cost import CLI, Gateway, _cli
from bench.proc import cpu_seconds
from bench.wrk import _ms, require_wrk
from gateway.demo_upstreams import ENTERPRISES, service_packages

NGINX = "/usr/sbin/nginx"
CREDIT_CODE = "91370202MA3C1PQ52K"
CALL_BODY = {"credit_code": CREDIT_CODE}
UPSTREAM_PATH = "/amr/enterprise/verify"
# Values of the upstream's answer the grant must never show in clear.
CLEAR_SECRETS = ("13806421357", "370202198507114517", "AMR-000183", "王海涛")


def upstream_answer() -> dict[str, Any]:
    """A realistic enterprise-credit answer of about 2 kB, with members the service does not
    declare (trace, internal id, id numbers) and level-3 names and phones."""
    people = [
        ("王海涛", "370202198507114517", "13806421357", 0.35),
        ("刘晓燕", "370203198811023028", "18653291046", 0.25),
        ("陈志强", "370211197906230034", "15963287410", 0.15),
        ("孙丽华", "370212199103154426", "13969871234", 0.15),
        ("周建国", "370214198212087719", "13589246610", 0.10),
    ]
    return {
        "code": 0,
        "message": "成功",
        "trace": "amr-9c1e-4f7b-8d20",
        "data": {
            "credit_code": CREDIT_CODE,
            **ENTERPRISES[CREDIT_CODE],  # the demo upstream's record, made longer below
            "address": "山东省青岛市市南区香港中路 61 号阳光泰鼎大厦 12 层",
            "business_scope": (
                "软件开发；信息系统集成服务；数据处理和存储支持服务；信息技术咨询服务；"
                "人工智能应用软件开发；网络技术服务；计算机系统服务。"
            ),
            "abnormal": False,
            "internal_id": "AMR-000183",
            "contacts": [
                {"role": role, "name": n, "phone": p}
                for role, (n, _, p, _) in zip(("法定代表人", "财务负责人"), people, strict=False)
            ],
            "shareholders": [
                {"name": n, "id_number": i, "share": s, "subscribed": int(5000000 * s)}
                for n, i, _, s in people
            ],
            "changes": [
                {
                    "date": f"20{18 + k}-0{k + 1}-15",
                    "item": "注册资本变更",
                    "before": "",
                    "after": "",
                }
                for k in range(4)
            ],
        },
    }


def _field(path: str, type_: str, level: int = 1, pii: str = "none") -> dict[str, Any]:
    return {"path": path, "type": type_, "level": level, "pii": pii}


def service_document(
    name: str, url: str, timeout_ms: int = 2000, title: str = "企业信用信息核验（基准）"
) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "description": "按统一社会信用代码核验企业登记信息（基准测试）。",
        "publisher": "市市场监督管理局",
        "open_type": "conditional",
        "upstream": {"url": url, "method": "POST", "timeout_ms": timeout_ms},
        # The demo's own declaration of the one parameter.
        "parameters": service_packages(url)["enterprise-credit-verify"]["parameters"],
        "response": {
            "fields": [
                _field("$.code", "integer"),
                _field("$.message", "string"),
                _field("$.data.credit_code", "string"),
                _field("$.data.name", "string"),
                _field("$.data.status", "string"),
                _field("$.data.established", "string"),
                _field("$.data.registered_capital", "integer"),
                _field("$.data.address", "string", 2),
                _field("$.data.business_scope", "string"),
                _field("$.data.abnormal", "boolean", 2),
                _field("$.data.legal_person", "string", 3, "name"),
                _field("$.data.legal_person_phone", "string", 3, "phone"),
                _field("$.data.contacts[*].role", "string"),
                _field("$.data.contacts[*].name", "string", 3, "name"),
                _field("$.data.contacts[*].phone", "string", 3, "phone"),
                _field("$.data.shareholders[*].name", "string", 3, "name"),
                _field("$.data.shareholders[*].share", "number", 2),
                _field("$.data.shareholders[*].subscribed", "integer", 2),
                _field("$.data.changes[*].date", "string"),
                _field("$.data.changes[*].item", "string"),
            ]
        },
    }


# --- nginx ---------------------------------------------------------------------------------


def _nginx_config(folder: Path, workers: int, server_block: str) -> Path:
    config = folder / "nginx.conf"
    config.write_text(
        f"""
user root;
daemon off;
worker_processes {workers};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    {server_block}
}}
"""
    )
    return config


@contextlib.contextmanager
def nginx(folder: Path, workers: int, server_block: str, port: int) -> Iterator[str]:
    """Our own nginx (never the system's configuration) until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    config = _nginx_config(folder, workers, server_block)
    process = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "stderr.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(base + "/", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "stderr.log").read_text()[-2000:])
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextlib.contextmanager
def static_upstream(folder: Path, document: dict[str, Any]) -> Iterator[str]:
    """nginx answering `document` to a POST (or GET) of UPSTREAM_PATH; its base URL."""
    www = folder / "www"
    target = www / UPSTREAM_PATH.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(json.dumps(document, ensure_ascii=False).encode())
    port = free_port()
    # The static module refuses POST with 405; `error_page 405 =200 $uri` serves the file.
    block = f"""
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {www};
        location / {{ default_type application/json; error_page 405 =200 $uri; }}
    }}"""
    with nginx(folder / "upstream-nginx", 1, block, port) as base:
        yield base


@contextlib.contextmanager
def nginx_proxy(folder: Path, upstream: str, workers: int) -> Iterator[str]:
    port = free_port()
    block = f"""
    upstream origin {{ server {upstream.removeprefix("http://")}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    with nginx(folder / f"proxy-nginx-{workers}", workers, block, port) as base:
        yield base


# --- wrk with a POST body ------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx answers plus socket errors


def post_script(folder: Path, body: dict[str, Any]) -> Path:
    script = folder / "post.lua"
    payload = json.dumps(body).replace("\\", "\\\\").replace("'", "\\'")
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{payload}'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
    )
    return script


def run_post(
    url: str,
    script: Path | None,
    *,
    seconds: float,
    connections: int,
    headers: dict[str, str] | None = None,
    timeout_s: int = 5,
) -> Run:
    command = [require_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += [f"--timeout={timeout_s}s", *(["-s", str(script)] if script else [])]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(bad.group(1)) if bad else 0
    count += sum(map(int, errors.groups())) if errors else 0
    return Run(rps, p50, p99, count)


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.requests_per_second for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.bad for r in runs),
    )


def server_pids(url: str) -> list[int]:
    """Every process holding the listening socket of `url` (a master and its workers)."""
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    return sorted({int(p) for p in re.findall(r"pid=(\d+)", out.stdout)})


def cpu_of(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- the gateway ---------------------------------------------------------------------------


@contextlib.contextmanager
def service_gateway(
    database_url: str,
    folder: Path,
    services: dict[str, dict[str, Any]],
    *,
    datasets: tuple[Path, ...] = (),
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[Gateway]:
    """Migrate, import the services (and datasets) with the CLI, make the accounts, serve,
    sign the data_admin in."""
    port = free_port()
    environment = {
        "OPENGATE_DATABASE_URL": database_url,
        "OPENGATE_DATA_DIR": str(folder / "var"),
        "OPENGATE_ISSUER": f"http://127.0.0.1:{port}",
        "OPENGATE_ACCESS_TOKEN_TTL": "3600",
        **(env or {}),
    }
    _cli(environment, "migrate")
    for name, document in services.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "service.json").write_text(json.dumps(document, ensure_ascii=False))
        _cli(environment, "services", "import", str(folder / name))
    for package in datasets:
        _cli(environment, "datasets", "import", str(package))
    password = "bench-admin-password"  # a throw-away database
    _cli(environment, "users", "create", "bench-admin", "--role", "data_admin",
         "--password-stdin", stdin=password + "\n")  # fmt: skip
    _cli(environment, "users", "create", "bench-dev", "--role", "developer")
    serve = [*CLI, "serve", "--port", str(port), "--workers", str(workers)]
    with server(serve, port, environment, "/readyz") as base:
        login = httpx.post(
            f"{base}/auth/login", json={"username": "bench-admin", "password": password}
        )
        login.raise_for_status()
        yield Gateway(base, environment, login.json()["access_token"])


def granted_caller(gateway: Gateway, *services: str) -> dict[str, str]:
    """A new app granted mode `call` (default transforms) on `services`; its auth header."""
    client_id = gateway.app("bench-caller")
    for service in services:
        gateway.grant(client_id, service, modes=["call"])
    return {"Authorization": f"Bearer {gateway.token(client_id)}"}


def check_masked(url: str, headers: dict[str, str]) -> str:
    """One call: 200, declared members only, nothing of CLEAR_SECRETS in clear."""
    answer = httpx.post(url, json=CALL_BODY, headers=headers, timeout=10)
    if answer.status_code != 200:
        raise RuntimeError(f"gateway call: {answer.status_code} {answer.text}")
    leaked = [s for s in CLEAR_SECRETS if s in answer.text]
    if leaked or "trace" in answer.json() or "internal_id" in answer.json()["data"]:
        raise RuntimeError(f"gateway call shows {leaked or 'undeclared members'}: {answer.text}")
    return answer.text


# --- the comparison ------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A new installation's database: a SQLite file in `folder`, or a throw-away PostgreSQL
    database (dropped afterwards)."""
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder}/bench.db"
    else:
        with postgres_database() as url:
            yield url


def compare(label: str, args: argparse.Namespace, tmp: Path) -> None:
    script = post_script(tmp, CALL_BODY)
    document = upstream_answer()
    size = len(json.dumps(document, ensure_ascii=False).encode())
    with static_upstream(tmp, document) as upstream:
        upstream_url = upstream + UPSTREAM_PATH
        services = {"bench-credit": service_document("bench-credit", upstream_url)}
        for workers in args.workers:
            folder = tmp / f"{label}-{workers}"
            with contextlib.ExitStack() as stack:
                database_url = stack.enter_context(database(args.only, folder))
                gateway = stack.enter_context(
                    service_gateway(database_url, folder, services, workers=workers)
                )
                auth = granted_caller(gateway, "bench-credit")
                gateway_url = f"{gateway.base}/api/v1/services/bench-credit/call"
                shown = check_masked(gateway_url, auth)
                if args.baseline:
                    # The same installation served by another tree's code (the change's
                    # A/B): same database, same issuer, so the same token works.
                    port = free_port()
                    boot = (
                        f"import sys; sys.path.insert(0, {str(args.baseline)!r}); "
                        "from gateway.cli import main; "
                        f"sys.argv = ['opengate', 'serve', '--port', '{port}', "
                        f"'--workers', '{workers}']; main()"
                    )
                    base = stack.enter_context(
                        server([PYTHON, "-c", boot], port, gateway.env, "/readyz")
                    )
                    check_masked(f"{base}/api/v1/services/bench-credit/call", auth)
                    targets = {"gateway": (gateway_url, auth)}
                    targets["gateway baseline"] = (
                        f"{base}/api/v1/services/bench-credit/call",
                        auth,
                    )
                    throughput(label, workers, targets, script, args)
                    targets["upstream direct"] = (upstream_url, None)
                    added_latency(label, targets, script, args)
                    continue
                proxy = stack.enter_context(nginx_proxy(tmp, upstream, workers))
                targets: dict[str, tuple[str, dict[str, str] | None]] = {
                    "gateway": (gateway_url, auth),
                    "nginx": (proxy + UPSTREAM_PATH, None),
                }
                for client in args.clients:
                    port = free_port()
                    command = [PYTHON, "-m", "uvicorn", "bench.naive_proxy:app", "--port",
                               str(port), "--workers", str(workers), "--no-server-header",
                               "--no-access-log", "--log-level", "warning"]  # fmt: skip
                    env = {"BENCH_UPSTREAM": upstream_url, "BENCH_CLIENT": client}
                    naive = stack.enter_context(server(command, port, env, "/healthz"))
                    targets[f"naive {client}"] = (f"{naive}/proxy", None)
                if workers == args.workers[0]:
                    print(
                        f"upstream answer {size} bytes; the gateway shows {len(shown.encode())}"
                        f" bytes: {shown[:160]}…"
                    )
                throughput(label, workers, targets, script, args)
                if workers == args.workers[0]:
                    targets["upstream direct"] = (upstream_url, None)
                    added_latency(label, targets, script, args)


def throughput(
    label: str,
    workers: int,
    targets: dict[str, tuple[str, dict[str, str] | None]],
    script: Path,
    args: argparse.Namespace,
) -> None:
    for url, headers in targets.values():  # warm up: pools, caches, the JIT of nothing
        run_post(url, script, seconds=2, connections=args.connections, headers=headers)
    runs: dict[str, list[Run]] = {name: [] for name in targets}
    names = list(targets)
    # CPU seconds each server's processes spent, and the requests they answered.
    pids = {name: server_pids(url) for name, (url, _) in targets.items()}
    cpu = {name: [0.0, 0.0] for name in targets}
    for i in range(args.rounds):
        # Rotate who goes first: outside load on a shared machine drifts during a run.
        for name in names[i % len(names) :] + names[: i % len(names)]:
            url, headers = targets[name]
            before = cpu_of(pids[name])
            runs[name].append(
                run_post(
                    url, script, seconds=args.seconds, connections=args.connections,
                    headers=headers,
                )
            )  # fmt: skip
            cpu[name][0] += cpu_of(pids[name]) - before
            cpu[name][1] += runs[name][-1].requests_per_second * args.seconds
        if args.verbose:
            print(f"  round {i + 1}: " + ", ".join(
                f"{n} {runs[n][-1].requests_per_second:.0f}" for n in names
            ) + f" | {uptime()}")  # fmt: skip
    result = {name: median_run(r) for name, r in runs.items()}
    print(
        f"{label}, {workers} worker(s), wrk -t1 -c{args.connections}, {args.rounds} rounds of "
        f"{args.seconds}s, medians:"
    )
    for name, r in result.items():
        print(
            f"  {name:<16} {r.requests_per_second:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
            f"p99 {r.p99_ms:6.2f} ms  CPU {1000 * cpu[name][0] / cpu[name][1]:.3f} ms a request"
            + (f"  INVALID: {r.bad} bad answers" if r.bad else "")
        )
    gw = result["gateway"].requests_per_second
    if "nginx" not in result:  # an A/B of two trees
        print("  CPU a request, baseline ÷ gateway: "
              f"{cpu_ms(cpu, 'gateway baseline') / cpu_ms(cpu, 'gateway'):.3f}")  # fmt: skip
        return
    to_nginx = gw / result["nginx"].requests_per_second
    print(f"  gateway / nginx       {to_nginx:.2f} (bar ≥ 0.35) {verdict(to_nginx >= 0.35)}")
    for name in result:
        if name.startswith("naive"):
            ratio = gw / result[name].requests_per_second
            bar = f" (bar ≥ 3) {verdict(ratio >= 3)}" if "httpx" in name else ""
            print(f"  gateway / {name:<11} {ratio:.2f}{bar}")
    print("  CPU a request, other ÷ gateway (the req/s ratio when each has an idle core): "
          + ", ".join(f"{n} {cpu_ms(cpu, n) / cpu_ms(cpu, 'gateway'):.2f}"
                      for n in names if n != "gateway"))  # fmt: skip


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def cpu_ms(cpu: dict[str, list[float]], name: str) -> float:
    return 1000 * cpu[name][0] / cpu[name][1]


def added_latency(
    label: str,
    targets: dict[str, tuple[str, dict[str, str] | None]],
    script: Path,
    args: argparse.Namespace,
) -> None:
    runs: dict[str, list[Run]] = {name: [] for name in targets}
    names = list(targets)
    for i in range(args.rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            url, headers = targets[name]
            runs[name].append(
                run_post(url, script, seconds=args.latency_seconds, connections=1, headers=headers)
            )
    result = {name: median_run(r) for name, r in runs.items()}
    print(
        f"{label}, one connection (wrk -t1 -c1), {args.rounds} rounds of {args.latency_seconds}s:"
    )
    for name, r in result.items():
        print(
            f"  {name:<16} p50 {r.p50_ms:6.3f} ms  p99 {r.p99_ms:6.3f} ms  "
            f"({r.requests_per_second:.0f} req/s)" + (f"  INVALID: {r.bad} bad" if r.bad else "")
        )
    added = result["gateway"].p50_ms - result["upstream direct"].p50_ms
    print(f"  gateway p50 − upstream direct p50 = {added:.3f} ms (bar ≤ 2) {verdict(added <= 2)}")


def profile(args: argparse.Namespace, tmp: Path) -> None:
    """Where one worker's time goes on the call path: the gateway is set up and granted by a
    `serve` process, then served in this process under cProfile (the event loop's thread
    and each worker thread its own profiler, merged) while wrk loads it."""
    import cProfile
    import pstats
    import threading

    import uvicorn

    script = post_script(tmp, CALL_BODY)
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(static_upstream(tmp, upstream_answer()))
        services = {"bench-credit": service_document("bench-credit", upstream + UPSTREAM_PATH)}
        url = stack.enter_context(database(args.only, tmp))  # outlives the serve process
        with service_gateway(url, tmp / "gw", services) as gateway:
            auth = granted_caller(gateway, "bench-credit")
            environment = dict(gateway.env)
        os.environ.update(environment)
        os.environ.update(
            {f"OPENGATE_RATE_{k}": "100000000/minute" for k in ("ANON", "APP", "DATA")}
        )
        from gateway.app import create_app

        port = int(gateway.base.rsplit(":", 1)[1])
        config = uvicorn.Config(create_app(), port=port, log_level="warning", access_log=False)
        served = uvicorn.Server(config)
        profiles: list[cProfile.Profile] = []

        def each_thread(*_: Any) -> None:
            threading.setprofile(None)
            mine = cProfile.Profile(time.thread_time)  # CPU, not waits
            profiles.append(mine)
            mine.enable()

        def load() -> None:
            while not served.started:
                time.sleep(0.1)
            url = f"{gateway.base}/api/v1/services/bench-credit/call"
            check_masked(url, auth)
            run_post(url, script, seconds=args.seconds, connections=args.connections, headers=auth)
            served.should_exit = True

        main_profile = cProfile.Profile(time.thread_time)
        # cProfile only sees the thread that enables it: enable it in the loop's thread.
        loop_thread = threading.Thread(target=load)
        original = served.main_loop

        async def profiled_loop() -> None:
            loop_thread.start()
            main_profile.enable()
            await original()
            main_profile.disable()

        served.main_loop = profiled_loop  # type: ignore[method-assign]
        threading.setprofile(each_thread)  # before the worker threads start
        served.run()
        loop_thread.join()
        stats = pstats.Stats(main_profile)
        for other in profiles:
            with contextlib.suppress(TypeError):
                stats.add(other)
        stats.sort_stats(args.sort).print_stats(args.top)
        by_part(stats)


def by_part(stats: Any) -> None:
    """Own CPU time summed by where the code lives: the project's packages, each library."""
    parts: collections.Counter[str] = collections.Counter()
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():
        if "site-packages/" in filename:
            part = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/lib/python3" in filename:
            part = "stdlib " + filename.rsplit("/", 1)[1].removesuffix(".py")
        elif filename.startswith("/"):
            part = filename.rsplit("/", 2)[-2]  # the project's package
        else:
            part = function  # a built-in: {method 'execute' of 'sqlite3.Connection' ...}
        parts[part] += own
    total = sum(parts.values())
    print(f"own CPU by part, {total:.2f} s in all:")
    for part, own in parts.most_common(25):
        print(f"  {100 * own / total:5.1f}%  {part}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--latency-seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--clients", nargs="+", choices=["httpx", "aiohttp"], default=["httpx", "aiohttp"]
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of other code: gateway vs that gateway only"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one in-process worker")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    if args.profile:
        with tempfile.TemporaryDirectory() as name:
            profile(args, Path(name))
        return
    require_wrk()
    if not os.path.exists(NGINX):
        raise SystemExit(f"{NGINX} is missing: apt-get install nginx")
    print(uptime())
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        compare("SQLite" if args.only == "sqlite" else "PostgreSQL", args, tmp)
    print(uptime())


if __name__ == "__main__":
    main()
