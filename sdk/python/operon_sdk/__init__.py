"""Write operon reconcilers in Python (componentize-py).

A reconciler is a pure function: the host hands it a parent object and the
children it already owns, and it answers with the children it wants, the
parent's status, events and when to come back. The host does every write.

This package turns the WIT contract (``operon:reconciler@0.1.0``) into plain
Python: a parsed :class:`Request`, a fluent :class:`Response`,
``metav1.Condition`` helpers, RFC 3339 time, and errors. Everything but
:mod:`operon_sdk.component` is pure Python and runs natively for unit tests;
:mod:`operon_sdk.component` converts to and from componentize-py's generated
bindings (module ``wit_world``), which exist only inside the component build.

An app module (the one passed to ``componentize-py componentize``)::

    from operon_sdk import Registration, Response, gvk, permanent
    from operon_sdk.component import world

    def describe() -> Registration: ...
    def reconcile(req) -> Response: ...

    WitWorld = world(describe=describe, reconcile=reconcile)
"""

from .conditions import (
    Condition,
    condition,
    conditions_from_status,
    find_condition,
    is_condition_true,
    remove_condition,
    set_condition,
)
from .errors import ReconcileError, describe_exception, permanent, retryable
from .request import SYNCED_CONDITION, Request
from .response import Event, Patch, Response
from .clock import format_rfc3339, now_rfc3339
from .kinds import (
    CONFIG_MAP,
    DEPLOYMENT,
    SECRET,
    SERVICE,
    STATEFUL_SET,
    Capabilities,
    Gvk,
    ObjectRef,
    Registration,
    RelatedKind,
    RelatedMapping,
    api_version_of,
    gvk,
    gvk_of,
    k8s_object,
    object_ref_of,
)

__all__ = [
    "CONFIG_MAP",
    "DEPLOYMENT",
    "SECRET",
    "SERVICE",
    "STATEFUL_SET",
    "SYNCED_CONDITION",
    "Capabilities",
    "Condition",
    "Event",
    "Gvk",
    "ObjectRef",
    "Patch",
    "ReconcileError",
    "Registration",
    "RelatedKind",
    "RelatedMapping",
    "Request",
    "Response",
    "api_version_of",
    "condition",
    "conditions_from_status",
    "describe_exception",
    "find_condition",
    "format_rfc3339",
    "gvk",
    "gvk_of",
    "is_condition_true",
    "k8s_object",
    "now_rfc3339",
    "object_ref_of",
    "permanent",
    "remove_condition",
    "retryable",
    "set_condition",
]
