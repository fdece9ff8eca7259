"""Kinds, object references, registration: the contract's small shapes."""

from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union


@dataclass(frozen=True)
class Gvk:
    """A group/version/kind; the core group is ``""``."""

    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return api_version_of(self)


def gvk(group: str, version: str, kind: str) -> Gvk:
    return Gvk(group, version, kind)


def api_version_of(g: Gvk) -> str:
    """``group/version``, or ``version`` for the core group."""
    return f"{g.group}/{g.version}" if g.group else g.version


def gvk_of(api_version: str, kind: str) -> Gvk:
    group, _, version = api_version.rpartition("/")
    return Gvk(group, version, kind)


DEPLOYMENT = Gvk("apps", "v1", "Deployment")
STATEFUL_SET = Gvk("apps", "v1", "StatefulSet")
SERVICE = Gvk("", "v1", "Service")
CONFIG_MAP = Gvk("", "v1", "ConfigMap")
SECRET = Gvk("", "v1", "Secret")


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: Optional[str]
    name: str


def object_ref_of(obj: Any) -> Optional[ObjectRef]:
    """The reference of an object's JSON, or None if it lacks one."""
    if not isinstance(obj, dict):
        return None
    md = obj.get("metadata") or {}
    if not (obj.get("apiVersion") and obj.get("kind") and md.get("name")):
        return None
    return ObjectRef(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"])


@dataclass(frozen=True)
class RelatedMapping:
    """The WIT ``related-mapping``: ``custom``, ``label(key)``, ``field(path)`` or ``namespace``."""

    tag: Literal["custom", "label", "field", "namespace"]
    value: Optional[str] = None


@dataclass(frozen=True)
class RelatedKind:
    kind: Gvk
    mapping: RelatedMapping


@dataclass
class Capabilities:
    reads: list[Gvk] = field(default_factory=list)
    patches: list[Gvk] = field(default_factory=list)
    secrets: bool = False


@dataclass
class Registration:
    """What ``describe`` answers. ``crds`` are JSON texts (or dicts)."""

    name: str
    version: str
    parent: Gvk
    namespaced: bool = True
    owns: list[Gvk] = field(default_factory=list)
    related: list[RelatedKind] = field(default_factory=list)
    finalizer: bool = False
    crds: list[Union[str, dict]] = field(default_factory=list)
    capabilities: Capabilities = field(default_factory=Capabilities)


def k8s_object(
    api_version: str,
    kind: str,
    name: str,
    namespace: Optional[str] = None,
    *,
    labels: Optional[dict[str, str]] = None,
    annotations: Optional[dict[str, str]] = None,
    **rest: Any,
) -> dict[str, Any]:
    """A child skeleton: apiVersion, kind, metadata, then ``rest`` (e.g. ``spec=...``)."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **rest}
