"""The transforms of a service's response paths under a grant: contract §3's rules and
policies' compiled maskers, applied to a path instead of a record field.

The lead's enforcement (mode `call`) decides a spec per visible path, as it does per field
of a dataset; this turns those specs into the callables `services.paths` applies, with the
same `compile_transform` the records path uses, so that a path is transformed exactly as a
record field of the same level, pii and value would be.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies.compiled import compile_transform
from policies.transform_rules import default_transform
from services.package import ServiceSpec
from services.paths import DEFAULT_PROJECTION_LIMITS, ProjectionLimits, Projector, Transform


def default_specs(service: ServiceSpec) -> dict[str, str]:
    """Each declared path's default transform in a grant that names none (contract §3)."""
    return {f.path: default_transform(f.level, f.pii.value) for f in service.fields}


def compile_specs(
    service: ServiceSpec, specs: Mapping[str, str], *, key: bytes | None
) -> dict[str, Transform]:
    """The callable of each path in `specs` (a subset of the declared paths); `key` is the
    app's pseudonym key, needed when a spec is `pseudonym`."""
    by_path = service.by_path
    unknown = [p for p in specs if p not in by_path]
    if unknown:
        raise ValueError(f"not declared by {service.name}: {', '.join(unknown[:5])}")
    return {
        path: compile_transform(spec, key=key, pii=by_path[path].pii.value)
        for path, spec in specs.items()
    }


def projector(
    service: ServiceSpec,
    specs: Mapping[str, str],
    *,
    key: bytes | None,
    limits: ProjectionLimits = DEFAULT_PROJECTION_LIMITS,
) -> Projector:
    """A projector showing the paths of `specs`, each under its spec; every other member of
    the answer, declared or not, is dropped. Compile once per plan, call per answer.

    A grant that shows no path at all has nothing to answer with: the caller refuses the
    call (`field_not_permitted`) before it gets here, and an empty `specs` is a ValueError.
    """
    if not specs:
        raise ValueError(f"no response path of {service.name} is shown")
    tree = service.tree if len(specs) == len(service.fields) else service.tree.only(specs)
    return tree.bind(compile_specs(service, specs, key=key), limits)
