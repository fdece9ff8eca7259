"""Native unit tests of the SDK's pure part: `python3 -m unittest discover -s sdk/python/tests`."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from operon_sdk import (  # noqa: E402
    ReconcileError,
    Request,
    Response,
    condition,
    conditions_from_status,
    describe_exception,
    format_rfc3339,
    gvk_of,
    k8s_object,
    remove_condition,
    set_condition,
)


class TimeTest(unittest.TestCase):
    def test_format(self):
        self.assertEqual(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z")
        self.assertEqual(format_rfc3339(1_767_225_600.9), "2026-01-01T00:00:00Z")
        self.assertEqual(format_rfc3339(0), "1970-01-01T00:00:00Z")


class ConditionsTest(unittest.TestCase):
    def test_transition_time_kept_while_status_holds(self):
        cs = [condition("Ready", False, "Progressing", "1/3", last_transition_time="T0")]
        now = lambda: "T1"  # noqa: E731
        self.assertTrue(set_condition(cs, condition("Ready", False, "Progressing", "2/3"), now))
        self.assertEqual(cs[0]["lastTransitionTime"], "T0")
        self.assertFalse(set_condition(cs, condition("Ready", False, "Progressing", "2/3"), now))
        set_condition(cs, condition("Ready", True, "AllReplicasReady", "3/3", observed_generation=2), now)
        self.assertEqual(
            cs,
            [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllReplicasReady",
                    "message": "3/3",
                    "lastTransitionTime": "T1",
                    "observedGeneration": 2,
                }
            ],
        )
        set_condition(cs, condition("Other", "Unknown", "R"), now)
        self.assertTrue(remove_condition(cs, "Other"))
        self.assertFalse(remove_condition(cs, "Other"))

    def test_status_parsing_skips_bad_entries_and_synced(self):
        status = {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "P", "message": "m", "lastTransitionTime": "T"},
                {"type": "Synced", "status": "True", "reason": "S", "message": "", "lastTransitionTime": "T"},
                {"type": "Bad", "status": "Maybe"},
                "junk",
            ]
        }
        self.assertEqual(len(conditions_from_status(status)), 2)
        req = Request({"metadata": {"name": "a", "generation": 3}, "status": status})
        self.assertEqual([c["type"] for c in req.conditions()], ["Ready"])
        self.assertEqual(req.generation, 3)
        self.assertIsNone(req.namespace)


class RequestResponseTest(unittest.TestCase):
    def test_from_json(self):
        req = Request.from_json(
            '{"metadata":{"name":"a","namespace":"n"}}',
            ['{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"}}'],
            config=[("k", "v")],
        )
        self.assertEqual(req.find_observed("apps/v1", "Deployment", "a")["kind"], "Deployment")
        self.assertIsNone(req.find_observed("v1", "Service", "a"))
        self.assertEqual(req.config_value("k"), "v")
        with self.assertRaises(ReconcileError) as e:
            Request.from_json("{")
        self.assertEqual(e.exception.kind, "permanent")
        self.assertTrue(e.exception.message.startswith("parent is not JSON"))

    def test_response(self):
        r = Response().child(k8s_object("v1", "ConfigMap", "x", "n", labels={"a": "b"})).normal("Scaled", "m")
        self.assertEqual(
            json.dumps(r.children[0], sort_keys=True),
            '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": {"a": "b"}, "name": "x", "namespace": "n"}}',
        )
        self.assertEqual(r.events[0].type, "normal")
        with self.assertRaises(ReconcileError):
            r.event("loud", "R", "m")

    def test_gvk_of(self):
        self.assertEqual(gvk_of("v1", "Service").group, "")
        self.assertEqual(gvk_of("apps/v1", "Deployment").api_version, "apps/v1")


class ExceptionTest(unittest.TestCase):
    def test_a_bug_names_its_line(self):
        def reconcile(spec):
            return spec["size"]

        try:
            reconcile({})
        except KeyError as e:
            text = describe_exception(e)
        self.assertTrue(text.startswith("KeyError: 'size' (at test_operon_sdk.py:"), text)
        self.assertIn(" in reconcile <- test_operon_sdk.py:", text)
        self.assertEqual(describe_exception(ValueError("x")), "ValueError: x")


if __name__ == "__main__":
    unittest.main()
