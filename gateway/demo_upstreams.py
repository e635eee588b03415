"""The demo's two department APIs on loopback, behind which `opengate demo` publishes its
interface services: 企业信用信息核验 (市市场监督管理局) and 社保参保状态查询 (市人力资源和
社会保障局). Realistic Chinese answers, with members the service does not declare (the
gateway must drop them) and level-3/4 values (it must mask them).

The social-insurance one misbehaves on request — `POST /_control` with `{"delay_ms": 0,
"fail": false, "answer": "json"}` (`answer`: `html`, `redirect`, `huge`, or `raw`: the
text of `raw` as its JSON) — for the resilience tests and benches; `calls` counts what
reached it. Standard library only: a
threaded HTTP server in a daemon thread.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

ENTERPRISES: dict[str, dict[str, Any]] = {
    "91370202MA3C1PQ52K": {
        "name": "青岛海澜数字科技有限公司",
        "legal_person": "王海涛",
        "legal_person_id": "370202198507114517",
        "legal_person_phone": "13806421357",
        "status": "存续",
        "established": "2016-03-18",
        "registered_capital": 5000000,
        "address": "山东省青岛市市南区香港中路 61 号",
        "abnormal": False,
        "shareholders": [
            {"name": "王海涛", "id_number": "370202198507114517", "share": 0.6},
            {"name": "刘晓燕", "id_number": "370203198811023028", "share": 0.4},
        ],
    },
    "91370211MA3D2RT17X": {
        "name": "青岛西海岸港联物流有限公司",
        "legal_person": "赵立新",
        "legal_person_id": "370211197906230034",
        "legal_person_phone": "15963287410",
        "status": "存续",
        "established": "2012-09-05",
        "registered_capital": 20000000,
        "address": "山东省青岛市黄岛区长江中路 216 号",
        "abnormal": True,
        "shareholders": [{"name": "赵立新", "id_number": "370211197906230034", "share": 1.0}],
    },
}
INSURED: dict[str, dict[str, Any]] = {
    "370202198507114517": {
        "name": "王海涛",
        "insured": True,
        "unit": "青岛海澜数字科技有限公司",
        "months": 118,
        "monthly_base": 12800,
        "phone": "13806421357",
        "last_paid": "2026-11",
    },
    "370203198811023028": {
        "name": "刘晓燕",
        "insured": False,
        "unit": None,
        "months": 64,
        "monthly_base": None,
        "phone": "18653291046",
        "last_paid": "2024-06",
    },
}


class _Upstream(BaseHTTPRequestHandler):
    server: DemoUpstreams.Server  # type: ignore[name-defined]
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # the demo's console stays the gateway's
        return

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/hrss/insured":
            self._send(404, {"code": 404, "message": "接口不存在"})
            return
        control = self.server.control
        control["calls"] += 1
        if control["delay_ms"]:
            time.sleep(control["delay_ms"] / 1000)
        if control["fail"]:
            self._send(500, {"code": 500, "message": "数据库连接失败：ORA-12541"})
            return
        if control["answer"] == "html":
            self._send(200, "<html><body>系统维护中</body></html>".encode(), "text/html")
            return
        if control["answer"] == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://203.0.113.9/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if control["answer"] == "raw":  # whatever bytes the test set, as JSON
            self._send(200, control["raw"].encode())
            return
        if control["answer"] == "huge":
            self._send(200, {"code": 0, "data": {"name": "x" * (5 << 20)}})
            return
        query = parse_qs(url.query)
        person = INSURED.get((query.get("id_number") or [""])[0])
        if person is None:
            self._send(200, {"code": 0, "message": "未查询到参保记录", "data": None})
            return
        self._send(200, {"code": 0, "message": "成功", "trace": "hrss-7f3a", "data": person})

    def do_POST(self) -> None:
        url = urlparse(self.path)
        body = self._json_body()
        if url.path == "/_control" and isinstance(body, dict):
            self.server.control.update(
                delay_ms=int(body.get("delay_ms", 0)),
                fail=bool(body.get("fail", False)),
                answer=str(body.get("answer", "json")),
                raw=str(body.get("raw", "")),
            )
            self._send(200, self.server.control)
            return
        if url.path != "/amr/enterprise/verify":
            self._send(404, {"code": 404, "message": "接口不存在"})
            return
        code = body.get("credit_code") if isinstance(body, dict) else None
        found = ENTERPRISES.get(code or "")
        if found is None:
            self._send(200, {"code": 0, "message": "未找到该统一社会信用代码", "data": None})
            return
        data = {"credit_code": code, **found, "internal_id": "AMR-000183"}
        self._send(200, {"code": 0, "message": "成功", "data": data})


class DemoUpstreams:
    """Both upstreams on one loopback port, served from a daemon thread."""

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        control: dict[str, Any]

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = self.Server((host, port), _Upstream)
        self.server.control = {
            "delay_ms": 0,
            "fail": False,
            "answer": "json",
            "raw": "",
            "calls": 0,
        }
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DemoUpstreams:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def service_packages(base_url: str) -> dict[str, dict[str, Any]]:
    """The demo's two `service.json` documents, calling `base_url`."""
    return {
        "enterprise-credit-verify": {
            "name": "enterprise-credit-verify",
            "title": "企业信用信息核验",
            "description": "按统一社会信用代码核验企业登记状态、经营异常与股东信息。",
            "publisher": "市市场监督管理局",
            "theme": "法人",
            "keywords": ["企业信用", "市场主体", "核验"],
            "open_type": "conditional",
            "upstream": {
                "url": f"{base_url}/amr/enterprise/verify",
                "method": "POST",
                "timeout_ms": 2000,
            },
            "parameters": [
                {
                    "name": "credit_code",
                    "in": "body",
                    "type": "string",
                    "required": True,
                    "level": 1,
                    "pii": "none",
                    "title": "统一社会信用代码",
                },
            ],
            "response": {
                "fields": [
                    {"path": "$.code", "type": "integer", "level": 1, "pii": "none"},
                    {"path": "$.message", "type": "string", "level": 1, "pii": "none"},
                    {
                        "path": "$.data.credit_code",
                        "type": "string",
                        "level": 1,
                        "pii": "none",
                        "title": "统一社会信用代码",
                    },
                    {
                        "path": "$.data.name",
                        "type": "string",
                        "level": 1,
                        "pii": "none",
                        "title": "企业名称",
                    },
                    {
                        "path": "$.data.status",
                        "type": "string",
                        "level": 1,
                        "pii": "none",
                        "title": "登记状态",
                    },
                    {
                        "path": "$.data.abnormal",
                        "type": "boolean",
                        "level": 2,
                        "pii": "none",
                        "title": "是否列入经营异常名录",
                    },
                    {
                        "path": "$.data.legal_person",
                        "type": "string",
                        "level": 3,
                        "pii": "name",
                        "title": "法定代表人",
                    },
                    {
                        "path": "$.data.legal_person_id",
                        "type": "string",
                        "level": 4,
                        "pii": "id_number",
                        "title": "法定代表人身份证号",
                    },
                    {
                        "path": "$.data.shareholders[*].name",
                        "type": "string",
                        "level": 3,
                        "pii": "name",
                        "title": "股东姓名",
                    },
                    {
                        "path": "$.data.shareholders[*].share",
                        "type": "number",
                        "level": 2,
                        "pii": "none",
                        "title": "持股比例",
                    },
                ]
            },
        },
        "social-insurance-status": {
            "name": "social-insurance-status",
            "title": "社保参保状态查询",
            "description": "按身份证号查询个人当前参保状态与累计缴费月数（需授权）。",
            "publisher": "市人力资源和社会保障局",
            "theme": "社会保障",
            "keywords": ["社保", "参保", "核验"],
            "open_type": "conditional",
            "upstream": {
                "url": f"{base_url}/hrss/insured",
                "method": "GET",
                "timeout_ms": 1000,
            },
            "parameters": [
                {
                    "name": "id_number",
                    "in": "query",
                    "type": "string",
                    "required": True,
                    "level": 4,
                    "pii": "id_number",
                    "title": "身份证号",
                },
            ],
            "response": {
                "fields": [
                    {"path": "$.code", "type": "integer", "level": 1, "pii": "none"},
                    {"path": "$.message", "type": "string", "level": 1, "pii": "none"},
                    {
                        "path": "$.data.name",
                        "type": "string",
                        "level": 3,
                        "pii": "name",
                        "title": "姓名",
                    },
                    {
                        "path": "$.data.insured",
                        "type": "boolean",
                        "level": 2,
                        "pii": "none",
                        "title": "是否在保",
                    },
                    {
                        "path": "$.data.unit",
                        "type": "string",
                        "level": 2,
                        "pii": "none",
                        "title": "参保单位",
                    },
                    {
                        "path": "$.data.months",
                        "type": "integer",
                        "level": 2,
                        "pii": "none",
                        "title": "累计缴费月数",
                    },
                    {
                        "path": "$.data.phone",
                        "type": "string",
                        "level": 3,
                        "pii": "phone",
                        "title": "联系电话",
                    },
                ]
            },
        },
    }
