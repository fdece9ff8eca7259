"""The outcome of a successful reconcile, built fluently."""

from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from .errors import permanent
from .kinds import ObjectRef

EventType = Literal["normal", "warning"]
PatchType = Literal["merge", "json", "apply"]


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Patch:
    target: ObjectRef
    patch_type: PatchType
    #: A JSON-serializable value or JSON text.
    body: Any
    subresource: Optional[str] = None


class Response:
    """Children, status, events, requeue, finalized and patches."""

    def __init__(self) -> None:
        self.children: list[Union[dict[str, Any], str]] = []
        self.status: Optional[Union[dict[str, Any], str]] = None
        self.events: list[Event] = []
        self.requeue_after_ms: Optional[int] = None
        self.is_finalized = False
        self.patches: list[Patch] = []

    def child(self, obj: Union[dict[str, Any], str]) -> "Response":
        """A desired child (a complete object); owned children not listed are pruned."""
        self.children.append(obj)
        return self

    def set_status(self, status: Union[dict[str, Any], str]) -> "Response":
        self.status = status
        return self

    def event(self, type_: str, reason: str, message: str) -> "Response":
        t = type_.lower()
        if t not in ("normal", "warning"):
            raise permanent(f"event type must be normal or warning, got {type_}")
        self.events.append(Event(t, reason, message))  # type: ignore[arg-type]
        return self

    def normal(self, reason: str, message: str) -> "Response":
        return self.event("normal", reason, message)

    def warning(self, reason: str, message: str) -> "Response":
        return self.event("warning", reason, message)

    def requeue_after(self, ms: int) -> "Response":
        self.requeue_after_ms = ms
        return self

    def finalized(self) -> "Response":
        self.is_finalized = True
        return self

    def patch(self, target: ObjectRef, patch_type: PatchType, body: Any, subresource: Optional[str] = None) -> "Response":
        if patch_type not in ("merge", "json", "apply"):
            raise permanent(f"unknown patch type {patch_type}")
        self.patches.append(Patch(target, patch_type, body, subresource))
        return self
