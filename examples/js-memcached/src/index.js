// The classic operator tutorial as an operon reconciler, in JavaScript.
//
// Same behaviour as examples/rust-memcached (which defines it): a `Memcached`
// (`cache.operon.dev/v1alpha1`) becomes a Deployment of `spec.size` memcached
// pods and a ClusterIP Service in front of them, both named after the parent;
// the status reports the ready pods and a `Ready` condition.

import {
  DEPLOYMENT,
  SERVICE,
  Response,
  condition,
  gvk,
  object,
  permanent,
  reconciler,
  registration,
  routeConsole,
  setCondition,
} from "../../../sdk/js/index.js";
// The host's log (WIT import); console.* goes there.
import { log } from "operon:reconciler/log@0.1.0";
// The CRD is the Rust example's, so both ship the same one (src/crd.js is
// generated from examples/rust-memcached/crd.json).
import crd from "./crd.js";

export const GROUP = "cache.operon.dev";
export const VERSION = "v1alpha1";
export const KIND = "Memcached";
const PLUGIN_VERSION = "0.1.0";

/** The port clients use, whatever port the pods listen on. */
export const SERVICE_PORT = 11211;
const DEFAULT_IMAGE = "memcached:1.6-alpine";
const CONTAINER = "memcached";

/** The labels of every child, and the pod selector. */
export function labels(name) {
  return { "app.kubernetes.io/name": "memcached", "app.kubernetes.io/instance": name };
}

/** `spec`, validated, with the CRD's defaults. */
export function parseSpec(spec) {
  if (spec === null || typeof spec !== "object") throw permanent("parent: missing field `spec`");
  if (spec.size === undefined) throw permanent("parent: spec: missing field `size`");
  const int = (field, v) => {
    if (!Number.isInteger(v)) throw permanent(`parent: spec.${field}: expected an integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const size = int("size", spec.size);
  const image = spec.image ?? DEFAULT_IMAGE;
  if (typeof image !== "string") throw permanent(`parent: spec.image: expected a string, got ${JSON.stringify(image)}`);
  const port = spec.port === undefined ? SERVICE_PORT : int("port", spec.port);
  return { size, image, port };
}

/** The desired Deployment. */
export function deployment(name, namespace, spec) {
  const args = ["-m=64", "-o", "modern", "-v"];
  if (spec.port !== SERVICE_PORT) args.push(`-p=${spec.port}`);
  return object("apps/v1", "Deployment", { name, namespace, labels: labels(name) }, {
    spec: {
      replicas: spec.size,
      selector: { matchLabels: labels(name) },
      template: {
        metadata: { labels: labels(name) },
        spec: {
          containers: [
            {
              name: CONTAINER,
              image: spec.image,
              args,
              ports: [{ name: CONTAINER, containerPort: spec.port, protocol: "TCP" }],
            },
          ],
        },
      },
    },
  });
}

/** The desired Service: port 11211, forwarded to the pods' named port. */
export function service(name, namespace) {
  return object("v1", "Service", { name, namespace, labels: labels(name) }, {
    spec: {
      type: "ClusterIP",
      selector: labels(name),
      ports: [{ name: CONTAINER, port: SERVICE_PORT, targetPort: CONTAINER, protocol: "TCP" }],
    },
  });
}

export function describeMemcached() {
  return registration({
    name: "memcached",
    version: PLUGIN_VERSION,
    parent: gvk(GROUP, VERSION, KIND),
    owns: [DEPLOYMENT, SERVICE],
    crds: [crd],
  });
}

/** One reconcile: a Request in, a Response out (or a thrown permanent error). */
export function reconcileMemcached(req) {
  const spec = parseSpec(req.spec);
  if (spec.size < 0) {
    // The CRD's `minimum: 0` normally stops this at admission; a parent
    // stored before the CRD was installed can still carry it.
    throw permanent(`spec.size must be >= 0, got ${spec.size}`);
  }
  const { name, namespace } = req;

  const observed = req.findObserved("apps/v1", "Deployment", name);
  const ready = observed?.status?.readyReplicas ?? 0;

  const conditions = req.conditions();
  const message = `${ready}/${spec.size} replicas ready`;
  console.debug(`memcached ${name}: ${message}`);
  const options = { observedGeneration: req.generation };
  setCondition(
    conditions,
    ready === spec.size
      ? condition("Ready", true, "AllReplicasReady", message, options)
      : condition("Ready", false, "Progressing", message, options),
  );

  const response = new Response()
    .child(deployment(name, namespace, spec))
    .child(service(name, namespace))
    .setStatus({ readyReplicas: ready, conditions });

  const current = observed?.spec?.replicas;
  if (current !== undefined && current !== null && current !== spec.size) {
    response.normal("Scaled", `Scaling Deployment ${name} from ${current} to ${spec.size} replicas`);
  }
  return response;
}

routeConsole(log);

// The world's exports: `describe`, `reconcile`, `map-related` (jco camelCases it).
export const { describe, reconcile, mapRelated } = reconciler({
  describe: describeMemcached,
  reconcile: reconcileMemcached,
});
