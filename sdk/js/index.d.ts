// Type declarations for the operon JavaScript SDK (index.js), and the shapes
// of the WIT contract `operon:reconciler@0.1.0` (wit/reconciler.wit) as jco
// maps them: records are objects with camelCase keys, `option<T>` is
// `T | null`, variants are `{ tag, val? }`, enums are their case names as
// strings, `u64` is a number (QuickJS backend), and an export returning
// `result<T, E>` returns `T` or throws `E`.

// ------------------------------------------------------------ the contract

export interface Gvk {
  group: string;
  version: string;
  kind: string;
}

export interface ObjectRef {
  /** `group/version`, or `version` for the core group. */
  apiVersion: string;
  kind: string;
  /** null for cluster-scoped objects. */
  namespace: string | null;
  name: string;
}

export interface ParentKind {
  kind: Gvk;
  namespaced: boolean;
}

export type RelatedMapping =
  | { tag: "custom" }
  | { tag: "label"; val: string }
  | { tag: "field"; val: string }
  | { tag: "namespace" };

export interface RelatedKind {
  kind: Gvk;
  mapping: RelatedMapping;
}

export interface Capabilities {
  reads: Gvk[];
  patches: Gvk[];
  secrets: boolean;
}

/** What `describe` returns. */
export interface Registration {
  name: string;
  version: string;
  parent: ParentKind;
  owns: Gvk[];
  related: RelatedKind[];
  finalizer: boolean;
  /** Each an apiextensions.k8s.io/v1 CustomResourceDefinition as JSON text. */
  crds: string[];
  capabilities: Capabilities;
}

export interface ConfigEntry {
  key: string;
  value: string;
}

/** The WIT `request`: what `reconcile` receives. */
export interface WitRequest {
  /** The parent object, JSON text. */
  parent: string;
  /** Observed owned children, each JSON text. */
  observed: string[];
  finalizing: boolean;
  config: ConfigEntry[];
}

export type EventType = "normal" | "warning";

export interface Event {
  type: EventType;
  reason: string;
  message: string;
}

export type PatchType = "merge" | "json" | "apply";

export interface Patch {
  target: ObjectRef;
  subresource: string | null;
  patchType: PatchType;
  /** JSON text. */
  body: string;
}

/** The WIT `response`: what `reconcile` returns on success. */
export interface WitResponse {
  children: string[];
  status: string | null;
  events: Event[];
  requeueAfterMs: number | null;
  finalized: boolean;
  patches: Patch[];
}

/** The WIT `error` variant: what `reconcile` throws on failure. */
export type WitError = { tag: "retryable"; val: string } | { tag: "permanent"; val: string };

/** The world's exports, as the component's entry module exports them. */
export interface ReconcilerExports {
  describe(): Registration;
  /** Returns the response or throws a `WitError`. */
  reconcile(req: WitRequest): WitResponse;
  mapRelated(related: string): ObjectRef[];
}

// ------------------------------------------------------------ errors

/** A reconcile failure; it is itself the WIT `error` variant. */
export class ReconcileError extends Error {
  readonly tag: "retryable" | "permanent";
  readonly val: string;
  /** The same variant, where a jco backend reads `payload`. */
  readonly payload: WitError;
  constructor(tag: "retryable" | "permanent", message: string);
  toVariant(): WitError;
  readonly isRetryable: boolean;
}
/** A transient failure: the host retries with backoff. Throw it. */
export function retryable(message: string): ReconcileError;
/** The parent cannot be reconciled as it is (no retry until it changes). Throw it. */
export function permanent(message: string): ReconcileError;
/**
 * A bug in one line with where it was thrown, innermost frame first:
 * `TypeError: ... (at reconcile (index.js:42:10) <- ...)`. What any other
 * exception thrown by `reconcile` becomes (as a retryable error).
 */
export function describeException(e: unknown): string;

/** A host log level, as the WIT `log-level` enum. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";
/**
 * Routes `console.*` (`log` and `info` at info, `trace`, `debug`, `warn`,
 * `error`) to the host's log: pass the `log` function of the
 * `operon:reconciler/log@0.1.0` import, in the entry module only.
 */
export function routeConsole(log: (level: LogLevel, message: string) => void): Console;

// ------------------------------------------------------------ time

/** RFC 3339 UTC at second precision (`2024-05-01T12:00:00Z`). */
export function formatRFC3339(time: Date | number): string;
/** Now, from the (WASI) wall clock, as RFC 3339. */
export function nowRFC3339(): string;

// ------------------------------------------------------------ conditions

export type ConditionStatus = "True" | "False" | "Unknown";

/** `metav1.Condition`. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  /** RFC 3339; "" until `setCondition` decides it. */
  lastTransitionTime: string;
  /** Omitted when unknown. */
  observedGeneration?: number;
}

export const SYNCED_CONDITION: "Synced";

export function condition(
  type: string,
  status: boolean | ConditionStatus,
  reason: string,
  message?: string,
  options?: { observedGeneration?: number | null; lastTransitionTime?: string },
): Condition;
/**
 * Sets a condition in place (apimachinery's `meta.SetStatusCondition`): the
 * transition time is kept when the status is unchanged. Returns whether
 * anything changed.
 */
export function setCondition(conditions: Condition[], cond: Condition, now?: () => string): boolean;
export function findCondition(conditions: Condition[], type: string): Condition | undefined;
export function removeCondition(conditions: Condition[], type: string): boolean;
export function isConditionTrue(conditions: Condition[], type: string): boolean;
/** Conditions of a `status` object, skipping malformed entries. */
export function conditionsFromStatus(status: unknown): Condition[];

// ------------------------------------------------------------ kinds, refs, objects

export function gvk(group: string, version: string, kind: string): Gvk;
export function apiVersionOf(g: Gvk): string;
export function gvkOf(apiVersion: string, kind: string): Gvk;
export const DEPLOYMENT: Gvk;
export const STATEFUL_SET: Gvk;
export const SERVICE: Gvk;
export const CONFIG_MAP: Gvk;
export const SECRET: Gvk;
export function objectRef(apiVersion: string, kind: string, namespace: string | null | undefined, name: string): ObjectRef;
export function objectRefOf(object: unknown): ObjectRef | undefined;

/** A Kubernetes object as JSON. */
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

/** A child skeleton: apiVersion, kind, metadata, then `rest` (e.g. `{ spec }`). */
export function object(
  apiVersion: string,
  kind: string,
  meta?: {
    name?: string;
    namespace?: string | null;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  },
  rest?: Record<string, unknown>,
): KubeObject;

// ------------------------------------------------------------ registration

export function registration(opts: {
  name: string;
  version: string;
  parent: Gvk;
  namespaced?: boolean;
  owns?: Gvk[];
  related?: RelatedKind[];
  finalizer?: boolean;
  /** Objects or JSON texts. */
  crds?: Array<string | object>;
  capabilities?: Partial<Capabilities>;
}): Registration;

export const mapping: {
  custom(): RelatedMapping;
  label(key: string): RelatedMapping;
  field(path: string): RelatedMapping;
  namespace(): RelatedMapping;
};

// ------------------------------------------------------------ request / response

export class Request {
  constructor(parent: any, observed?: any[], finalizing?: boolean, config?: Record<string, string>);
  /** Parses the WIT request; throws a permanent error on bad JSON. */
  static fromWit(req: WitRequest): Request;
  readonly parent: any;
  readonly observed: any[];
  readonly finalizing: boolean;
  readonly config: Record<string, string>;
  readonly metadata: Record<string, any>;
  readonly name: string;
  readonly namespace: string | undefined;
  readonly uid: string | undefined;
  readonly generation: number | undefined;
  readonly spec: any;
  readonly status: any;
  /** Previous conditions without the host's `Synced`. */
  conditions(): Condition[];
  observedOf(apiVersion: string, kind: string): any[];
  findObserved(apiVersion: string, kind: string, name: string): any | undefined;
  configValue(key: string): string | undefined;
}
export function parseRequest(req: WitRequest): Request;

export class Response {
  children: Array<object | string>;
  status: object | string | undefined;
  events: Event[];
  requeueAfterMs: number | undefined;
  isFinalized: boolean;
  child(obj: object | string): this;
  setStatus(status: object | string): this;
  event(type: EventType | "Normal" | "Warning", reason: string, message: string): this;
  normal(reason: string, message: string): this;
  warning(reason: string, message: string): this;
  requeueAfter(ms: number): this;
  finalized(): this;
  patch(target: ObjectRef, patchType: PatchType, body: object | string, subresource?: string): this;
  toWit(): WitResponse;
}

/**
 * The world's exports from plain functions. `reconcile` gets a parsed
 * Request and returns a Response (or a WitResponse) or throws; other
 * exceptions become `retryable` errors with their message.
 */
export function reconciler(impl: {
  describe(): Registration;
  reconcile(req: Request): Response | WitResponse;
  mapRelated?(related: any): ObjectRef[];
}): ReconcilerExports;
