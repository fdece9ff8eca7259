"""Status conditions in the ``metav1.Condition`` shape.

Semantics follow apimachinery's ``meta.SetStatusCondition``:
``lastTransitionTime`` moves only when the status flips, while reason,
message and observedGeneration always take the latest values. Conditions are
plain dicts (they go straight into the status JSON).
"""

from typing import Any, Callable, Literal, NotRequired, Optional, TypedDict, Union

from .clock import now_rfc3339

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(TypedDict):
    type: str
    status: ConditionStatus
    reason: str
    message: str
    #: RFC 3339; "" until :func:`set_condition` decides it.
    lastTransitionTime: str
    #: The parent's metadata.generation this condition describes; omitted when unknown.
    observedGeneration: NotRequired[int]


def condition(
    type_: str,
    status: Union[bool, ConditionStatus],
    reason: str,
    message: str = "",
    *,
    observed_generation: Optional[int] = None,
    last_transition_time: str = "",
) -> Condition:
    """A condition; ``status`` may be a bool or "True"/"False"/"Unknown"."""
    if isinstance(status, bool):
        status = "True" if status else "False"
    c: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": last_transition_time,
    }
    if observed_generation is not None:
        c["observedGeneration"] = observed_generation
    return c


def set_condition(
    conditions: list[Condition],
    cond: Condition,
    now: Callable[[], str] = now_rfc3339,
) -> bool:
    """Sets ``cond`` in ``conditions`` (in place), replacing one of the same type.

    The transition time is kept from the existing condition when the status
    did not change; otherwise it is the condition's own (if set) or ``now()``.
    Returns whether anything changed.
    """
    new: Condition = dict(cond)  # type: ignore[assignment]
    for i, existing in enumerate(conditions):
        if existing["type"] == new["type"]:
            if existing["status"] == new["status"]:
                new["lastTransitionTime"] = existing["lastTransitionTime"]
            elif not new.get("lastTransitionTime"):
                new["lastTransitionTime"] = now()
            changed = existing != new
            conditions[i] = new
            return changed
    if not new.get("lastTransitionTime"):
        new["lastTransitionTime"] = now()
    conditions.append(new)
    return True


def find_condition(conditions: list[Condition], type_: str) -> Optional[Condition]:
    """The condition of a type, if present."""
    return next((c for c in conditions if c["type"] == type_), None)


def remove_condition(conditions: list[Condition], type_: str) -> bool:
    """Removes the condition of a type (in place); returns whether one was there."""
    before = len(conditions)
    conditions[:] = [c for c in conditions if c["type"] != type_]
    return len(conditions) != before


def is_condition_true(conditions: list[Condition], type_: str) -> bool:
    c = find_condition(conditions, type_)
    return c is not None and c["status"] == "True"


def conditions_from_status(status: Any) -> list[Condition]:
    """Conditions of a ``status`` object, skipping malformed entries."""
    items = status.get("conditions") if isinstance(status, dict) else None
    out: list[Condition] = []
    for c in items if isinstance(items, list) else []:
        if not isinstance(c, dict) or not isinstance(c.get("type"), str):
            continue
        if c.get("status") not in ("True", "False", "Unknown"):
            continue

        def s(key: str) -> str:
            v = c.get(key)
            return v if isinstance(v, str) else ""

        gen = c.get("observedGeneration")
        out.append(
            condition(
                c["type"],
                c["status"],
                s("reason"),
                s("message"),
                observed_generation=gen if isinstance(gen, int) and not isinstance(gen, bool) else None,
                last_transition_time=s("lastTransitionTime"),
            )
        )
    return out
