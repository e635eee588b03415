"""The `policy` document an app reads at `GET /datasets/{id}/policy`, built from the
access plans of its modes. The endpoint builds it from the plans of the app's live grant;
the administrator console builds it from the terms a reviewer is about to save, through
the same `decide()`, so the confirm step shows exactly what the app will get."""

from __future__ import annotations

from typing import Any

from catalog.hosted import HostedDataset
from policies.decide import MODES, Caller, GrantTerms, Plan, decide
from policies.grants import Terms, epsilon_bounds


def policy_modes(hosted: HostedDataset, plans: dict[str, Plan]) -> dict[str, Any]:
    """The `modes` member: per mode, each field with its transform and why."""
    modes: dict[str, Any] = {}
    for mode, plan in plans.items():
        modes[mode] = {
            "fields": [
                {
                    "name": f.name,
                    "transform": f.transform,
                    "reason": f.reason,
                    "level": hosted.by_name[f.name].level,
                    "pii": hosted.by_name[f.name].pii,
                }
                for f in plan.fields
            ],
        }
        if mode == "aggregate":
            modes[mode]["k"] = plan.k
    return modes


def proposed_policy(
    hosted: HostedDataset,
    *,
    client_id: str,
    purpose: str,
    terms: Terms,
    grant_id: int | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """The policy document of a grant with `terms`, before it is saved (quotas unused, the
    whole privacy budget left)."""
    grant = GrantTerms(
        id=grant_id or 0,  # a new grant: its id is known once saved (shown as null)
        version=version,
        purpose=purpose,
        modes=tuple(terms.modes),
        fields=tuple(terms.fields) if terms.fields is not None else None,
        transforms=terms.transforms,
        row_filter=terms.row_filter,
        quotas=terms.quotas,
        k=terms.k,
        epsilon=terms.epsilon,
        epsilon_spent=0.0,
        epsilon_floor=terms.epsilon_floor,
        epsilon_ceiling=terms.epsilon_ceiling,
    )
    caller = Caller(kind="app", client_id=client_id)
    plans = {
        mode: decide(caller=caller, hosted=hosted, mode=mode, grant=grant)
        for mode in MODES
        if mode in grant.modes
    }
    modes = policy_modes(hosted, plans)
    if grant_id is None:  # decide() names the grant by id in each reason
        for mode in modes.values():
            for f in mode["fields"]:
                f["reason"] = f["reason"].replace("grant 0 ", "grant new ", 1)
    answer: dict[str, Any] = {
        "dataset": hosted.id,
        "open_type": hosted.open_type,
        "modes": modes,
        "grant": {"id": grant_id, "version": version, "purpose": purpose},
        "quotas": {
            key: {"limit": limit, "used": 0, "remaining": limit}
            for key, limit in terms.quotas.items()
        },
    }
    bounds = epsilon_bounds(terms.epsilon, terms.epsilon_floor, terms.epsilon_ceiling)
    if terms.epsilon is not None and bounds is not None:
        answer["privacy"] = {
            "epsilon": terms.epsilon,
            "epsilon_spent": 0.0,
            "epsilon_remaining": terms.epsilon,
            "epsilon_floor": bounds[0],
            "epsilon_ceiling": bounds[1],
        }
    return answer
