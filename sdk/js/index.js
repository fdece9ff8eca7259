// operon SDK for JavaScript reconcilers (plain ESM, no dependencies).
//
// A reconciler component built with jco (`jco componentize --backend qjs`)
// exports `describe`, `reconcile` and `mapRelated` from its entry module. This
// module turns the WIT contract (`operon:reconciler@0.1.0`, see
// ../../wit/reconciler.wit) into small JavaScript helpers:
//
//   import { reconciler, registration, gvk, Response, condition, setCondition,
//            permanent } from "../../sdk/js/index.js";
//
//   export const { describe, reconcile, mapRelated } = reconciler({
//     describe: () => registration({ name: "greeter", version: "0.1.0",
//                                    parent: gvk("demo.operon.dev", "v1", "Greeting") }),
//     reconcile: (req) => new Response().child({ ... }),
//   });
//
// Everything here is pure: it runs unchanged under Node for unit tests.
// Type declarations are in index.d.ts.

/** The host-owned condition type; dropped from the conditions handed to a plugin. */
export const SYNCED_CONDITION = "Synced";

// ---------------------------------------------------------------- errors

/**
 * A reconcile failure. jco maps a thrown value of an export returning
 * `result<response, error>` to the error case; the value is the WIT variant
 * `{ tag: "retryable" | "permanent", val: string }`, which this object is
 * (it also carries `payload`, the shape StarlingMonkey-based jco reads).
 */
export class ReconcileError extends Error {
  constructor(tag, message) {
    super(message);
    this.name = "ReconcileError";
    this.tag = tag;
    this.val = message;
    this.payload = { tag, val: message };
  }
  /** The plain WIT `error` variant. */
  toVariant() {
    return { tag: this.tag, val: this.val };
  }
  get isRetryable() {
    return this.tag === "retryable";
  }
}

/** A transient failure: the host retries with backoff. */
export function retryable(message) {
  return new ReconcileError("retryable", String(message));
}

/** The parent cannot be reconciled as it is: no retry until it changes. */
export function permanent(message) {
  return new ReconcileError("permanent", String(message));
}

// ---------------------------------------------------------------- time

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

/**
 * RFC 3339 UTC at second precision, as Kubernetes writes `metav1.Time`
 * (`2024-05-01T12:00:00Z`). Accepts a Date or milliseconds since the epoch.
 */
export function formatRFC3339(time) {
  const d = time instanceof Date ? time : new Date(time);
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`
  );
}

/** The current wall-clock time (the WASI wall clock in a component). */
export function nowRFC3339() {
  return formatRFC3339(Date.now());
}

// ---------------------------------------------------------------- conditions

/**
 * A condition in the `metav1.Condition` shape. `status` may be a boolean or
 * "True"/"False"/"Unknown". `lastTransitionTime` stays empty until
 * `setCondition` decides it; `observedGeneration` is omitted when unknown.
 */
export function condition(type, status, reason, message = "", options = {}) {
  const c = {
    type,
    status: typeof status === "boolean" ? (status ? "True" : "False") : String(status),
    reason,
    message,
    lastTransitionTime: options.lastTransitionTime ?? "",
  };
  if (options.observedGeneration !== undefined && options.observedGeneration !== null) {
    c.observedGeneration = options.observedGeneration;
  }
  return c;
}

function sameCondition(a, b) {
  return (
    a.type === b.type &&
    a.status === b.status &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.lastTransitionTime === b.lastTransitionTime &&
    (a.observedGeneration ?? null) === (b.observedGeneration ?? null)
  );
}

/**
 * Sets `cond` in `conditions` (mutated), replacing one of the same type in
 * place, like apimachinery's `meta.SetStatusCondition`: the transition time
 * is kept from the existing condition when the status did not change,
 * otherwise it is the condition's own (if set) or `now()`. Returns whether
 * anything changed.
 */
export function setCondition(conditions, cond, now = nowRFC3339) {
  const next = { ...cond };
  const i = conditions.findIndex((c) => c.type === next.type);
  if (i >= 0) {
    const existing = conditions[i];
    if (existing.status === next.status) {
      next.lastTransitionTime = existing.lastTransitionTime;
    } else if (!next.lastTransitionTime) {
      next.lastTransitionTime = now();
    }
    const changed = !sameCondition(existing, next);
    conditions[i] = next;
    return changed;
  }
  if (!next.lastTransitionTime) next.lastTransitionTime = now();
  conditions.push(next);
  return true;
}

/** The condition of a type, or undefined. */
export function findCondition(conditions, type) {
  return conditions.find((c) => c.type === type);
}

/** Removes the condition of a type (mutates); returns whether one was there. */
export function removeCondition(conditions, type) {
  const i = conditions.findIndex((c) => c.type === type);
  if (i < 0) return false;
  conditions.splice(i, 1);
  return true;
}

/** True when the condition of a type is present with status "True". */
export function isConditionTrue(conditions, type) {
  return findCondition(conditions, type)?.status === "True";
}

const CONDITION_STATUSES = new Set(["True", "False", "Unknown"]);

/**
 * Conditions read from a `status` object, skipping malformed entries (a bad
 * entry should be replaced, not fail the reconcile). Missing string fields
 * read as "".
 */
export function conditionsFromStatus(status) {
  const items = status && Array.isArray(status.conditions) ? status.conditions : [];
  const out = [];
  for (const c of items) {
    if (!c || typeof c !== "object" || typeof c.type !== "string") continue;
    if (!CONDITION_STATUSES.has(c.status)) continue;
    const str = (v) => (typeof v === "string" ? v : "");
    const cond = {
      type: c.type,
      status: c.status,
      reason: str(c.reason),
      message: str(c.message),
      lastTransitionTime: str(c.lastTransitionTime),
    };
    if (Number.isInteger(c.observedGeneration)) cond.observedGeneration = c.observedGeneration;
    out.push(cond);
  }
  return out;
}

// ---------------------------------------------------------------- kinds and refs

/** A group/version/kind; the core group is "". */
export function gvk(group, version, kind) {
  return { group, version, kind };
}

/** `group/version`, or `version` for the core group. */
export function apiVersionOf(g) {
  return g.group ? `${g.group}/${g.version}` : g.version;
}

/** The gvk of an `apiVersion` and `kind`. */
export function gvkOf(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  return slash < 0
    ? gvk("", apiVersion, kind)
    : gvk(apiVersion.slice(0, slash), apiVersion.slice(slash + 1), kind);
}

/** Kinds most reconcilers own. */
export const DEPLOYMENT = gvk("apps", "v1", "Deployment");
export const STATEFUL_SET = gvk("apps", "v1", "StatefulSet");
export const SERVICE = gvk("", "v1", "Service");
export const CONFIG_MAP = gvk("", "v1", "ConfigMap");
export const SECRET = gvk("", "v1", "Secret");

/** A WIT `object-ref`; `namespace` null for cluster-scoped objects. */
export function objectRef(apiVersion, kind, namespace, name) {
  return { apiVersion, kind, namespace: namespace ?? null, name };
}

/** The `object-ref` of an object's JSON, or undefined if it lacks one. */
export function objectRefOf(object) {
  const md = object?.metadata;
  if (!object?.apiVersion || !object?.kind || !md?.name) return undefined;
  return objectRef(object.apiVersion, object.kind, md.namespace, md.name);
}

/**
 * The skeleton of a child object: apiVersion, kind and metadata (name,
 * namespace when given, labels/annotations when given), plus `rest`
 * (e.g. `{ spec }`).
 */
export function object(apiVersion, kind, { name, namespace, labels, annotations } = {}, rest = {}) {
  const metadata = { name };
  if (namespace !== undefined && namespace !== null) metadata.namespace = namespace;
  if (labels) metadata.labels = { ...labels };
  if (annotations) metadata.annotations = { ...annotations };
  return { apiVersion, kind, metadata, ...rest };
}

// ---------------------------------------------------------------- registration

/**
 * The WIT `registration`, with defaults for everything but name, version and
 * parent. `crds` may be objects or JSON texts.
 */
export function registration({
  name,
  version,
  parent,
  namespaced = true,
  owns = [],
  related = [],
  finalizer = false,
  crds = [],
  capabilities = {},
}) {
  return {
    name,
    version,
    parent: { kind: parent, namespaced },
    owns: owns.map((g) => gvk(g.group, g.version, g.kind)),
    related: related.map((r) => ({ kind: r.kind, mapping: r.mapping })),
    finalizer,
    crds: crds.map((c) => (typeof c === "string" ? c : JSON.stringify(c))),
    capabilities: {
      reads: capabilities.reads ?? [],
      patches: capabilities.patches ?? [],
      secrets: capabilities.secrets ?? false,
    },
  };
}

/** Related-kind mappings (the WIT `related-mapping` variant). */
export const mapping = {
  custom: () => ({ tag: "custom" }),
  label: (key) => ({ tag: "label", val: key }),
  field: (path) => ({ tag: "field", val: path }),
  namespace: () => ({ tag: "namespace" }),
};

// ---------------------------------------------------------------- request

function parseJSON(what, text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw permanent(`${what} is not JSON: ${e.message}`);
  }
}

/** One reconcile's input, parsed. */
export class Request {
  /**
   * @param parent the parent object
   * @param observed the observed children (objects)
   * @param finalizing whether this is the finalizer call
   * @param config plugin configuration, key → value
   */
  constructor(parent, observed = [], finalizing = false, config = {}) {
    this.parent = parent;
    this.observed = observed;
    this.finalizing = finalizing;
    this.config = config;
  }

  /** Parses the WIT `request` record (JSON texts) into a Request. */
  static fromWit(req) {
    const parent = parseJSON("parent", req.parent);
    const observed = (req.observed ?? []).map((t, i) => parseJSON(`observed child #${i + 1}`, t));
    const config = {};
    for (const e of req.config ?? []) config[e.key] = e.value;
    return new Request(parent, observed, Boolean(req.finalizing), config);
  }

  get metadata() {
    return this.parent?.metadata ?? {};
  }
  /** metadata.name of the parent. */
  get name() {
    return this.metadata.name ?? "";
  }
  /** metadata.namespace of the parent; undefined for cluster-scoped kinds. */
  get namespace() {
    return this.metadata.namespace ?? undefined;
  }
  get uid() {
    return this.metadata.uid ?? undefined;
  }
  /** metadata.generation of the parent, for observedGeneration. */
  get generation() {
    return Number.isInteger(this.metadata.generation) ? this.metadata.generation : undefined;
  }
  get spec() {
    return this.parent?.spec;
  }
  /** The parent's current status (as the plugin and the host last wrote it). */
  get status() {
    return this.parent?.status;
  }
  /** The previous conditions without the host-owned `Synced` one. */
  conditions() {
    return conditionsFromStatus(this.status).filter((c) => c.type !== SYNCED_CONDITION);
  }
  /** The observed children of a kind. */
  observedOf(apiVersion, kind) {
    return this.observed.filter((o) => o?.apiVersion === apiVersion && o?.kind === kind);
  }
  /** The observed child with this apiVersion, kind and name, or undefined. */
  findObserved(apiVersion, kind, name) {
    return this.observed.find(
      (o) => o?.apiVersion === apiVersion && o?.kind === kind && o?.metadata?.name === name,
    );
  }
  /** A configuration value, or undefined. */
  configValue(key) {
    return Object.prototype.hasOwnProperty.call(this.config, key) ? this.config[key] : undefined;
  }
}

/** Parses the WIT `request` record. Throws a permanent error on bad JSON. */
export function parseRequest(req) {
  return Request.fromWit(req);
}

// ---------------------------------------------------------------- response

const EVENT_TYPES = new Set(["normal", "warning"]);
const PATCH_TYPES = new Set(["merge", "json", "apply"]);

/** The desired state, built fluently. `toWit()` gives the WIT `response`. */
export class Response {
  constructor() {
    this.children = [];
    this.status = undefined;
    this.events = [];
    this.requeueAfterMs = undefined;
    this.isFinalized = false;
    this.patches = [];
  }
  /** Adds a desired child (a complete object). */
  child(obj) {
    this.children.push(obj);
    return this;
  }
  /** Sets the parent's new status object. */
  setStatus(status) {
    this.status = status;
    return this;
  }
  /** Records an event; `type` is "normal" or "warning" (any case). */
  event(type, reason, message) {
    const t = String(type).toLowerCase();
    if (!EVENT_TYPES.has(t)) throw permanent(`event type must be normal or warning, got ${type}`);
    this.events.push({ type: t, reason, message });
    return this;
  }
  normal(reason, message) {
    return this.event("normal", reason, message);
  }
  warning(reason, message) {
    return this.event("warning", reason, message);
  }
  /** Reconcile again after this many milliseconds. */
  requeueAfter(ms) {
    this.requeueAfterMs = ms;
    return this;
  }
  /** With finalizing: cleanup is done. */
  finalized() {
    this.isFinalized = true;
    return this;
  }
  /**
   * A change to an object the plugin does not own: `target` an object-ref,
   * `patchType` "merge" | "json" | "apply", `body` an object or JSON text.
   */
  patch(target, patchType, body, subresource) {
    if (!PATCH_TYPES.has(patchType)) throw permanent(`unknown patch type ${patchType}`);
    this.patches.push({ target, subresource, patchType, body });
    return this;
  }
  /** The WIT `response` record (objects serialized to JSON text). */
  toWit() {
    return {
      children: this.children.map((c) => (typeof c === "string" ? c : JSON.stringify(c))),
      status:
        this.status === undefined || this.status === null
          ? null
          : typeof this.status === "string"
            ? this.status
            : JSON.stringify(this.status),
      events: this.events.map((e) => ({ type: e.type, reason: e.reason, message: e.message })),
      requeueAfterMs: this.requeueAfterMs ?? null,
      finalized: this.isFinalized,
      patches: this.patches.map((p) => ({
        target: p.target,
        subresource: p.subresource ?? null,
        patchType: p.patchType,
        body: typeof p.body === "string" ? p.body : JSON.stringify(p.body),
      })),
    };
  }
}

// ---------------------------------------------------------------- exports

function toVariant(e) {
  if (e instanceof ReconcileError) return e;
  if (e && (e.tag === "retryable" || e.tag === "permanent") && typeof e.val === "string") {
    return new ReconcileError(e.tag, e.val);
  }
  // An unexpected exception (a bug or bad input): retry with backoff, as the
  // host does after a trap, but with a readable message saying where.
  return retryable(describeException(e));
}

/** How many stack frames a bug's message names, innermost first. */
const FRAMES = 3;

/**
 * An unexpected exception (a bug) in one line, with where it was thrown:
 * `TypeError: cannot read property 'x' of null (at reconcile (index.js:42)
 * <- ...)`, innermost frame first. The line reaches the host as a
 * retryable error, so its log (and `operon reconcile`) says which line of
 * the plugin failed. Reads the engine's `stack` (QuickJS in a component,
 * V8 under Node): the frames are its lines that start with `at`.
 */
export function describeException(e) {
  if (!(e instanceof Error)) return String(e);
  const text = `${e.name}: ${e.message}`;
  const frames = String(e.stack ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("at "))
    .slice(0, FRAMES)
    .map((l) => l.slice(3).replace(/file:\/\/\S*\/([^/\s]+)/g, "$1"));
  return frames.length ? `${text} (at ${frames.join(" <- ")})` : text;
}

// ---------------------------------------------------------------- logging

/** `console.*` methods and the host log level each writes at. */
const CONSOLE_LEVELS = {
  trace: "trace",
  debug: "debug",
  log: "info",
  info: "info",
  warn: "warn",
  error: "error",
};

/** One console argument as text: strings as they are, errors with where, the rest as JSON. */
function consoleText(a) {
  if (typeof a === "string") return a;
  if (a instanceof Error) return describeException(a);
  try {
    return JSON.stringify(a) ?? String(a);
  } catch {
    return String(a);
  }
}

/**
 * Routes `console.*` to the host's log (shown by `operon reconcile -v`,
 * and in `operon run`'s log with the plugin and parent): pass the `log`
 * function of the `operon:reconciler/log@0.1.0` import. QuickJS in a
 * component has no console of its own. Call it in the component's entry
 * module only, so the modules Node tests import stay free of WIT imports
 * (and keep Node's console). Returns the new console.
 */
export function routeConsole(log) {
  const console = {};
  for (const [method, level] of Object.entries(CONSOLE_LEVELS)) {
    console[method] = (...args) => log(level, args.map(consoleText).join(" "));
  }
  globalThis.console = console;
  return console;
}

/**
 * The world's exports from plain functions:
 * - `describe()` returns a registration (see `registration`);
 * - `reconcile(req: Request)` returns a Response (or the WIT record) or
 *   throws `permanent(...)` / `retryable(...)`;
 * - `mapRelated(obj)` (optional) returns object-refs for a related object.
 * Export the result's `describe`, `reconcile` and `mapRelated` from the
 * component's entry module.
 */
export function reconciler({ describe, reconcile, mapRelated }) {
  return {
    describe() {
      return describe();
    },
    reconcile(req) {
      try {
        const out = reconcile(Request.fromWit(req));
        return out instanceof Response ? out.toWit() : out;
      } catch (e) {
        throw toVariant(e);
      }
    },
    mapRelated(related) {
      if (!mapRelated) return [];
      let obj;
      try {
        obj = JSON.parse(related);
      } catch {
        return [];
      }
      return (mapRelated(obj) ?? []).map((r) => ({ ...r, namespace: r.namespace ?? null }));
    },
  };
}
