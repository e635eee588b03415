"""The production password hash is Argon2id at RFC 9106's recommended cost. The test suite
swaps in a cheap hasher for speed (tests/conftest.py), so this asks a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import argon2

SHIPPED = (
    "from auth.secrets import hash_password, verify_password\n"
    "h = hash_password('一个足够长的口令')\n"
    "assert verify_password(h, '一个足够长的口令') and not verify_password(h, '别的口令')\n"
    "print(h)\n"
)


def test_the_shipped_hasher_uses_rfc_9106_parameters() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SHIPPED], capture_output=True, text=True, check=True
    ).stdout
    parameters = argon2.extract_parameters(out.strip())
    expected = argon2.profiles.RFC_9106_LOW_MEMORY
    assert parameters.type is argon2.Type.ID
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        expected.time_cost,
        expected.memory_cost,
        expected.parallelism,
    )
