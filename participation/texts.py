"""What a person types into a report or a demand: trimmed, present when required, within
its length, and without control characters; each refusal a Chinese sentence naming the
field. HTML is kept as typed (pages escape it; it is never executed)."""

from __future__ import annotations

import unicodedata

from kernel.problems import Problem


def text(name: str, label: str, value: str | None, *, limit: int, required: bool = True) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise Problem(400, "invalid_parameter", f"请填写{label}", parameter=name)
        return ""
    if len(cleaned) > limit:
        raise Problem(
            400,
            "invalid_parameter",
            f"{label}最多 {limit} 个字，当前 {len(cleaned)} 个字",
            parameter=name,
        )
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in cleaned):
        raise Problem(400, "invalid_parameter", f"{label}中含有控制字符", parameter=name)
    return cleaned
