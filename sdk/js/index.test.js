// Native unit tests of the SDK: `node --test sdk/js` (no dependencies).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Request,
  Response,
  condition,
  conditionsFromStatus,
  describeException,
  formatRFC3339,
  gvkOf,
  permanent,
  reconciler,
  routeConsole,
  registration,
  removeCondition,
  setCondition,
} from "./index.js";

test("formatRFC3339 at second precision", () => {
  assert.equal(formatRFC3339(951782400000), "2000-02-29T00:00:00Z");
  assert.equal(formatRFC3339(new Date("2026-01-01T00:00:00.999Z")), "2026-01-01T00:00:00Z");
});

test("setCondition keeps lastTransitionTime while the status holds", () => {
  const cs = [condition("Ready", false, "Progressing", "1/3", { lastTransitionTime: "T0" })];
  const now = () => "T1";
  assert.equal(setCondition(cs, condition("Ready", false, "Progressing", "2/3"), now), true);
  assert.equal(cs[0].lastTransitionTime, "T0");
  assert.equal(cs[0].message, "2/3");
  assert.equal(setCondition(cs, condition("Ready", false, "Progressing", "2/3"), now), false);
  setCondition(cs, condition("Ready", true, "AllReplicasReady", "3/3", { observedGeneration: 2 }), now);
  assert.deepEqual(cs, [
    { type: "Ready", status: "True", reason: "AllReplicasReady", message: "3/3", lastTransitionTime: "T1", observedGeneration: 2 },
  ]);
  setCondition(cs, condition("Other", "Unknown", "R"), now);
  assert.equal(cs.length, 2);
  assert.equal(removeCondition(cs, "Other"), true);
  assert.equal(removeCondition(cs, "Other"), false);
});

test("conditions skip malformed entries and the host's Synced", () => {
  const status = {
    conditions: [
      { type: "Ready", status: "False", reason: "P", message: "m", lastTransitionTime: "T", observedGeneration: 1 },
      { type: "Synced", status: "True", reason: "S", message: "", lastTransitionTime: "T" },
      { type: "Bad", status: "Maybe" },
      "junk",
    ],
  };
  assert.equal(conditionsFromStatus(status).length, 2);
  const req = new Request({ metadata: { name: "a", namespace: "n", generation: 4 }, status });
  assert.deepEqual(req.conditions().map((c) => c.type), ["Ready"]);
  assert.equal(req.generation, 4);
  assert.equal(req.namespace, "n");
});

test("Request.fromWit parses JSON and names bad input", () => {
  const req = Request.fromWit({
    parent: '{"metadata":{"name":"a"}}',
    observed: ['{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"}}'],
    finalizing: false,
    config: [{ key: "k", value: "v" }],
  });
  assert.equal(req.findObserved("apps/v1", "Deployment", "a").kind, "Deployment");
  assert.equal(req.findObserved("v1", "Service", "a"), undefined);
  assert.equal(req.configValue("k"), "v");
  assert.throws(
    () => Request.fromWit({ parent: "{", observed: [], finalizing: false, config: [] }),
    (e) => e.tag === "permanent" && e.val.startsWith("parent is not JSON"),
  );
});

test("Response.toWit serializes to the contract's shapes", () => {
  const wit = new Response()
    .child({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } })
    .setStatus({ ready: true })
    .normal("Scaled", "m")
    .requeueAfter(5000)
    .toWit();
  assert.deepEqual(wit, {
    children: ['{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}'],
    status: '{"ready":true}',
    events: [{ type: "normal", reason: "Scaled", message: "m" }],
    requeueAfterMs: 5000,
    finalized: false,
    patches: [],
  });
  assert.equal(new Response().toWit().status, null);
});

test("reconciler throws the WIT error variant", () => {
  const r = reconciler({
    describe: () => registration({ name: "x", version: "0.1.0", parent: gvkOf("a.b/v1", "X") }),
    reconcile: (req) => {
      if (req.spec.fail === "permanent") throw permanent("nope");
      if (req.spec.fail === "bug") null.x;
      return new Response();
    },
  });
  const call = (spec) => r.reconcile({ parent: JSON.stringify({ spec }), observed: [], finalizing: false, config: [] });
  assert.throws(() => call({ fail: "permanent" }), (e) => e.tag === "permanent" && e.val === "nope");
  assert.throws(() => call({ fail: "bug" }), (e) => e.tag === "retryable" && e.val.startsWith("TypeError"));
  // A bug names the line it was thrown at.
  assert.throws(() => call({ fail: "bug" }), (e) => /\(at reconcile \(index\.test\.js:\d+:\d+\)/.test(e.val));
  assert.equal(call({}).finalized, false);
  assert.deepEqual(r.describe().parent, { kind: { group: "a.b", version: "v1", kind: "X" }, namespaced: true });
  assert.deepEqual(r.mapRelated("{}"), []);
});

test("describeException names the innermost frames", () => {
  assert.equal(describeException("plain"), "plain");
  const e = new TypeError("boom");
  e.stack = "TypeError: boom\n    at inner (index.js:7:3)\n    at outer (file:///w/sdk/js/x.js:9:1)\n    at a\n    at b";
  assert.equal(describeException(e), "TypeError: boom (at inner (index.js:7:3) <- outer (x.js:9:1) <- a)");
  const bare = new Error("no stack");
  bare.stack = undefined;
  assert.equal(describeException(bare), "Error: no stack");
});

test("routeConsole sends console.* to the host log", () => {
  const saved = globalThis.console;
  const lines = [];
  try {
    const c = routeConsole((level, message) => lines.push([level, message]));
    console.log("size", 3, { a: 1 });
    console.warn(new TypeError("bad"));
    c.debug("d");
  } finally {
    globalThis.console = saved;
  }
  assert.deepEqual(lines[0], ["info", 'size 3 {"a":1}']);
  assert.equal(lines[1][0], "warn");
  assert.match(lines[1][1], /^TypeError: bad \(at /);
  assert.deepEqual(lines[2], ["debug", "d"]);
});
