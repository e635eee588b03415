"""Reading `service.json` (contract §12): what a good package gives, and every refusal as one
Chinese line naming the file and the member."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from catalog.models import FieldType, OpenType, Pii
from catalog.package import PackageError
from services.package import (
    MAX_SERVICE_BYTES,
    ServicePackageError,
    parse_service,
    read_service,
)
from services.paths import PathLimits


def write(folder: Path, doc: Any, *, raw: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = raw if raw is not None else json.dumps(doc, ensure_ascii=False).encode()
    (folder / "service.json").write_bytes(data)
    return folder


def test_a_good_package(tmp_path: Path, descriptor: dict[str, Any]):
    spec = read_service(write(tmp_path / "svc", descriptor))
    assert spec.name == "company-credit" and spec.title == "企业信用信息核验"
    assert spec.open_type is OpenType.conditional and spec.zone == "public"
    assert spec.upstream.url == "http://127.0.0.1:9101/credit"
    assert (spec.upstream.method, spec.upstream.timeout_ms) == ("POST", 2000)
    uscc, legal_id, year, detail = spec.parameters
    assert (uscc.location, uscc.required, uscc.type, uscc.level) == (
        "body",
        True,
        FieldType.string,
        2,
    )
    assert (legal_id.level, legal_id.pii, legal_id.required) == (4, Pii.id_number, False)
    assert (year.location, year.type, year.level, year.pii) == (
        "query",
        FieldType.integer,
        1,
        Pii.none,
    )
    assert detail.type is FieldType.boolean
    assert [f.path for f in spec.fields] == [f["path"] for f in descriptor["response"]["fields"]]
    assert spec.by_path["$.data.legal_id"].pii is Pii.id_number
    assert spec.level == 4
    assert spec.tree.paths == tuple(f.path for f in spec.fields)
    # The file itself, a BOM, and a descriptor given as data all read the same.
    bom = write(tmp_path / "bom", None, raw=b"\xef\xbb\xbf" + json.dumps(descriptor).encode())
    assert read_service(bom / "service.json") == spec == parse_service(descriptor)


def test_defaults(descriptor: dict[str, Any]):
    descriptor["upstream"] = {"url": "https://api.example.cn/v1/q"}
    descriptor["parameters"] = [{"name": "q", "in": "query"}]
    descriptor["response"]["fields"] = [{"path": "$.ok"}]
    spec = parse_service(descriptor)
    assert (spec.upstream.method, spec.upstream.timeout_ms) == ("GET", 3000)
    (q,) = spec.parameters
    assert (q.type, q.required, q.level, q.pii) == (FieldType.string, False, 1, Pii.none)
    (ok,) = spec.fields
    assert (ok.type, ok.level, ok.pii) == (FieldType.string, 1, Pii.none)


def test_paths_are_kept_in_canonical_form(descriptor: dict[str, Any]):
    descriptor["response"]["fields"] = [
        {"path": "$['data'][\"name\"]"},
        {"path": "$['企业 名称']"},
        {"path": "$.企业代码"},
    ]
    spec = parse_service(descriptor)
    assert [f.path for f in spec.fields] == ["$.data.name", "$['企业 名称']", "$.企业代码"]


def set_in(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split("/")
    for key in parents:
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    if isinstance(doc, list):
        doc[int(last)] = value
    elif value is _DELETE:
        del doc[last]
    else:
        doc[last] = value


_DELETE = object()

BAD = [
    ("name", "Company_Credit", "service.json：服务名称 name 'Company_Credit' 不合法"),
    ("name", _DELETE, "服务名称 name None 不合法"),
    ("title", " ", "service.json：title 为必填项，不能为空"),
    ("title", 5, "title 必须是字符串"),
    ("publisher", "市\x00局", "publisher 含有 NUL 字符"),
    ("keywords", "信用", "keywords 必须是字符串列表"),
    (
        "open_type",
        "public",
        "open_type 的取值 'public' 无效，可选：unconditional、conditional、closed",
    ),
    ("open_type", _DELETE, "缺少 open_type"),
    ("paramters", [], "service.json：顶层 含有未知成员 paramters；可用："),
    ("upstream", _DELETE, "缺少 upstream"),
    ("upstream", "http://x", "service.json：upstream 必须是 JSON 对象"),
    ("upstream/url", "ftp://host/x", "upstream.url 须为 http:// 或 https:// 开头的完整地址"),
    ("upstream/url", "/relative", "upstream.url 须为 http:// 或 https:// 开头的完整地址"),
    ("upstream/url", "http://user:pw@host/x", "upstream.url 不能含有用户名或密码"),
    ("upstream/url", "http://host:99999/x", "upstream.url 不是有效的地址"),
    ("upstream/url", "http://host/x#frag", "url 不能含有片段（#）或空白字符"),
    ("upstream/url", _DELETE, "upstream.url 为必填项"),
    ("upstream/method", "DELETE", "upstream.method 的取值 'DELETE' 无效，可选：GET、POST"),
    ("upstream/timeout_ms", 0, "upstream.timeout_ms 的取值 0 无效，须为 100–60000 的整数"),
    ("upstream/timeout_ms", 90_000, "timeout_ms 的取值 90000 无效"),
    ("upstream/timeout_ms", "2000", "timeout_ms 的取值 '2000' 无效"),
    ("upstream/timeout_ms", True, "timeout_ms 的取值 True 无效"),
    ("upstream/retries", 3, "upstream 含有未知成员 retries"),
    ("parameters", {}, "parameters 必须是列表"),
    ("parameters/0", "uscc", "parameters 第 1 项 必须是 JSON 对象"),
    ("parameters/0/name", "1abc", "parameters 第 1 项：参数名 name '1abc' 不合法"),
    ("parameters/0/name", "a b", "参数名 name 'a b' 不合法"),
    ("parameters/0/in", "header", "参数 uscc：in 的取值 'header' 无效，可选：query、body"),
    ("parameters/0/in", _DELETE, "参数 uscc：in 的取值 None 无效"),
    ("parameters/0/type", "text", "参数 uscc：type 的取值 'text' 无效，可选：string、integer"),
    ("parameters/0/required", "yes", "参数 uscc：required 的取值 'yes' 无效，可选：true、false"),
    ("parameters/0/level", 5, "参数 uscc：level 的取值 5 无效，须为整数，可选：1、2、3、4"),
    ("parameters/0/level", True, "参数 uscc：level 的取值 True 无效"),
    ("parameters/0/pii", "passport", "参数 uscc：pii 的取值 'passport' 无效，可选：none、name"),
    ("parameters/0/requried", True, "parameters 第 1 项 含有未知成员 requried"),
    ("parameters/1/name", "USCC", "参数 USCC：重复定义（参数名不区分大小写）"),
    ("response", _DELETE, "service.json：response 必须是 JSON 对象"),
    ("response/fields", [], "response.fields 必须是非空列表"),
    ("response/fields/0", [], "response.fields 第 1 项 必须是 JSON 对象"),
    ("response/fields/0/path", "data.code", "response.fields 第 1 项：路径 data.code 须以 $ 开头"),
    ("response/fields/0/path", "$.a[0]", "response.fields 第 1 项：路径 $.a[0] 第 4 个字符"),
    ("response/fields/0/path", 7, "response.fields 第 1 项：路径 path 必须是字符串"),
    ("response/fields/0/type", "object", "应答字段 $.code：type 的取值 'object' 无效"),
    ("response/fields/0/level", 0, "应答字段 $.code：level 的取值 0 无效"),
    ("response/fields/0/pii", "id", "应答字段 $.code：pii 的取值 'id' 无效"),
    ("response/fields/0/mask", "x", "response.fields 第 1 项 含有未知成员 mask"),
    ("response/fields/1/path", "$.code", "response.fields：路径 $.code 重复声明"),
    (
        "response/fields/1/path",
        "$.code.x",
        "路径 $.code.x 与 $.code 冲突：$.code 不能既是标量又是对象",
    ),
    (
        "response/fields/8/path",
        "$.data.tags.x",
        "路径 $.data.tags[*] 与 $.data.tags.x 冲突：$.data.tags 不能既是对象又是数组",
    ),
    ("response/schema", {}, "response 含有未知成员 schema"),
]


@pytest.mark.parametrize(("where", "value", "message"), BAD)
def test_refusals_name_the_file_and_the_member(
    descriptor: dict[str, Any], where: str, value: Any, message: str
):
    set_in(descriptor, where, value)
    with pytest.raises(ServicePackageError) as caught:
        parse_service(descriptor)
    assert message in str(caught.value)
    assert str(caught.value).startswith("service.json")
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, PackageError)  # the CLI's one catch for both packages


def test_get_has_no_body_parameters(descriptor: dict[str, Any]):
    descriptor["upstream"]["method"] = "GET"
    with pytest.raises(ServicePackageError, match="参数 uscc：上游方法为 GET，没有请求体"):
        parse_service(descriptor)


@pytest.mark.parametrize(
    ("kind", "index", "message"),
    [
        ("parameters", 1, "参数 legal_id：无条件开放（unconditional）服务不允许 4 级参数"),
        ("fields", 2, "应答字段 $.data.legal_person：无条件开放（unconditional）服务不允许 3 级"),
    ],
)
def test_unconditional_services_stay_at_level_2(
    descriptor: dict[str, Any], kind: str, index: int, message: str
):
    descriptor["open_type"] = "unconditional"
    parameters, fields = descriptor["parameters"], descriptor["response"]["fields"]
    low = {
        "parameters": [p for p in parameters if p.get("level", 1) <= 2],
        "fields": [f for f in fields if f.get("level", 1) <= 2],
    }
    descriptor["parameters"], descriptor["response"]["fields"] = low["parameters"], low["fields"]
    assert parse_service(descriptor).level == 2  # at most level 2: accepted
    low[kind].append((parameters if kind == "parameters" else fields)[index])
    with pytest.raises(ServicePackageError, match=re.escape(message)):
        parse_service(descriptor)


def test_limits(descriptor: dict[str, Any]):
    descriptor["parameters"] = [{"name": f"p{i}", "in": "query"} for i in range(65)]
    with pytest.raises(ServicePackageError, match="parameters 超过 64 个的上限"):
        parse_service(descriptor)
    descriptor["parameters"] = []
    descriptor["response"]["fields"] = [{"path": f"$.f{i}"} for i in range(4)]
    with pytest.raises(ServicePackageError, match="fields 超过 3 个的上限"):
        parse_service(descriptor, PathLimits(max_paths=3))
    deep = "$" + ".a" * 17
    descriptor["response"]["fields"] = [{"path": deep}]
    with pytest.raises(ServicePackageError, match="超过 16 段的上限"):
        parse_service(descriptor)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": "x",}', "service.json 第 1 行第 14 列：不是有效的 JSON（键名须用双引号括起）"),
        (b'{"name": "\xff"}', "service.json：不是有效的 UTF-8 编码（第 11 个字节）"),
        (b"[1, 2]", "service.json：顶层必须是一个 JSON 对象"),
        (b"[" * 40 + b"]" * 40, "service.json：嵌套超过 32 层的上限"),
        (b" " * (MAX_SERVICE_BYTES + 1), f"service.json：超过 {MAX_SERVICE_BYTES} 字节的上限"),
    ],
)
def test_unreadable_files(tmp_path: Path, raw: bytes, message: str):
    with pytest.raises(ServicePackageError) as caught:
        read_service(write(tmp_path, None, raw=raw))
    assert str(caught.value) == message or str(caught.value).startswith(message)


def test_a_folder_without_the_file(tmp_path: Path):
    with pytest.raises(ServicePackageError, match=r"找不到 service\.json"):
        read_service(tmp_path)


def test_the_spec_is_frozen(descriptor: dict[str, Any]):
    spec = parse_service(descriptor)
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        spec.parameters[0].level = 1  # type: ignore[misc]
