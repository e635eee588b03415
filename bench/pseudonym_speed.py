"""Pseudonyms, string masks and the five-field masking of 1000 rows, with and without the native
extension.

    python -m bench.pseudonym_speed [--repeat 30]

In-process only (no server): the rows are those of bench.masking_cost's data file, so the
values are realistic 18-character ID numbers and ~17-character emails. Each figure is the
best of `--repeat` timings of one pass over 1000 values or rows:

- per value: `pseudonym` (hmac.digest, the reference), the compiled pure-Python closure
  (`pseudonym_of` without the extension), the extension called per value, and the
  extension's `column` on all 1000 values at once (what `map_columns` uses);
- per mask: each string mask over 1000 values of its kind of field, as the Python function
  (mapped, as `map_columns` did) and as the extension's `Mask` (per value, and `column`);
- per 1000 rows: `map_columns` with the five transforms of bench-masked (mask_name, pseudonym
  of id_number, mask_phone, pseudonym of email, mask_address): all Python, native pseudonyms
  with Python masks (the extension before the masks), all native; and with every field clear
  for scale.

Bars (docs/decisions/0007-native-pseudonyms.md): the extension's pseudonym column ≤ 0.4 µs a
value, each mask's column ≤ 0.1 µs a value.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from bench.masking_cost import COLUMNS, PERSONAL, _data_file
from policies import _native
from policies.compiled import _identity, compile_transform, map_columns
from policies.masks import MASKS
from policies.pseudonyms import derive_app_key, pseudonym
from policies.transform_rules import default_transform

ROWS = 1000
BAR_US = 0.4
MASK_BAR_US = 0.1

# Each string mask and the field of the data file it is measured on (bank cards are made from
# the phone numbers: "6222 0" + 11 digits, grouped by spaces as people type them).
MASK_FIELDS = [
    ("mask_name", "person_name"),
    ("mask_id_number", "id_number"),
    ("mask_phone", "phone"),
    ("mask_bank_card", "bank_card"),
    ("mask_email", "email"),
    ("mask_address", "address"),
    ("mask_default", "employer"),
]


def load_rows(n: int) -> list[tuple[Any, ...]]:
    """`n` rows as the database hands them back: integers and dates typed, the rest text."""
    types = [ftype for _, ftype in COLUMNS]
    with _data_file(n).open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)  # header
        return [
            tuple(
                int(v) if t == "integer" else date.fromisoformat(v) if t == "date" else v
                for v, t in zip(row, types, strict=True)
            )
            for row in reader
        ]


@contextmanager
def python_only() -> Iterator[None]:
    """Compile transforms as an install without the extension would."""
    saved = _native.pseudonyms
    _native.pseudonyms = None
    try:
        yield
    finally:
        _native.pseudonyms = saved


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The best of `repeat` timings of `fn()`, in seconds (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def masking_steps(
    key: bytes, *, python_masks: bool = False
) -> list[tuple[int, Callable[[Any], Any]]]:
    """The five transformed fields of bench-masked, with their level defaults.

    `python_masks` keeps the string masks in Python whatever the pseudonyms are: the state of
    the extension before it had masks.
    """
    names = [name for name, _ in COLUMNS]
    steps = []
    for name, (level, pii) in PERSONAL.items():
        spec = default_transform(level, pii)
        fn = compile_transform(spec, key=key, pii=pii)
        if python_masks and spec in MASKS:
            fn = MASKS[spec]
        steps.append((names.index(name), fn))
    return steps


def mask_values(rows: list[tuple[Any, ...]], field: str) -> list[Any]:
    """The values of `field` in `rows` (bank cards made up from the phones)."""
    names = [name for name, _ in COLUMNS]
    if field == "bank_card":
        phones = [row[names.index("phone")] for row in rows]
        return [" ".join(("62220" + p)[i : i + 4] for i in range(0, 16, 4)) for p in phones]
    return [row[names.index(field)] for row in rows]


def mask_cases(values: list[Any], spec: str) -> list[tuple[str, Callable[[], Any]]]:
    """One pass over `values` by the Python mask and by the extension's."""
    python = MASKS[spec]
    cases: list[tuple[str, Callable[[], Any]]] = [("Python", lambda: list(map(python, values)))]
    native = _native.masks.get(spec)
    if native is not None:
        assert native.column(values) == list(map(python, values))
        cases.append(("extension, per value", lambda: list(map(native, values))))
        cases.append(("extension, column", lambda: native.column(values)))
    return cases


def pseudonym_cases(values: list[Any], key: bytes, pii: str) -> list[tuple[str, Callable[[], Any]]]:
    """One pass over `values` by each way of computing their pseudonyms."""
    with python_only():
        python = compile_transform("pseudonym", key=key, pii=pii)
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("hmac.digest (pseudonym)", lambda: [pseudonym(v, key, pii) for v in values]),
        ("pure Python (pseudonym_of)", lambda: list(map(python, values))),
    ]
    native = _native.pseudonyms
    if native:
        compiled = compile_transform("pseudonym", key=key, pii=pii)
        portable = native.make(key, f"{pii}:".encode(), python, portable=True)
        cases.append(("extension, per value", lambda: list(map(compiled, values))))
        cases.append(("extension, column", lambda: compiled.column(values)))
        cases.append(("extension, column, portable C", lambda: portable.column(values)))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    repeat = args.repeat

    rows = load_rows(ROWS)
    names = [name for name, _ in COLUMNS]
    key = derive_app_key(os.urandom(32), "bench-app")
    native = _native.pseudonyms
    print(f"extension: {'built, ' + native.IMPLEMENTATION if native else 'NOT BUILT'}")
    print(f"{'pseudonyms of 1000 values':<44} {'ms (= µs/value)':>15}")
    for pii in ("id_number", "email"):
        values = [row[names.index(pii)] for row in rows]
        for label, fn in pseudonym_cases(values, key, pii):
            print(f"  {pii + ': ' + label:<42} {best(fn, repeat) * 1e3:>15.3f}")

    print(f"{'masks of 1000 values':<44} {'ms (= µs/value)':>15}")
    mask_columns: dict[str, float] = {}
    for spec, field in MASK_FIELDS:
        values = mask_values(rows, field)
        for label, fn in mask_cases(values, spec):
            seconds = best(fn, repeat)
            if label == "extension, column":
                mask_columns[spec] = seconds
            print(f"  {spec + ': ' + label:<42} {seconds * 1e3:>15.3f}")

    print(f"{'map_columns of 1000 rows':<44} {'ms':>15}")
    with python_only():
        python_steps = masking_steps(key)
    clear = [(i, _identity) for i, _ in python_steps]
    timings = [("every field clear (identity)", best(lambda: map_columns(rows, clear), repeat))]
    timings.append(
        ("five fields, pure Python", best(lambda: map_columns(rows, python_steps), repeat))
    )
    if native:
        expected = map_columns(rows, python_steps)
        for label, steps in [
            ("five fields, native pseudonyms only", masking_steps(key, python_masks=True)),
            ("five fields, extension", masking_steps(key)),
        ]:
            assert map_columns(rows, steps) == expected
            timings.append((label, best(lambda s=steps: map_columns(rows, s), repeat)))
    for label, seconds in timings:
        print(f"  {label:<42} {seconds * 1e3:>15.3f}")
    if native:
        values = [row[names.index("id_number")] for row in rows]
        ids = compile_transform("pseudonym", key=key, pii="id_number")
        per_value = best(lambda: ids.column(values), repeat) / ROWS * 1e6
        verdict = "PASS" if per_value <= BAR_US else "FAIL"
        print(f"bar: column ≤ {BAR_US} µs/value: {per_value:.3f} µs/value: {verdict}")
    if mask_columns:
        worst, seconds = max(mask_columns.items(), key=lambda item: item[1])
        per_value = seconds / ROWS * 1e6
        verdict = "PASS" if per_value <= MASK_BAR_US else "FAIL"
        print(
            f"bar: every mask column ≤ {MASK_BAR_US} µs/value: {per_value:.3f} µs/value "
            f"({worst}): {verdict}"
        )


if __name__ == "__main__":
    main()
