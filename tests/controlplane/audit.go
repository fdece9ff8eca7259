package main

// The API server's audit log: every write by a client other than the
// control plane's own components, one JSON line each, in
// DIR/logs/audit.log. Tests read it to show what the API server itself
// saw, such as that two operon replicas never wrote at the same time.

import (
	"os"
	"path/filepath"
)

// auditPolicy logs writes at Metadata level (who, what, when, the user
// agent; no bodies), once each (ResponseComplete), and nothing from the
// scheduler, the controller-manager and kwok, which write all the time.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["kwok", "system:kube-scheduler", "system:kube-controller-manager"]
- level: None
  userGroups: ["system:serviceaccounts:kube-system", "system:nodes"]
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

// auditFlags writes the policy into the state directory and returns the
// kube-apiserver flags that turn the audit log on.
func auditFlags(dir string) ([]string, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + filepath.Join(dir, "logs", "audit.log"),
		"--audit-log-format=json",
		"--audit-log-maxsize=200", // MB, then rotated to audit-<time>.log
		"--audit-log-maxbackup=2",
	}, nil
}
