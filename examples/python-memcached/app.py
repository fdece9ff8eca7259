"""The classic operator tutorial as an operon reconciler, in Python.

Same behaviour as examples/rust-memcached (which defines it): a `Memcached`
(`cache.operon.dev/v1alpha1`) becomes a Deployment of `spec.size` memcached
pods and a ClusterIP Service in front of them, both named after the parent;
the status reports the ready pods and a `Ready` condition.

The logic (`describe_memcached`, `reconcile_memcached`) is plain Python and
runs natively; the last lines hand it to componentize-py.
"""

import json
from dataclasses import dataclass
from typing import Any, Optional

from crd import CRD
from operon_sdk import (
    DEPLOYMENT,
    SERVICE,
    Registration,
    Request,
    Response,
    condition,
    gvk,
    k8s_object,
    permanent,
    set_condition,
)

GROUP = "cache.operon.dev"
VERSION = "v1alpha1"
KIND = "Memcached"
PLUGIN_VERSION = "0.1.0"

#: The port clients use, whatever port the pods listen on.
SERVICE_PORT = 11211
DEFAULT_IMAGE = "memcached:1.6-alpine"
CONTAINER = "memcached"


@dataclass
class MemcachedSpec:
    size: int
    image: str = DEFAULT_IMAGE
    port: int = SERVICE_PORT


def _int(field: str, v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise permanent(f"parent: spec.{field}: expected an integer, got {json.dumps(v)}")
    return v


def parse_spec(spec: Any) -> MemcachedSpec:
    """`spec`, validated, with the CRD's defaults."""
    if not isinstance(spec, dict):
        raise permanent("parent: missing field `spec`")
    if "size" not in spec:
        raise permanent("parent: spec: missing field `size`")
    image = spec.get("image", DEFAULT_IMAGE)
    if not isinstance(image, str):
        raise permanent(f"parent: spec.image: expected a string, got {json.dumps(image)}")
    port = _int("port", spec["port"]) if "port" in spec else SERVICE_PORT
    return MemcachedSpec(_int("size", spec["size"]), image, port)


def labels(name: str) -> dict[str, str]:
    """The labels of every child, and the pod selector."""
    return {"app.kubernetes.io/name": "memcached", "app.kubernetes.io/instance": name}


def deployment(name: str, namespace: Optional[str], spec: MemcachedSpec) -> dict[str, Any]:
    args = ["-m=64", "-o", "modern", "-v"]
    if spec.port != SERVICE_PORT:
        args.append(f"-p={spec.port}")
    return k8s_object(
        "apps/v1",
        "Deployment",
        name,
        namespace,
        labels=labels(name),
        spec={
            "replicas": spec.size,
            "selector": {"matchLabels": labels(name)},
            "template": {
                "metadata": {"labels": labels(name)},
                "spec": {
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": spec.image,
                            "args": args,
                            "ports": [{"name": CONTAINER, "containerPort": spec.port, "protocol": "TCP"}],
                        }
                    ]
                },
            },
        },
    )


def service(name: str, namespace: Optional[str]) -> dict[str, Any]:
    """Port 11211, forwarded to the pods' named port."""
    return k8s_object(
        "v1",
        "Service",
        name,
        namespace,
        labels=labels(name),
        spec={
            "type": "ClusterIP",
            "selector": labels(name),
            "ports": [{"name": CONTAINER, "port": SERVICE_PORT, "targetPort": CONTAINER, "protocol": "TCP"}],
        },
    )


def describe_memcached() -> Registration:
    return Registration(
        name="memcached",
        version=PLUGIN_VERSION,
        parent=gvk(GROUP, VERSION, KIND),
        owns=[DEPLOYMENT, SERVICE],
        crds=[CRD],
    )


def reconcile_memcached(req: Request) -> Response:
    spec = parse_spec(req.spec)
    if spec.size < 0:
        # The CRD's `minimum: 0` normally stops this at admission; a parent
        # stored before the CRD was installed can still carry it.
        raise permanent(f"spec.size must be >= 0, got {spec.size}")
    name, namespace = req.name, req.namespace

    observed = req.find_observed("apps/v1", "Deployment", name)
    ready = ((observed or {}).get("status") or {}).get("readyReplicas") or 0

    conditions = req.conditions()
    message = f"{ready}/{spec.size} replicas ready"
    if ready == spec.size:
        ready_condition = condition("Ready", True, "AllReplicasReady", message, observed_generation=req.generation)
    else:
        ready_condition = condition("Ready", False, "Progressing", message, observed_generation=req.generation)
    set_condition(conditions, ready_condition)

    response = (
        Response()
        .child(deployment(name, namespace, spec))
        .child(service(name, namespace))
        .set_status({"readyReplicas": ready, "conditions": conditions})
    )

    current = ((observed or {}).get("spec") or {}).get("replicas")
    if current is not None and current != spec.size:
        response.normal("Scaled", f"Scaling Deployment {name} from {current} to {spec.size} replicas")
    return response


try:
    from operon_sdk.component import world
except ImportError:  # natively, without componentize-py's bindings
    pass
else:
    WitWorld = world(describe=describe_memcached, reconcile=reconcile_memcached)
