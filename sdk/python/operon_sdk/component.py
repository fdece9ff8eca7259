"""The component boundary: componentize-py's generated bindings (``wit_world``).

Only importable inside a componentize-py build (or after ``componentize-py
bindings``). :func:`world` builds the ``WitWorld`` class componentize-py
looks up in the app module.
"""

import json
from typing import Any, Callable, Optional

from componentize_py_types import Err
from wit_world import WitWorld as _WitWorld
from wit_world.imports import log as _log
from wit_world.imports import types as wit

from .errors import ReconcileError, describe_exception
from .request import Request
from .response import Response
from .kinds import Gvk, ObjectRef, Registration, RelatedKind

_LEVELS = {
    "trace": wit.LogLevel.TRACE,
    "debug": wit.LogLevel.DEBUG,
    "info": wit.LogLevel.INFO,
    "warn": wit.LogLevel.WARN,
    "error": wit.LogLevel.ERROR,
}


def log(level: str, message: str) -> None:
    """Logs through the host (``trace``, ``debug``, ``info``, ``warn``, ``error``)."""
    _log.log(_LEVELS[level], message)


def _json_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def wit_gvk(g: Gvk) -> wit.Gvk:
    return wit.Gvk(g.group, g.version, g.kind)


def _wit_mapping(m: Any) -> wit.RelatedMapping:
    if m.tag == "custom":
        return wit.RelatedMapping_Custom()
    if m.tag == "label":
        return wit.RelatedMapping_Label(m.value)
    if m.tag == "field":
        return wit.RelatedMapping_Field(m.value)
    return wit.RelatedMapping_Namespace()


def wit_registration(r: Registration) -> wit.Registration:
    return wit.Registration(
        name=r.name,
        version=r.version,
        parent=wit.ParentKind(wit_gvk(r.parent), r.namespaced),
        owns=[wit_gvk(g) for g in r.owns],
        related=[wit.RelatedKind(wit_gvk(k.kind), _wit_mapping(k.mapping)) for k in r.related],
        finalizer=r.finalizer,
        crds=[_json_text(c) for c in r.crds],
        capabilities=wit.Capabilities(
            reads=[wit_gvk(g) for g in r.capabilities.reads],
            patches=[wit_gvk(g) for g in r.capabilities.patches],
            secrets=r.capabilities.secrets,
        ),
    )


def wit_object_ref(o: ObjectRef) -> wit.ObjectRef:
    return wit.ObjectRef(o.api_version, o.kind, o.namespace, o.name)


_PATCH_TYPES = {"merge": wit.PatchType.MERGE, "json": wit.PatchType.JSON, "apply": wit.PatchType.APPLY}


def wit_response(r: Response) -> wit.Response:
    return wit.Response(
        children=[_json_text(c) for c in r.children],
        status=None if r.status is None else _json_text(r.status),
        events=[
            wit.Event(wit.EventType.NORMAL if e.type == "normal" else wit.EventType.WARNING, e.reason, e.message)
            for e in r.events
        ],
        requeue_after_ms=r.requeue_after_ms,
        finalized=r.is_finalized,
        patches=[
            wit.Patch(wit_object_ref(p.target), p.subresource, _PATCH_TYPES[p.patch_type], _json_text(p.body))
            for p in r.patches
        ],
    )


def wit_error(e: BaseException) -> Err:
    """The ``Err`` to raise from ``reconcile`` for any exception: a
    :class:`ReconcileError` keeps its kind; anything else (a bug) becomes
    retryable with its message and where it was raised."""
    if isinstance(e, ReconcileError):
        if e.kind == "permanent":
            return Err(wit.Error_Permanent(e.message))
        return Err(wit.Error_Retryable(e.message))
    return Err(wit.Error_Retryable(describe_exception(e)))


def request_from_wit(req: wit.Request) -> Request:
    return Request.from_json(req.parent, req.observed, req.finalizing, ((c.key, c.value) for c in req.config))


def world(
    describe: Callable[[], Registration],
    reconcile: Callable[[Request], Response],
    map_related: Optional[Callable[[Any], list[ObjectRef]]] = None,
) -> type:
    """The ``WitWorld`` class for componentize-py from plain functions.

    ``reconcile`` gets a parsed :class:`Request` and returns a
    :class:`Response`, or raises :func:`operon_sdk.permanent` /
    :func:`operon_sdk.retryable`.
    """

    class WitWorld(_WitWorld):
        def describe(self) -> wit.Registration:
            return wit_registration(describe())

        def reconcile(self, req: wit.Request) -> wit.Response:
            try:
                return wit_response(reconcile(request_from_wit(req)))
            except Err:
                raise
            except Exception as e:
                raise wit_error(e) from None

        def map_related(self, related: str) -> list[wit.ObjectRef]:
            if map_related is None:
                return []
            try:
                obj = json.loads(related)
            except ValueError as e:
                log("error", f"map-related: related object is not JSON: {e}")
                return []
            return [wit_object_ref(o) for o in map_related(obj)]

    return WitWorld
